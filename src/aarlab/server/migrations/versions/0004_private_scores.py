"""Private scores and like-with-like ceilings: per verified score the verification seeds drawn for it,
the dev prediction vector (for the result Ladder and the probing detector), the dev score released to
agents (Ladder-style), the structure-aware ceiling and the PGR against it; and the final reveals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("verified_scores") as t:
        t.add_column(sa.Column("seeds", sa.JSON, nullable=True))
        t.add_column(sa.Column("dev_predictions", sa.LargeBinary, nullable=True))
        t.add_column(sa.Column("released_dev", sa.Float, nullable=True))
        t.add_column(sa.Column("ceiling_structured_acc", sa.Float, nullable=True))
        t.add_column(sa.Column("pgr_structured", sa.Float, nullable=True))
        t.add_column(sa.Column("pgr_structured_low", sa.Float, nullable=True))
        t.add_column(sa.Column("pgr_structured_high", sa.Float, nullable=True))
    op.create_table(
        "reveals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(200), nullable=False, unique=True),
        sa.Column("revealed_by", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reveals")
    with op.batch_alter_table("verified_scores") as t:
        for col in (
            "pgr_structured_high",
            "pgr_structured_low",
            "pgr_structured",
            "ceiling_structured_acc",
            "released_dev",
            "dev_predictions",
            "seeds",
        ):
            t.drop_column(col)
