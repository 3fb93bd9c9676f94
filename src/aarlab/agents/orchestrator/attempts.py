"""One attempt of one agent: the job it gets (:class:`AgentJob`, JSON on stdin), its scrubbed
environment, and the two ways to run it: :class:`LocalAttempt` (a process group on this machine) and
:class:`RayAttempt` (the same child inside one Ray task).

Child protocol: the job arrives as one JSON object on stdin; the child writes ``@aarlab-event {json}``
lines to stdout (``progress`` while it works, ``done`` with ``finished``/``stopped`` and a reason when
it ends cleanly). Exiting without ``done`` is a crash. The child's side is :mod:`.runners`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

EVENT = "@aarlab-event "
#: Environment variables never passed to an agent (server settings hold the data dir; tokens).
SCRUB_PREFIXES = ("AARLAB_SERVER", "AARLAB_TOKEN", "AARLAB_DATA")


@dataclass
class AgentJob:
    """One attempt of one agent, as the child receives it on stdin (JSON): its own token and folders,
    never the overseer token nor the server's data directory."""

    name: str
    token: str
    server_url: str
    task: str
    backend: str
    direction: dict[str, Any]
    seed: int
    sandbox: str
    state_dir: str
    home: str
    attempt: int
    max_seconds: float
    max_tokens: int | None = None
    max_dollars: float | None = None
    max_submissions: int | None = None
    rounds: int | None = None
    proposals_per_round: int = 6
    submissions_per_round: int = 6
    model: str | None = None
    base_url: str | None = None
    #: Fault injection (tests, chaos runs): the child dies with ``os._exit(17)`` after its first unit of
    #: work in attempts numbered below this, to exercise restarts.
    crash_attempts: int = 0
    #: Scheduling niceness of the agent process: agents yield the CPU to verification, the work that
    #: turns their results into leaderboard rows (it costs nothing when cores are idle). Niceness only
    #: ranks processes of one autogroup (``sched(7)``), so an agent is started in its own process group,
    #: not its own session: in a session of its own it competed with the verification worker as an
    #: equal, whatever its niceness.
    nice: int = 10
    #: Paths the LLM agent's shell must not see (mounted over with empty tmpfs in its namespace): the
    #: server's data dir and database, and the other agents' folders. Sent on stdin, never in the prompt,
    #: the environment or the command line. Not hiding them let `find / -name test.jsonl` read labels.
    hidden: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AgentJob:
        return cls(**json.loads(text))


def agent_env(
    home: str | None, sensitive: Sequence[str] = (), base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment an agent process gets: the parent's minus server settings and tokens (by name)
    and minus any variable whose value contains a ``sensitive`` string (the overseer token, the data
    dir); its own ``AARLAB_HOME``; one BLAS/torch thread (N agents share the machine's cores)."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        value = env[key]
        if key.startswith(SCRUB_PREFIXES) or any(s and s in value for s in sensitive):
            del env[key]
    if home:
        env["AARLAB_HOME"] = home
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(key, "1")
    env.setdefault("AARLAB_TORCH_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def agent_command() -> list[str]:
    """The agent process's argv: no token, no path (both arrive on stdin)."""
    return [sys.executable, "-m", "aarlab.agents.orchestrator"]


@dataclass
class AttemptOutcome:
    """How an attempt ended: ``done`` (the child's last event) or a crash with its exit code."""

    exit_code: int | None
    done: dict[str, Any] | None
    log_tail: str = ""


class Attempt(Protocol):
    def events(self) -> list[dict[str, Any]]: ...

    def poll(self) -> AttemptOutcome | None: ...

    def kill(self) -> None: ...


class LocalAttempt:
    """One agent process on this machine, in its own process group (killed as a group) but the
    orchestrator's session, so that its niceness counts against the verification worker's."""

    def __init__(self, job: AgentJob, env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_path = log
        self._log = log.open("w")
        self._proc = subprocess.Popen(
            agent_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            process_group=0,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(job.to_json())
        self._proc.stdin.close()
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._done: dict[str, Any] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if not line.startswith(EVENT):
                continue
            try:
                ev = json.loads(line[len(EVENT) :])
            except ValueError:
                continue
            with self._lock:
                if ev.get("type") == "done":
                    self._done = ev
                else:
                    self._events.append(ev)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self._events = self._events, []
        return out

    def poll(self) -> AttemptOutcome | None:
        code = self._proc.poll()
        if code is None:
            return None
        self._reader.join(timeout=5)
        self._log.close()
        return AttemptOutcome(code, self._done, _tail(self._log_path))

    def kill(self) -> None:
        if self._proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self._proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def ray_attempt(job_json: str, bundle: bytes | None, sensitive_keys: list[str]) -> dict[str, Any]:
    """A Ray task: run one agent attempt as a child process on whichever node Ray picked. Where the
    sandbox path does not exist (another node), the shipped bundle is unpacked into a temp folder."""
    import tempfile

    from aarlab.api.archive import extract_bundle

    job = AgentJob.from_json(job_json)
    tmp: str | None = None
    if not Path(job.sandbox).is_dir() and bundle is not None:
        tmp = tempfile.mkdtemp(prefix=f"aarlab-{job.name}-")
        extract_bundle(bundle, Path(tmp) / "sandbox")
        job = replace(job, sandbox=str(Path(tmp) / "sandbox"), state_dir=str(Path(tmp) / "state"))
    home = job.home if Path(job.home).is_dir() else None
    base = {k: v for k, v in os.environ.items() if k not in set(sensitive_keys)}
    env = agent_env(home, base=base)
    log = Path(job.state_dir) / f"attempt-{job.attempt}.log"
    att = LocalAttempt(job, env, log)
    events: list[dict[str, Any]] = []
    try:
        while (out := att.poll()) is None:
            events += att.events()
            time.sleep(0.2)
    finally:
        att.kill()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    events += att.events()
    return {"exit_code": out.exit_code, "done": out.done, "log_tail": out.log_tail, "events": events}


class RayAttempt:
    """One agent attempt as a Ray task (``num_cpus`` reserved); events arrive when it ends."""

    def __init__(self, job: AgentJob, bundle: bytes | None, sensitive_keys: list[str], cpus: float) -> None:
        import ray

        self._ray = ray
        remote = ray.remote(num_cpus=cpus, max_retries=0)(ray_attempt)
        self._ref = remote.remote(job.to_json(), bundle, sensitive_keys)
        self._pending: list[dict[str, Any]] = []

    def events(self) -> list[dict[str, Any]]:
        out, self._pending = self._pending, []
        return out

    def poll(self) -> AttemptOutcome | None:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        if not ready:
            return None
        try:
            res = self._ray.get(self._ref)
        except Exception as e:  # the Ray worker died or the task was cancelled
            return AttemptOutcome(None, None, f"Ray task failed: {type(e).__name__}: {e}"[:2000])
        self._pending += res["events"]
        return AttemptOutcome(res["exit_code"], res["done"], res["log_tail"])

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self._ray.cancel(self._ref, force=True)
