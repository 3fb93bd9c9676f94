"""Agents and their recorded usage (written by an overseer, the orchestrator, never by the agent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aarlab.api.schemas import AgentIn, AgentOut, AgentToken, AgentUsageIn
from aarlab.server.auth import add_agent
from aarlab.server.errors import Conflict, NotFound
from aarlab.server.models import Agent, AgentUsage, utcnow

#: Usage columns copied as they are into ``AgentOut`` (``seconds`` becomes ``hours``).
_USAGE_FIELDS = (
    "direction", "backend", "status", "tokens_in", "tokens_out", "dollars", "submissions", "results",
    "restarts", "note", "updated_at",
)  # fmt: skip


def agent_out(agent: Agent, usage: AgentUsage | None) -> AgentOut:
    """An agent with its usage totals (the schema's zeros until the orchestrator reports)."""
    fields: dict[str, Any] = {}
    if usage is not None:
        fields = {k: getattr(usage, k) for k in _USAGE_FIELDS}
        fields["hours"] = usage.seconds / 3600.0
    return AgentOut(name=agent.name, role=agent.role, created_at=agent.created_at, **fields)


def list_agents(db: Session) -> list[AgentOut]:
    """Every agent (researchers and overseers), in registration order, with its usage."""
    rows = db.execute(
        select(Agent, AgentUsage).outerjoin(AgentUsage, AgentUsage.agent_id == Agent.id).order_by(Agent.id)
    ).tuples()
    return [agent_out(a, u) for a, u in rows]


def register(db: Session, body: AgentIn) -> AgentToken:
    """Create an agent and return its token (shown once); :class:`Conflict` if the name is taken."""
    if db.scalars(select(Agent).where(Agent.name == body.name)).first() is not None:
        raise Conflict(f"agent {body.name!r} already exists; pick another name")
    return AgentToken(name=body.name, role=body.role, token=add_agent(db, body.name, body.role))


def put_usage(db: Session, name: str, body: AgentUsageIn) -> AgentOut:
    """Set the agent's usage totals from the fields ``body`` sets (unset ones keep their value)."""
    agent = db.scalars(select(Agent).where(Agent.name == name)).first()
    if agent is None:
        raise NotFound(f"no agent {name!r}; create it with `aarlab admin add-agent {name}`")
    usage = db.get(AgentUsage, agent.id)
    if usage is None:
        usage = AgentUsage(
            agent_id=agent.id, direction="", backend="", status="registered", tokens_in=0, tokens_out=0,
            dollars=0.0, seconds=0.0, submissions=0, results=0, restarts=0,
        )  # fmt: skip
        db.add(usage)
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(usage, key, value)
    usage.updated_at = utcnow()
    db.flush()
    return agent_out(agent, usage)
