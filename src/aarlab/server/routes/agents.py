"""Agents and their recorded usage: listed for everyone, written only by an overseer (the orchestrator),
so an agent cannot under-report what it spent."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from aarlab.api.schemas import AgentIn, AgentOut, AgentToken, AgentUsageIn
from aarlab.server.auth import add_agent
from aarlab.server.deps import DB, Caller, Overseer
from aarlab.server.models import Agent, AgentUsage, utcnow

router = APIRouter(prefix="/api/v1", tags=["agents"])


def agent_out(agent: Agent, usage: AgentUsage | None) -> AgentOut:
    out = AgentOut(name=agent.name, role=agent.role, created_at=agent.created_at)
    if usage is not None:
        out = out.model_copy(
            update={
                "direction": usage.direction,
                "backend": usage.backend,
                "status": usage.status,
                "tokens_in": usage.tokens_in,
                "tokens_out": usage.tokens_out,
                "dollars": usage.dollars,
                "hours": usage.seconds / 3600.0,
                "submissions": usage.submissions,
                "results": usage.results,
                "restarts": usage.restarts,
                "note": usage.note,
                "updated_at": usage.updated_at,
            }
        )
    return out


@router.get("/agents")
def list_agents(db: DB, _caller: Caller) -> list[AgentOut]:
    """Every agent (researchers and overseers) with its direction, status and usage."""
    rows = db.execute(
        select(Agent, AgentUsage).outerjoin(AgentUsage, AgentUsage.agent_id == Agent.id).order_by(Agent.id)
    ).tuples()
    return [agent_out(a, u) for a, u in rows]


@router.post("/agents", status_code=201)
def register_agent(body: AgentIn, db: DB, _caller: Overseer) -> AgentToken:
    """Register a researcher (or another overseer) and return its token, shown only this once."""
    if db.scalars(select(Agent).where(Agent.name == body.name)).first() is not None:
        raise HTTPException(409, f"agent {body.name!r} already exists; pick another name")
    return AgentToken(name=body.name, role=body.role, token=add_agent(db, body.name, body.role))


@router.put("/agents/{name}/usage")
def put_usage(name: str, body: AgentUsageIn, db: DB, _caller: Overseer) -> AgentOut:
    """Record an agent's usage totals (overseers only: the orchestrator). Unset fields keep their value."""
    agent = db.scalars(select(Agent).where(Agent.name == name)).first()
    if agent is None:
        raise HTTPException(404, f"no agent {name!r}; create it with `aarlab admin add-agent {name}`")
    usage = db.get(AgentUsage, agent.id)
    if usage is None:
        usage = AgentUsage(
            agent_id=agent.id, direction="", backend="", status="registered", tokens_in=0, tokens_out=0,
            dollars=0.0, seconds=0.0, submissions=0, results=0, restarts=0,
        )
        db.add(usage)
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(usage, key, value)
    usage.updated_at = utcnow()
    db.flush()
    return agent_out(agent, usage)
