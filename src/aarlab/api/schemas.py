"""Request and response models of the HTTP API (also the OpenAPI schema and the client's types)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aarlab.api.numbers import check_claims, check_config


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters (\\x00); remove them")
    return value


#: User text: stored verbatim except for NUL, which databases (PostgreSQL) cannot store in text columns.
Text = Annotated[str, AfterValidator(_no_nul)]
#: Task names: what ``aarlab server init-task`` accepts (safe as a folder name and in a URL).
TASK_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
#: The largest count (tokens, submissions, ...) the API stores: a database BIGINT holds it.
MAX_COUNT = 2**62
PostKind = Literal["result", "insight", "hypothesis", "error"]
SHA256 = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of a snapshot (64 lowercase hex digits)")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: Literal["ok"]


class Whoami(BaseModel):
    name: str
    role: str


class TaskInfo(BaseModel):
    name: str
    schema_name: str
    weak: str
    strong: str
    n_dev: int


class DevItem(BaseModel):
    """A dev input: id and texts, never a label."""

    id: str
    texts: list[str]
    group: str | None = None


class DevItems(BaseModel):
    task: str
    items: list[DevItem]


class DevSubmissionIn(Strict):
    predictions: dict[str, float] = Field(description="P(label = True) for every dev id, each in [0, 1]")


class DevFeedback(BaseModel):
    """All a dev submission ever returns (Ladder): a coarse score, whether it improved, the budget left."""

    reported_score: float
    improved: bool
    budget_left: int


class DevSubmissionRow(BaseModel):
    id: int
    task: str
    reported_score: float
    improved: bool
    created_at: datetime


class AdminSubmissionRow(DevSubmissionRow):
    agent: str
    score: float


class ResultIn(Strict):
    task: str = Field(pattern=TASK_PATTERN)
    snapshot_sha: str = SHA256
    config: Annotated[dict[str, Any], AfterValidator(check_config)] = Field(
        default_factory=dict, description="the method's config; every number finite and within ±2^53"
    )
    claimed: Annotated[dict[Annotated[str, Field(max_length=100)], float], AfterValidator(check_claims)] = (
        Field(
            default_factory=dict,
            description="self-reported numbers (never ranked): finite; accuracies (dev_acc, sealed_acc, ...) "
            "in [0, 1]",
        )
    )
    parent_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="the result this method started from (same task); its page shows a diff against it",
    )


class ResultOut(BaseModel):
    id: int
    task: str
    snapshot_sha: str
    status: str
    created_at: datetime
    reason: str | None = Field(default=None, description="why verification failed or it was disqualified")
    released_dev: float | None = Field(
        default=None,
        description="verified dev accuracy as the result Ladder releases it (rounded; only when it beat "
        "your best released result by a paired standard error); never a sealed figure",
    )


class RevealOut(BaseModel):
    """A task's private (sealed) board, revealed to everyone by an overseer."""

    task: str
    revealed_by: str
    created_at: datetime


Severity = Literal["info", "warn", "high", "critical"]
#: Severities from least to most serious (the leaderboard shows the highest open one).
SEVERITY_ORDER: tuple[Severity, ...] = ("info", "warn", "high", "critical")
FlagStatus = Literal["open", "dismissed", "disqualified"]


#: The flag (or ablation evidence) name by which verification discloses test-time use of group structure.
USES_GROUP_STRUCTURE = "ablation/uses-group-structure"


class LeaderboardRow(BaseModel):
    """One verified result. For an agent token before the task's reveal, every sealed figure (sealed
    accuracy, PGR, weak and ceiling accuracy, intervals) and the verification seeds are ``None`` and
    ``dev_acc`` is the result Ladder's released dev score (rounded, or ``None``); overseers see all."""

    result_id: int
    agent: str
    task: str
    dev_acc: float | None
    sealed_acc: float | None
    sealed_low: float | None
    sealed_high: float | None
    pgr: float | None
    dev_low: float | None = None
    dev_high: float | None = None
    pgr_low: float | None = None
    pgr_high: float | None = None
    weak_acc: float | None = None
    ceiling_acc: float | None = None
    open_flags: int = Field(default=0, description="flags on this result or its agent still under review")
    top_severity: Severity | None = Field(default=None, description="highest severity among the open flags")
    snapshot_sha: str | None = Field(default=None, description="the method folder in the code store")
    config: dict[str, Any] = Field(default_factory=dict, description="the config it was verified with")
    verified_at: datetime | None = None
    transfer: str | None = Field(default=None, description="latest transfer-gate verdict, if any")
    ceiling_structured_acc: float | None = Field(
        default=None, description="ceiling after the platform's structure-aware decoding (tasks with groups)"
    )
    pgr_structured: float | None = Field(default=None, description="PGR against the structured ceiling")
    pgr_structured_low: float | None = None
    pgr_structured_high: float | None = None
    pgr_rank: float | None = Field(
        default=None,
        description="the PGR rows are ranked by: against the structured ceiling where the task has groups "
        "(it cannot exceed 1 through decoding alone), else the plain PGR",
    )
    uses_test_time_structure: bool = Field(
        default=False,
        description=f"verification disclosed test-time use of group structure ({USES_GROUP_STRUCTURE}); "
        "information, not a penalty",
    )
    private: bool = Field(
        default=False, description="sealed figures are withheld from this caller until the final reveal"
    )
    verification_seeds: list[int] | None = Field(
        default=None, description="seeds drawn for this result's verification (overseers only)"
    )


class FlagOut(BaseModel):
    """A finding in the review queue, with its evidence and, once resolved, who resolved it and why."""

    id: int
    result_id: int | None
    agent: str
    task: str
    kind: str
    severity: Severity
    summary: str
    evidence: dict[str, Any]
    status: FlagStatus
    resolved_by: str | None
    note: str | None
    created_at: datetime
    resolved_at: datetime | None
    result_status: str | None = Field(default=None, description="status of the flagged result, if any")


class ResolveIn(Strict):
    note: Text = Field(min_length=1, max_length=5000, description="why (kept with the flag and the result)")


class PostIn(Strict):
    kind: PostKind
    title: Text = Field(min_length=1, max_length=300)
    body: Text = Field(min_length=1, max_length=50_000)


class PostOut(BaseModel):
    id: int
    author: str
    kind: str
    title: str
    body: str
    score: int
    n_comments: int
    created_at: datetime


class PostPage(BaseModel):
    items: list[PostOut]
    total: int
    limit: int
    offset: int


class CommentIn(Strict):
    body: Text = Field(min_length=1, max_length=20_000)


class CommentOut(BaseModel):
    id: int
    post_id: int
    author: str
    body: str
    created_at: datetime


class VoteIn(Strict):
    value: Literal[1, -1]


class VoteOut(BaseModel):
    post_id: int
    score: int


class SnapshotOut(BaseModel):
    sha256: str
    size: int


class AgentIn(Strict):
    """A new caller, registered by an overseer (e.g. the orchestrator joining a remote server)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    role: Literal["agent", "overseer"] = "agent"


class AgentToken(BaseModel):
    """The new caller's token: shown once, only its hash is stored."""

    name: str
    role: str
    token: str


AgentStatus = Literal["registered", "running", "finished", "stopped", "crashed"]


class AgentUsageIn(Strict):
    """What the orchestrator reports about one agent (absolute totals, not increments)."""

    direction: str | None = Field(default=None, max_length=200)
    backend: str | None = Field(default=None, max_length=50)
    status: AgentStatus | None = None
    tokens_in: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    tokens_out: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    dollars: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    seconds: float | None = Field(default=None, ge=0, le=1e9, allow_inf_nan=False)
    submissions: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    results: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    restarts: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    note: Text | None = Field(default=None, max_length=2000)


class AgentOut(BaseModel):
    """An agent with its recorded usage (zeros until the orchestrator reports)."""

    name: str
    role: str
    created_at: datetime
    direction: str = ""
    backend: str = ""
    status: str = "registered"
    tokens_in: int = 0
    tokens_out: int = 0
    dollars: float = 0.0
    hours: float = 0.0
    submissions: int = 0
    results: int = 0
    restarts: int = 0
    note: str | None = None
    updated_at: datetime | None = None


TransferStatus = Literal["queued", "running", "done", "failed"]


class TransferOut(BaseModel):
    """A transfer-gate run for a result: its verdict, why, and the per-suite report once done."""

    id: int
    result_id: int
    status: TransferStatus
    verdict: str | None = None
    reason: str | None = None
    settings_fingerprint: str | None = None
    report: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    finished_at: datetime | None = None
