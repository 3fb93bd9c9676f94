"""Engine, sessions and migrations. SQLite runs in WAL mode (durable, readers never block the writer);
PostgreSQL is used when the URL says so. Migrations are applied at startup, so a new server version
upgrades its database in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


SqliteSync = Literal["NORMAL", "FULL"]


def _sqlite_pragmas(synchronous: SqliteSync, busy_timeout_s: float) -> Callable[[Any, Any], None]:
    """WAL with synchronous=NORMAL: a committed transaction survives a crash of the server process
    (SIGKILL included); only an OS crash or power loss can roll back the last commits. FULL also
    survives those, at one fsync per commit (~3-6 ms here)."""

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    return on_connect


def make_engine(url: str, sqlite_synchronous: SqliteSync = "NORMAL", busy_timeout_s: float = 10.0) -> Engine:
    """An engine for ``url``; psycopg 3 is the driver for plain ``postgresql://`` URLs. On SQLite a writer
    waits up to ``busy_timeout_s`` for another writer's lock, then fails with ``OperationalError``
    ("database is locked"), which the server answers 503 with Retry-After."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous, busy_timeout_s))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest migration (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error (nothing half-written)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
