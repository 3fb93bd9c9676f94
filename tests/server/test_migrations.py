"""The Alembic migrations (shipped in the package) create exactly the schema the ORM models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from aarlab.server.db import MIGRATIONS, make_engine, migrate
from aarlab.server.models import Base


def test_migrations_match_models_and_are_idempotent(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a restart on an up-to-date database changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        assert MigrationContext.configure(conn).get_current_revision() == "0006"
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    engine.dispose()


def test_migration_scripts_are_package_data():
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    assert (MIGRATIONS.parent / "alembic.ini").is_file()
    assert list((MIGRATIONS / "versions").glob("0001_*.py"))
    assert list((MIGRATIONS / "versions").glob("0002_*.py"))


def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_0002_upgrades_a_0001_database_in_place(db_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    engine = make_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO agents (id, name, role, token_hash, created_at) "
                "VALUES (1, 'a', 'agent', :h, CURRENT_TIMESTAMP)"
            ),
            {"h": "0" * 64},
        )
        conn.execute(text("INSERT INTO snapshots VALUES (:s, 1, 1, CURRENT_TIMESTAMP)"), {"s": "a" * 64})
        conn.execute(
            text(
                "INSERT INTO results (id, agent_id, task, snapshot_sha, config, claimed, status, created_at) "
                "VALUES (1, 1, 't', :s, '{}', '{}', 'queued', CURRENT_TIMESTAMP)"
            ),
            {"s": "a" * 64},
        )
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, reason, verified_at FROM results")).one()
        assert tuple(row) == ("queued", None, None)
        assert conn.execute(text("SELECT count(*) FROM flags")).scalar() == 0
    engine.dispose()
