"""Alembic environment: runs on the connection the server hands over (``config.attributes``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from aarlab.server.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("aarlab migrations run through aarlab.server.db.migrate(), not the alembic CLI")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
