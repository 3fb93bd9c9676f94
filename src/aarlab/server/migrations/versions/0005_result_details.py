"""Result pages: the result a method started from (``results.parent_id``) and what verification
established beyond the aggregate scores (``verified_scores.details``: seeds, per-seed scores, ablations).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.add_column(
            sa.Column(
                "parent_id",
                sa.Integer,
                sa.ForeignKey("results.id", name="fk_results_parent_id"),
                nullable=True,
            )
        )
    with op.batch_alter_table("verified_scores") as batch:
        batch.add_column(sa.Column("details", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("verified_scores") as batch:
        batch.drop_column("details")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("parent_id")
