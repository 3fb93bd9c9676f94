"""ORM tables. Every row an agent writes carries its author (``agent_id``), so every write is attributable.

The schema itself is created by the Alembic migrations in ``aarlab/server/migrations``; these classes
must match them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of all server tables."""


class Agent(Base):
    """A caller: a researcher agent or an overseer. Only the token's sha256 is stored."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DevSubmission(Base):
    """One dev query, logged with its full prediction vector (float32, in the task's dev-id order)."""

    __tablename__ = "dev_submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    task: Mapped[str] = mapped_column(String(200), index=True)
    predictions: Mapped[bytes] = mapped_column(LargeBinary)
    score: Mapped[float] = mapped_column(Float)
    reported_score: Mapped[float] = mapped_column(Float)
    improved: Mapped[bool] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class LadderBest(Base):
    """The Ladder's state per (agent, task): the submission that is the current best, and its report."""

    __tablename__ = "ladder_best"
    __table_args__ = (UniqueConstraint("agent_id", "task"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    task: Mapped[str] = mapped_column(String(200))
    submission_id: Mapped[int] = mapped_column(ForeignKey("dev_submissions.id"))
    reported_score: Mapped[float] = mapped_column(Float)


class Snapshot(Base):
    """A content-addressed method folder (tar.gz) in the code store; the bytes live in fsspec storage."""

    __tablename__ = "snapshots"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Result(Base):
    """A method (snapshot + config) queued for verified re-execution; claimed numbers are never ranked."""

    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    snapshot_sha: Mapped[str] = mapped_column(ForeignKey("snapshots.sha256"))
    config: Mapped[dict[str, object]] = mapped_column(JSON)
    claimed: Mapped[dict[str, float]] = mapped_column(JSON)
    #: queued -> running -> verified | failed; an overseer may set disqualified (see ``reason``).
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Why the result failed verification or was disqualified (kept when an overseer disqualifies it).
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The result this method started from, when the submitter named one (shown with a diff against it).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"), nullable=True)


class VerifiedScore(Base):
    """A score computed by the trusted verifier (filled by ``verify/``): the only leaderboard source."""

    __tablename__ = "verified_scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    task: Mapped[str] = mapped_column(String(200), index=True)
    dev_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    sealed_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    sealed_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    sealed_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgr: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dev_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    dev_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgr_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgr_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    weak_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    ceiling_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: What verification established beyond the aggregates: ``{"seeds": [...], "per_seed": [{seed,
    #: dev_acc, sealed_acc, sandbox_seconds}], "ablation": {...} | None, "method_seconds": float}``.
    #: Sealed figures: overseer views only.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The verification seeds drawn for this result (overseers see them; agents never do).
    seeds: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    #: Mean dev probability over the seeds, float32 in the task's dev order (result Ladder, probing).
    dev_predictions: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: What agents are told about the dev score: the Ladder's rounded report, or nothing (no improvement).
    released_dev: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The ceiling after the platform's structure-aware decoding, and the PGR against it (groups only).
    ceiling_structured_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgr_structured: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgr_structured_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    pgr_structured_high: Mapped[float | None] = mapped_column(Float, nullable=True)


class Reveal(Base):
    """The final reveal of a task's private (sealed) board: an overseer's action, once per task."""

    __tablename__ = "reveals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(200), unique=True)
    revealed_by: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewFlag(Base):
    """A detector's finding in the review queue. ``result_id`` is empty for per-agent findings (probing
    of the dev log); an overseer dismisses it or disqualifies the result(s) it concerns."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id"), nullable=True, index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: open -> dismissed | disqualified
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Post(Base):
    """A forum post; text is data, stored verbatim and escaped only when rendered as HTML."""

    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Vote(Base):
    """One vote per agent and post (+1 or −1); voting again replaces it."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("post_id", "agent_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    value: Mapped[int] = mapped_column(Integer)


class AgentUsage(Base):
    """What an agent has used, as recorded by the orchestrator (trusted; agents cannot write it)."""

    __tablename__ = "agent_usage"
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    direction: Mapped[str] = mapped_column(String(200), default="")
    backend: Mapped[str] = mapped_column(String(50), default="")
    #: registered -> running -> finished | stopped (a budget) | crashed
    status: Mapped[str] = mapped_column(String(32), default="registered")
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    dollars: Mapped[float] = mapped_column(Float, default=0.0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    submissions: Mapped[int] = mapped_column(BigInteger, default=0)
    results: Mapped[int] = mapped_column(BigInteger, default=0)
    restarts: Mapped[int] = mapped_column(BigInteger, default=0)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TransferVerdict(Base):
    """One transfer-gate run for a verified result: queued by an overseer, computed by the worker."""

    __tablename__ = "transfer_verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id"), index=True)
    #: queued -> running -> done | failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    #: transfers | does not transfer | underpowered (when done)
    verdict: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
