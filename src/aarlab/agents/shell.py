"""A shell / Python runner confined to an agent's sandbox (what ``run_shell`` and ``run_python`` use).

An agent may run any command, so the runner does not trust the command text. It uses the same
confinement layer as verification (:mod:`aarlab.sandbox`), so there is one place to get it right:

1. **kernel confinement** (needs root and util-linux): a fresh root holding only the system, the Python
   install and aarlab's code (read-only), the agent's sandbox (writable), a private ``AARLAB_HOME`` (the
   agent's own, writable; the shared model files read-only inside it) and a private ``/tmp``. Nothing else
   exists there: not the server's data, its database, other agents' folders, the shared feature cache
   or root's home. Packages that hold a task's ground truth are covered even inside the Python install.
   The command runs as an unprivileged uid of the agent's own, with no capabilities and
   ``no_new_privs``, in new mount/pid/net/ipc namespaces (its ``/proc`` shows only its own processes;
   no network).
2. **refusal** (only when the kernel cannot confine and the operator set ``AARLAB_INSECURE_SANDBOX=1``):
   a command that names a hidden path is refused before it runs. Text matching is weak (a command can
   build the path at run time), which is why it needs the explicit insecure switch and the runner says
   so in its ``isolation`` string and in every log line.
3. always: cwd = sandbox, a scrubbed environment (no inherited tokens or keys), resource limits (address
   space, CPU seconds, file size, processes), a wall-clock timeout that kills the process group, and
   output read through a pipe (so ``> /dev/stdout`` appends like a terminal, never truncates).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from aarlab.config import get_settings
from aarlab.sandbox import (
    Bind,
    Confinement,
    Limits,
    require_confinement,
    run_confined,
    scrubbed_env,
)
from aarlab.sandbox.namespaces import SETUP_FAILED, UID_BASE, module_argv
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.tasks.registry import ground_truth_locations

__all__ = ["REFUSED", "SETUP_FAILED", "ConfinedRunner", "RunOutcome", "ShellLimits", "truncate"]

#: Exit code reported for a command refused by the fallback layer (it did not run).
REFUSED = 126


@dataclass(frozen=True)
class ShellLimits(Limits):
    """The confinement layer's :class:`~aarlab.sandbox.Limits` for one command, where ``wall_s`` is the
    default timeout: the model may ask for a shorter one, never a longer one than ``max_wall_s``."""

    wall_s: float = 120.0
    cpu_s: int = 1200
    threads: int = 1
    max_wall_s: float = 600.0

    @property
    def default_wall_s(self) -> float:
        """The timeout of a command that asks for none (seconds)."""
        return self.wall_s


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


def agent_uid(sandbox: Path) -> int:
    """A stable unprivileged uid per sandbox (its files stay its own across commands)."""
    h = int(hashlib.sha256(str(sandbox).encode()).hexdigest()[:8], 16)
    return UID_BASE + 1_000_000 + h % 1_000_000


def _chown_tree(root: Path, uid: int) -> None:
    """Give ``root`` and everything below it to ``uid``, never following a link (``os.fwalk`` with
    descriptors: a folder swapped for a link meanwhile is not entered, so no host file changes owner)."""
    with contextlib.suppress(OSError):
        os.lchown(root, uid, uid)
    for _top, dirnames, filenames, dfd in os.fwalk(root, follow_symlinks=False):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.chown(name, uid, uid, dir_fd=dfd, follow_symlinks=False)


class ConfinedRunner:
    """Runs commands for one agent: cwd = ``sandbox``, nothing but its own files visible, no network.

    ``state_dir`` (outside the sandbox) holds the agent's private ``AARLAB_HOME``. ``hidden`` names places
    that must never be visible (the server's data dir, the database's folder, other agents' folders); with
    the kernel confinement they are not bound in the first place, and the ground-truth packages are
    covered; ``hidden`` must not contain the sandbox itself (the constructor refuses it).
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
        hide = {Path(p).resolve() for p in hidden} | set(ground_truth_locations())
        # labelled pools and experiment caches of built-in tasks live under AARLAB_HOME
        hide |= {self.home / "data", self.home / "experiments"}
        for p in sorted(hide):
            if self.sandbox == p or self.sandbox.is_relative_to(p):
                raise AarlabError(
                    f"sandbox {self.sandbox} lies inside the hidden path {p}; put sandboxes outside the "
                    "server's data directory"
                )
        for what, path in (("sandbox", self.sandbox), ("state_dir", self.state_dir)):
            if path.is_relative_to(self.home) or self.home.is_relative_to(path):
                raise AarlabError(
                    f"{what} {path} overlaps AARLAB_HOME {self.home}; keep agents' sandboxes and state "
                    "outside AARLAB_HOME"
                )
        if self.state_dir.is_relative_to(self.sandbox):
            raise AarlabError(f"state_dir {self.state_dir} must lie outside the sandbox {self.sandbox}")
        self.hidden: tuple[Path, ...] = tuple(sorted(hide))
        self.uid = agent_uid(self.sandbox)
        #: the agent's own AARLAB_HOME (writable, persists across commands); shared models read-only in it
        self.private_home = self.state_dir / "home"
        models = self.home / "models"
        self.models = models.resolve() if models.exists() else None
        self.namespaces = (
            require_confinement("the agents' shell") if use_namespaces is None else use_namespaces
        )
        self._prepared = False
        self._prepare_lock = threading.Lock()
        if self.namespaces:
            self.isolation = (
                "namespaces: fresh root with only the sandbox (writable), the agent's own AARLAB_HOME, "
                "the system and Python (read-only); private mount+pid+net+ipc namespaces; unprivileged "
                "uid, no capabilities"
            )
        else:
            self.isolation = (
                "INSECURE fallback (AARLAB_INSECURE_SANDBOX=1): no kernel confinement; commands naming "
                "a hidden path are refused by text match; network is not blocked"
            )

    def mentions_hidden(self, text: str) -> str | None:
        """The first hidden path named in ``text`` (as given or as its resolved form), or None."""
        for p in self.hidden:
            if str(p) in text:
                return str(p)
        return None

    def _env(self) -> dict[str, str]:
        home = self.private_home if self.namespaces else self.home
        env = scrubbed_env(str(self.sandbox), str(home), self.limits.threads)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        return env

    def _confinement(self) -> Confinement:
        binds = [Bind(self.sandbox, str(self.sandbox), writable=True)]
        binds.append(Bind(self.private_home, str(self.private_home), writable=True))
        if self.models is not None:
            binds.append(Bind(self.models, str(self.private_home / "models")))
        return Confinement(
            binds=tuple(binds),
            hidden=self.hidden,
            scratch=(("/tmp", 1024),),
            cwd=str(self.sandbox),
            uid=self.uid,
        )

    def prepare(self) -> None:
        """Create the sandbox, its ``tmp`` and the private home, owned by the agent's uid. The trees are
        chowned once (the first time); files the trusted side writes later are created as the agent's
        uid's (:func:`aarlab.agents.sandbox_fs.place_tree`), and what the agent's commands create is
        the agent's uid's already."""
        with self._prepare_lock:  # concurrent first commands (an MCP harness) prepare once
            if not self._prepared:
                self._prepare()

    def _prepare(self) -> None:
        self.sandbox.mkdir(parents=True, exist_ok=True)
        (self.sandbox / "tmp").mkdir(exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.private_home.mkdir(parents=True, exist_ok=True)
        if self.namespaces:
            _chown_tree(self.sandbox, self.uid)
            _chown_tree(self.private_home, self.uid)
        self._prepared = True

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
        self.prepare()
        # every command starts behind the seccomp filter (loaded by a tiny trusted wrapper, then exec)
        wrapped = module_argv("aarlab.sandbox.seccomp", "--", *argv)
        out = run_confined(
            wrapped if self.namespaces else list(argv),
            self._confinement() if self.namespaces else None,
            limits=replace(self.limits, wall_s=wall),
            env=self._env(),
            stdin=stdin.encode() if stdin is not None else None,
            cwd=str(self.sandbox),
        )
        text = out.output.decode("utf-8", "replace")
        code = out.returncode
        if out.timed_out:
            text += f"\n[killed: wall-clock limit of {wall:.0f} s exceeded]"
        elif out.memory is not None and out.memory.oom_kills:  # the command's memory cgroup hit its limit
            text += f"\n[killed: memory limit of {self.limits.memory_mb} MB exceeded]"
        elif code < 0:
            text += f"\n[killed by signal {signal.Signals(-code).name}]"
        return RunOutcome(code, text, out.timed_out, out.seconds)
