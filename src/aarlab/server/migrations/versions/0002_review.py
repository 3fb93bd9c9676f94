"""Verification and review: the flags table (review queue), why a result failed or was disqualified,
and the verified numbers the leaderboard shows (dev CI, PGR CI, weak and ceiling accuracy, run time).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SCORE_COLUMNS = ("dev_low", "dev_high", "pgr_low", "pgr_high", "weak_acc", "ceiling_acc", "seconds")


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("verified_at", TS, nullable=True))
        batch.create_index("ix_results_status", ["status"])
    with op.batch_alter_table("verified_scores") as batch:
        for name in SCORE_COLUMNS:
            batch.add_column(sa.Column(name, sa.Float, nullable=True))
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), nullable=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolved_by", sa.Integer, sa.ForeignKey("agents.id"), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
    )
    op.create_index("ix_flags_result_id", "flags", ["result_id"])
    op.create_index("ix_flags_agent_id", "flags", ["agent_id"])
    op.create_index("ix_flags_status", "flags", ["status"])


def downgrade() -> None:
    op.drop_table("flags")
    with op.batch_alter_table("verified_scores") as batch:
        for name in SCORE_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("results") as batch:
        batch.drop_index("ix_results_status")
        batch.drop_column("verified_at")
        batch.drop_column("reason")
