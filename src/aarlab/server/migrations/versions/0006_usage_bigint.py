"""Usage counts as 64-bit integers: ``AgentUsageIn`` accepts counts up to 2**62 (a long run's tokens
pass 2**31), and PostgreSQL's 32-bit INTEGER refused them with a server error.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COUNTS = ("tokens_in", "tokens_out", "submissions", "results", "restarts")


def upgrade() -> None:
    with op.batch_alter_table("agent_usage") as batch:
        for name in COUNTS:
            batch.alter_column(name, type_=sa.BigInteger, existing_type=sa.Integer)


def downgrade() -> None:
    with op.batch_alter_table("agent_usage") as batch:
        for name in COUNTS:
            batch.alter_column(name, type_=sa.Integer, existing_type=sa.BigInteger)
