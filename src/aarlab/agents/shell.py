"""A shell / Python runner confined to an agent's sandbox (what ``run_shell`` and ``run_python`` use).

An agent may run any command, so the runner does not trust the command text. Layers, strongest first
(``ConfinedRunner.isolation`` names the ones that applied on this machine):

1. **namespaces** (``unshare --mount --net --pid --fork --mount-proc``, needs root or user namespaces):
   a private mount namespace in which every *hidden* path (the server's data dir, the database's folder,
   the packages holding a task's ground truth, the labelled pools under ``AARLAB_HOME/data``) is covered
   by an empty mode-000 tmpfs (a file by ``/dev/null``), the root filesystem is remounted read-only except
   the sandbox, ``AARLAB_HOME`` and the caches its entries link to are overlays (shared caches
   readable, writes private to the agent, so no agent can poison a cache others read), a
   fresh ``/proc`` shows only the child's own processes (so ``/proc/<server pid>/environ`` does not
   exist), and a network namespace with no interfaces. Then every capability is dropped and
   ``no_new_privs`` set (``setpriv``), so the child cannot unmount what hides the data.
2. **refusal** (only when namespaces are not permitted): a command that names a hidden path is refused
   before it runs. Text matching is weak (a command can build the path at run time), which is why it is
   only the fallback, and the runner says so in its ``isolation`` string and in every log line.
   Hiding is a list, not a whitelist: whatever is not hidden stays readable (read-only), so the caller
   must pass every place that holds labels or secrets (the server's data dir, the database's folder,
   other agents' folders). The child keeps uid 0 (without capabilities), so root-owned files outside the
   hidden paths are readable by it.
3. always: cwd = sandbox, a scrubbed environment (no inherited tokens or keys), resource limits (address
   space, CPU seconds, file size, no core dumps), and a wall-clock timeout that kills the process group.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

from aarlab.config import get_settings
from aarlab.testbed.errors import AarlabError
from aarlab.verify.sandbox import Limits, apply_limits, scrubbed_env

#: Exit code of the namespace setup script when a mount failed (the command did not run).
SETUP_FAILED = 97
#: Exit code reported for a command refused by the fallback layer (it did not run).
REFUSED = 126
#: Seconds to wait, after the command exits, for children that still hold its output pipe open.
OUTPUT_DRAIN_S = 2.0


class _OutputCollector:
    """Reads a child's output pipe in a thread, keeping at most ``cap`` bytes (the rest is counted)."""

    def __init__(self, pipe: io.BufferedReader, cap: int) -> None:
        self.pipe, self.cap = pipe, cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.pipe.read1(65536):
                room = self.cap - self.kept
                if room > 0:
                    self.chunks.append(chunk[:room])
                    self.kept += min(room, len(chunk))
                self.dropped += max(0, len(chunk) - max(room, 0))

    def finish(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the end of the output; False if a writer still holds the pipe."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def text(self) -> str:
        text = b"".join(self.chunks).decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[output beyond {self.cap // (1024 * 1024)} MB dropped: {self.dropped} bytes]"
        return text


@dataclass(frozen=True)
class ShellLimits:
    """Per-command limits; the model may ask for a shorter timeout, never a longer one than ``max_wall_s``."""

    default_wall_s: float = 120.0
    max_wall_s: float = 600.0
    cpu_s: int = 1200
    memory_mb: int = 8192
    file_mb: int = 512
    threads: int = 1


@dataclass(frozen=True)
class RunOutcome:
    """What one confined command did; ``output`` is stdout and stderr interleaved, untruncated."""

    exit_code: int
    output: str
    timed_out: bool
    seconds: float
    refused: str | None = None


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail of ``text`` within ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    half = max(limit // 2 - 60, 1)
    omitted = len(text) - 2 * half
    return (
        f"{text[:half]}\n[... output truncated: {omitted} of {len(text)} characters omitted; "
        f"write long output to a file in the sandbox and read parts of it ...]\n{text[-half:]}"
    )


@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Whether this machine lets us build the full confinement (probed once per process)."""
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None:
        return False
    probe = (
        "mount -t tmpfs -o size=4k,mode=000 aarlab-probe /mnt 2>/dev/null || "
        "mount -t tmpfs -o size=4k,mode=000 aarlab-probe /tmp || exit 1; "
        "mount -o remount,bind,ro / || exit 1; "
        f"exec {setpriv} --no-new-privs --bounding-set -all --inh-caps -all -- true"
    )
    try:
        proc = subprocess.run(
            [
                unshare,
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                probe,
            ],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@lru_cache(maxsize=1)
def net_namespace_available() -> bool:
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "--net", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# The setup script runs as root inside the new namespaces, then execs the command without capabilities.
# Arguments: sandbox, n_overlays, (dir upper work) per overlay, n_hidden, hidden..., then the command's argv.
_SETUP = r"""
set -u
sandbox=$1; k=$2; shift 2
fail() { echo "aarlab sandbox setup failed: $*" >&2; exit 97; }
# the sandbox first: a later non-recursive bind would uncover what is hidden below it
mount --bind "$sandbox" "$sandbox" || fail "cannot bind the sandbox"
j=0
while [ "$j" -lt "$k" ]; do
  d=$1; upper=$2; work=$3; shift 3; j=$((j + 1))
  mount -t overlay aarlab-home -o "lowerdir=$d,upperdir=$upper,workdir=$work" "$d" \
    || mount --bind "$upper" "$d" || fail "cannot overlay $d"
done
n=$1; shift
i=0
while [ "$i" -lt "$n" ]; do
  p=$1; shift; i=$((i + 1))
  if [ -d "$p" ]; then
    mount -t tmpfs -o size=4k,mode=000 aarlab-hidden "$p" || fail "cannot hide $p"
  elif [ -e "$p" ]; then
    mount --bind /dev/null "$p" || fail "cannot hide $p"
  fi
done
mount -o remount,bind,ro / || fail "cannot make / read-only"
cd "$sandbox" || fail "cannot enter the sandbox"
exec setpriv --no-new-privs --bounding-set -all --inh-caps -all --ambient-caps -all -- "$@"
"""


class ConfinedRunner:
    """Runs commands for one agent: cwd = ``sandbox``, ``hidden`` paths invisible, no network, limits.

    ``state_dir`` (outside the sandbox) holds the private upper layer of ``AARLAB_HOME``. ``hidden`` must
    not contain the sandbox itself (that would hide the agent's own files): the constructor refuses it.
    """

    def __init__(
        self,
        sandbox: Path,
        state_dir: Path,
        hidden: Sequence[str | Path] = (),
        *,
        limits: ShellLimits | None = None,
        aarlab_home: Path | None = None,
        use_namespaces: bool | None = None,
    ) -> None:
        self.sandbox = Path(sandbox).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.limits = limits or ShellLimits()
        self.home = Path(aarlab_home or get_settings().home).resolve()
        hide = {Path(p).resolve() for p in hidden}
        # labelled pools and experiment caches of built-in tasks live under AARLAB_HOME
        hide |= {self.home / "data", self.home / "experiments"}
        for p in sorted(hide):
            if self.sandbox == p or self.sandbox.is_relative_to(p):
                raise AarlabError(
                    f"sandbox {self.sandbox} lies inside the hidden path {p}; put sandboxes outside the "
                    "server's data directory"
                )
        self.hidden: tuple[Path, ...] = tuple(sorted(hide))
        # AARLAB_HOME and the folders its entries link to (an orchestrator links shared feature and model
        # caches into a per-agent home) are overlaid: readable, with writes private to this agent
        linked = (
            {c.resolve() for c in self.home.iterdir() if c.is_symlink() and c.is_dir()}
            if self.home.is_dir()
            else set()
        )
        self.overlays: tuple[Path, ...] = (
            self.home,
            *sorted(p for p in linked if not p.is_relative_to(self.home)),
        )
        ns = namespaces_available() if use_namespaces is None else use_namespaces
        self.namespaces = ns
        # AARLAB_HOME is overlaid in the child: the sandbox under it would be shadowed, and the overlay's
        # private upper layer (in state_dir) must not lie inside the layer it covers
        for what, path in (("sandbox", self.sandbox), ("state_dir", self.state_dir)):
            for layer in self.overlays if ns else ():
                if path.is_relative_to(layer) or (what == "state_dir" and layer.is_relative_to(path)):
                    raise AarlabError(
                        f"{what} {path} overlaps {layer} (AARLAB_HOME or a cache it links to); keep agents' "
                        "sandboxes and state outside AARLAB_HOME and its caches"
                    )
        self.net_only = not ns and net_namespace_available()
        if ns:
            self.isolation = (
                "namespaces: private mount+pid+net namespaces; hidden paths covered by empty tmpfs; "
                "read-only root except the sandbox; AARLAB_HOME overlay; all capabilities dropped"
            )
        elif self.net_only:
            self.isolation = (
                "fallback: net namespace only (mount namespaces not permitted); commands naming a hidden "
                "path are refused by text match"
            )
        else:
            self.isolation = (
                "fallback: no namespaces permitted; commands naming a hidden path are refused by text "
                "match; network is not blocked"
            )

    def mentions_hidden(self, text: str) -> str | None:
        """The first hidden path named in ``text`` (as given or as its resolved form), or None."""
        for p in self.hidden:
            if str(p) in text:
                return str(p)
        return None

    def _env(self) -> dict[str, str]:
        env = scrubbed_env(self.sandbox, str(self.home), self.limits.threads)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        env["MKL_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(self.limits.threads)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def _prefix(self) -> list[str]:
        if self.namespaces:
            layers: list[str] = []
            for n, d in enumerate(self.overlays):
                upper, work = (
                    self.state_dir / "home-layers" / f"{n}-upper",
                    self.state_dir / "home-layers" / f"{n}-work",
                )
                for x in (d, upper, work):
                    x.mkdir(parents=True, exist_ok=True)
                layers += [str(d), str(upper), str(work)]
            unshare = shutil.which("unshare") or "unshare"
            return [
                unshare, "--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                "/bin/sh", "-c", _SETUP, "aarlab-setup", str(self.sandbox), str(len(self.overlays)), *layers,
                str(len(self.hidden)), *map(str, self.hidden),
            ]  # fmt: skip
        if self.net_only:
            return [shutil.which("unshare") or "unshare", "--net"]
        return []

    def run(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout_s: float | None = None
    ) -> RunOutcome:
        """Run ``argv`` confined; never raises for the command's own failures."""
        wall = min(float(timeout_s or self.limits.default_wall_s), self.limits.max_wall_s)
        wall = max(wall, 1.0)
        if not self.namespaces:
            hit = self.mentions_hidden(" ".join(argv) + (stdin or ""))
            if hit is not None:
                why = (
                    f"refused: the command names {hit}, which holds the server's data. This machine does "
                    "not permit mount namespaces, so such commands are refused instead of hidden."
                )
                return RunOutcome(REFUSED, why, False, 0.0, refused=why)
        self.sandbox.mkdir(parents=True, exist_ok=True)
        (self.sandbox / "tmp").mkdir(exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        limits = self.limits

        confine = functools.partial(
            apply_limits, Limits(cpu_s=limits.cpu_s, memory_mb=limits.memory_mb, file_mb=limits.file_mb)
        )

        t0 = time.monotonic()
        # Output goes through a pipe, not a file: a command that reopens its stdout (``> /dev/stdout``)
        # would truncate a file and erase what was written before; a pipe has no offset to truncate.
        proc = subprocess.Popen(
            [*self._prefix(), *argv],
            cwd=self.sandbox,
            env=self._env(),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=confine,
        )
        assert proc.stdout is not None
        collector = _OutputCollector(cast(io.BufferedReader, proc.stdout), limits.file_mb * 1024 * 1024)
        if stdin is not None and proc.stdin is not None:
            # a thread feeds stdin, so a child that never reads it cannot block us past the timeout
            pipe = proc.stdin

            def feed() -> None:
                try:
                    pipe.write(stdin.encode())
                except OSError:
                    pass  # the child exited or was killed before reading everything
                finally:
                    with contextlib.suppress(OSError):
                        pipe.close()

            threading.Thread(target=feed, daemon=True).start()
        timed_out = False
        try:
            proc.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if not collector.finish(OUTPUT_DRAIN_S):
            # a background child still holds the pipe open: end it, as the pid namespace would
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            collector.finish(OUTPUT_DRAIN_S)
        with contextlib.suppress(OSError):
            proc.stdout.close()
        text = collector.text()
        code = proc.returncode
        if timed_out:
            text += f"\n[killed: wall-clock limit of {wall:.0f} s exceeded]"
        elif code < 0:
            text += f"\n[killed by signal {signal.Signals(-code).name}]"
        return RunOutcome(code, text, timed_out, time.monotonic() - t0)
