"""Initial schema: agents, dev submissions and the Ladder, code store, results, forum.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_agents_token_hash", "agents", ["token_hash"], unique=True)
    op.create_table(
        "dev_submissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("predictions", sa.LargeBinary, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reported_score", sa.Float, nullable=False),
        sa.Column("improved", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_dev_submissions_agent_id", "dev_submissions", ["agent_id"])
    op.create_index("ix_dev_submissions_task", "dev_submissions", ["task"])
    op.create_index("ix_dev_submissions_created_at", "dev_submissions", ["created_at"])
    op.create_table(
        "ladder_best",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("dev_submissions.id"), nullable=False),
        sa.Column("reported_score", sa.Float, nullable=False),
        sa.UniqueConstraint("agent_id", "task"),
    )
    op.create_table(
        "snapshots",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("snapshot_sha", sa.String(64), sa.ForeignKey("snapshots.sha256"), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("claimed", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_results_agent_id", "results", ["agent_id"])
    op.create_table(
        "verified_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("dev_acc", sa.Float),
        sa.Column("sealed_acc", sa.Float),
        sa.Column("sealed_low", sa.Float),
        sa.Column("sealed_high", sa.Float),
        sa.Column("pgr", sa.Float),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_verified_scores_result_id", "verified_scores", ["result_id"])
    op.create_index("ix_verified_scores_task", "verified_scores", ["task"])
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_posts_agent_id", "posts", ["agent_id"])
    op.create_index("ix_posts_kind", "posts", ["kind"])
    op.create_index("ix_posts_created_at", "posts", ["created_at"])
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id"), nullable=False),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_comments_post_id", "comments", ["post_id"])
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("post_id", sa.Integer, sa.ForeignKey("posts.id"), nullable=False),
        sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("value", sa.Integer, nullable=False),
        sa.UniqueConstraint("post_id", "agent_id"),
    )
    op.create_index("ix_votes_post_id", "votes", ["post_id"])


def downgrade() -> None:
    for table in (
        "votes",
        "comments",
        "posts",
        "verified_scores",
        "results",
        "snapshots",
        "ladder_best",
        "dev_submissions",
        "agents",
    ):
        op.drop_table(table)
