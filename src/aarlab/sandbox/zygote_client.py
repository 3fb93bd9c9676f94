"""The trusted parent's side of the zygote (``aarlab.sandbox.zygote``): start it lazily (one per parent
process), send it one request per run, and enforce the wall limit.

:func:`run_in_zygote` returns ``None`` whenever the zygote cannot run a request (it died and was already
restarted once, it failed to start, the run's setup failed before any untrusted code ran, or
``AARLAB_SANDBOX_ZYGOTE=0``): the caller then runs the same request on the exec path
(:func:`aarlab.sandbox.run_confined`), never unconfined.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace

from aarlab.sandbox import cgroup
from aarlab.sandbox.namespaces import Confinement, module_argv, namespace_support, root_mountpoint, setup_ops
from aarlab.sandbox.process import MAX_CHANNEL, MAX_OUTPUT, Limits, ProcessOutcome, scrubbed_env

ZYGOTE_ENV = "AARLAB_SANDBOX_ZYGOTE"
#: Seconds the zygote may take to import its preloads and say it is ready.
START_TIMEOUT = 180.0


def zygote_enabled() -> bool:
    """On by default where the kernel confinement is available; ``AARLAB_SANDBOX_ZYGOTE=0`` turns it off."""
    return os.environ.get(ZYGOTE_ENV, "1") != "0" and not namespace_support()


class ZygoteError(Exception):
    """The zygote could not take or finish a request (the caller falls back to the exec path)."""


class Zygote:
    """One running zygote process and its control socket."""

    def __init__(self, preload: Sequence[str], threads: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.threads = threads
        self.preload = tuple(preload)
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                module_argv(
                    "aarlab.sandbox.zygote", str(theirs.fileno()), json.dumps(list(preload)), str(threads)
                ),
                cwd="/",
                env=scrubbed_env("/tmp", "/tmp/aarlab", threads),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        ours.settimeout(START_TIMEOUT)
        try:
            hello = json.loads(ours.recv(65536) or b"{}")
        except (OSError, ValueError) as e:
            self.proc.kill()
            raise ZygoteError(f"the zygote did not start ({e})") from e
        if not hello.get("ready"):
            self.proc.kill()
            raise ZygoteError("the zygote did not start")
        ours.settimeout(None)
        self.failed: list[str] = hello.get("failed", [])
        self.start_seconds = time.monotonic() - t0
        self.ctl = ours
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ctl.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def run(
        self,
        request: dict[str, object],
        limits: Limits,
    ) -> tuple[ProcessOutcome, bool]:
        """Run one request; (outcome, setup_ok). Raises :class:`ZygoteError` when the zygote is gone.

        The run's memory cgroup is made here (the trusted parent) and its path sent along: the forked
        run joins it before anything else, the zygote's handler stays outside it; after the reply it
        is emptied and removed here, whatever happened."""
        memcg = cgroup.open_run(limits.memory_mb)
        request["memcg"] = str(memcg.path) if memcg is not None else None
        try:
            out, setup_ok = self._run(request, limits)
        finally:
            memory = memcg.close() if memcg is not None else None
        return replace(out, memory=memory), setup_ok

    def _run(self, request: dict[str, object], limits: Limits) -> tuple[ProcessOutcome, bool]:
        mine, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        chan_r, chan_w = os.pipe()
        with contextlib.suppress(OSError):  # the run's uid may reopen its output as /dev/stdout
            os.fchmod(out_w, 0o622)
        t0 = time.monotonic()
        try:
            with self.lock:
                socket.send_fds(self.ctl, [b"run"], [theirs.fileno(), out_w, chan_w])
        except OSError as e:
            for fd in (out_r, out_w, chan_r, chan_w):
                os.close(fd)
            mine.close()
            raise ZygoteError(f"the zygote is gone ({e})") from e
        finally:
            theirs.close()
        os.close(out_w)
        os.close(chan_w)
        body = json.dumps(request).encode()
        with mine:
            try:
                reply, output, channel, timed_out = _collect(mine, body, out_r, chan_r, limits.wall_s)
            except OSError as e:
                raise ZygoteError(f"the zygote dropped the run ({e})") from e
        if not reply and not timed_out:
            raise ZygoteError("the zygote dropped the run without a status")
        msg = json.loads(reply) if reply else {"status": -9, "setup_ok": True}
        global child_cpu_seconds
        with _lock:
            child_cpu_seconds += float(msg.get("cpu_s", 0.0))
        out = ProcessOutcome(int(msg["status"]), output, channel, timed_out, time.monotonic() - t0)
        return out, bool(msg.get("setup_ok"))


def _collect(
    sock: socket.socket, body: bytes, out_r: int, chan_r: int, wall_s: float
) -> tuple[bytes, bytes, bytes, bool]:
    """Send the request, then read the reply and the run's two pipes in this thread until the reply
    ends: (reply, output, channel, timed_out). Closes both pipes.

    One selector instead of a reader thread per pipe: two thread starts per run were ~7 ms of a 120 ms
    run when another thread of the parent held the GIL. Past ``wall_s`` the zygote is asked to kill
    the run (``K``) and gets 60 s more to answer; the pipes are read for up to 5 s after the reply
    (a run's processes all die with it). Raises ``OSError`` when the zygote drops the connection
    before the wall limit."""
    caps = {out_r: MAX_OUTPUT, chan_r: MAX_CHANNEL}
    got: dict[int, list[bytes]] = {out_r: [], chan_r: []}
    sizes = {out_r: 0, chan_r: 0}
    reply: list[bytes] = []
    timed_out = reply_done = False
    sel = selectors.DefaultSelector()
    try:
        sock.sendall(struct.pack("!I", len(body)) + body)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        for fd in caps:
            sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + wall_s
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                if reply_done or timed_out:  # pipes held past 5 s, or no answer even to the kill
                    reply = [] if not reply_done else reply
                    break
                timed_out = True
                with contextlib.suppress(OSError):
                    sock.sendall(b"K")
                deadline = now + 60
            for key, _ in sel.select(timeout=deadline - now):
                if key.fileobj is sock:
                    try:
                        chunk = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        if not timed_out:
                            raise
                        reply, chunk = [], b""
                    if chunk:
                        reply.append(chunk)
                        continue
                    sel.unregister(sock)
                    reply_done = True
                    deadline = time.monotonic() + 5
                else:
                    fd = key.fd
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                    elif sizes[fd] < caps[fd]:
                        got[fd].append(chunk[: caps[fd] - sizes[fd]])
                    sizes[fd] += len(chunk)
    finally:
        sel.close()
        for fd in caps:
            os.close(fd)
    return b"".join(reply), b"".join(got[out_r]), b"".join(got[chan_r]), timed_out


_lock = threading.Lock()
#: CPU seconds of every run the zygote forked for this process (they are not this process's children,
#: so ``RUSAGE_CHILDREN`` misses them; benchmarks add this).
child_cpu_seconds = 0.0
_zygote: Zygote | None = None
_restarted = False
_disabled = False


def get_zygote(preload: Sequence[str], threads: int) -> Zygote | None:
    """This process's zygote, started on first use; restarted once if it died; None once it is given up."""
    global _zygote, _restarted, _disabled
    with _lock:
        if _disabled:
            return None
        if _zygote is not None and _zygote.alive():
            return _zygote
        if _zygote is not None:  # it died: one restart, then the exec path for good
            _zygote.close()
            _zygote = None
            if _restarted:
                _disabled = True
                return None
            _restarted = True
        try:
            _zygote = Zygote(preload, threads)
        except (OSError, ZygoteError) as e:
            print(f"aarlab sandbox: zygote unavailable, using the exec path ({e})", file=sys.stderr)
            _disabled = True
            return None
        return _zygote


def _forget_in_child() -> None:
    """A forked copy of the parent starts a zygote of its own (the lock and the process are not its).

    The control socket is detached, not closed: this hook also runs in the child of a ``subprocess``
    call with ``preexec_fn`` (the exec path), where the socket's descriptor number may be one that child
    is about to use (fd 3, the result channel); closing it there failed that run with EBADF. The
    descriptor is close-on-exec, so the exec'd program never holds it."""
    global _zygote, _lock
    if _zygote is not None:
        with contextlib.suppress(OSError):
            _zygote.ctl.detach()
    _zygote, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def shutdown() -> None:
    """Stop this process's zygote (tests; a later run starts a fresh one) and forget its history."""
    global _zygote, _restarted, _disabled
    with _lock:
        if _zygote is not None:
            _zygote.close()
        _zygote, _restarted, _disabled = None, False, False


def run_in_zygote(
    runner: str,
    spec: object,
    conf: Confinement,
    *,
    limits: Limits,
    env: Mapping[str, str],
    preload: Sequence[str],
) -> ProcessOutcome | None:
    """Run ``runner(spec)`` in a child forked by the zygote inside ``conf``; None: use the exec path."""
    if not zygote_enabled():
        return None
    request = {
        "runner": runner,
        "spec": spec,
        "root": root_mountpoint(),
        "ops": setup_ops(conf),
        "hidden": [str(os.path.realpath(h)) for h in conf.hidden],
        "uid": conf.uid,
        "cwd": conf.cwd,
        "limits": asdict(limits),
        "env": dict(env),
    }
    for _ in range(2):  # a zygote that died between runs gets one restart
        z = get_zygote(preload, limits.threads)
        if z is None:
            return None
        request["zygote_threads"] = z.threads
        try:
            out, setup_ok = z.run(request, limits)
        except ZygoteError as e:
            print(f"aarlab sandbox: {e}", file=sys.stderr)
            continue
        if not setup_ok and not out.timed_out:
            tail = out.output.decode("utf-8", "replace")[-500:]
            print(
                f"aarlab sandbox: the zygote could not confine a run, using the exec path ({tail})",
                file=sys.stderr,
            )
            return None
        return out
    return None
