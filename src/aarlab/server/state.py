"""What one server process holds: settings, the database, the code store, and the loaded dev labels."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aarlab.server.codestore import CodeStore
from aarlab.server.datadir import EvalTask, load_eval_task, task_names
from aarlab.server.settings import ServerSettings
from aarlab.testbed.errors import AarlabError, UnknownNameError

log = logging.getLogger(__name__)


class TaskUnavailableError(AarlabError):
    """A task exists on disk but its files cannot be loaded (HTTP 503 with the reason)."""


@dataclass
class ServerState:
    """Shared by every request of one app; dev labels are loaded once per task and never leave it."""

    settings: ServerSettings
    engine: Engine
    sessions: sessionmaker[Session]
    store: CodeStore
    _tasks: dict[str, EvalTask] = field(default_factory=dict)
    _broken: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Serialises one agent's dev submissions, so the Ladder state is read and updated atomically.
    agent_locks: defaultdict[int, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    def task(self, name: str) -> EvalTask:
        """The loaded task; UnknownNameError if there is none of that name, TaskUnavailableError if its
        files on disk are broken (one bad task never takes the server down with it)."""
        with self._lock:
            if name in self._broken:
                raise TaskUnavailableError(self._broken[name])
            if name not in self._tasks:
                try:
                    self._tasks[name] = load_eval_task(self.settings.data_dir, name)
                except UnknownNameError:
                    raise
                except AarlabError as e:
                    why = (
                        f"task {name!r} is unavailable: its data on the server is broken ({e}); an "
                        "operator must fix or re-create it with `aarlab server init-task`"
                    )
                    log.error("%s", why)
                    self._broken[name] = why
                    raise TaskUnavailableError(why) from None
            return self._tasks[name]

    def task_names(self) -> list[str]:
        """Tasks on disk (including broken ones: ``task()`` says why those are unavailable)."""
        return task_names(self.settings.data_dir)

    def usable_task_names(self) -> list[str]:
        """Tasks that load."""
        out = []
        for name in self.task_names():
            try:
                self.task(name)
            except TaskUnavailableError:
                continue
            out.append(name)
        return out

    def agent_lock(self, agent_id: int) -> threading.Lock:
        with self._lock:
            return self.agent_locks[agent_id]
