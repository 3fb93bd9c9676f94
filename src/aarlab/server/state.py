"""What one server process holds: settings, the database, the code store, and the loaded dev labels."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aarlab.server.codestore import CodeStore
from aarlab.server.datadir import EvalTask, load_eval_task, task_names
from aarlab.server.settings import ServerSettings


@dataclass
class ServerState:
    """Shared by every request of one app; dev labels are loaded once per task and never leave it."""

    settings: ServerSettings
    engine: Engine
    sessions: sessionmaker[Session]
    store: CodeStore
    _tasks: dict[str, EvalTask] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Serialises one agent's dev submissions, so the Ladder state is read and updated atomically.
    agent_locks: defaultdict[int, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    def task(self, name: str) -> EvalTask:
        with self._lock:
            if name not in self._tasks:
                self._tasks[name] = load_eval_task(self.settings.data_dir, name)
            return self._tasks[name]

    def task_names(self) -> list[str]:
        return task_names(self.settings.data_dir)

    def agent_lock(self, agent_id: int) -> threading.Lock:
        with self._lock:
            return self.agent_locks[agent_id]
