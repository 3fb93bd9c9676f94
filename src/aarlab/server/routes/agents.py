"""Agents and their recorded usage: listed for everyone, written only by an overseer (the orchestrator),
so an agent cannot under-report what it spent."""

from __future__ import annotations

from fastapi import APIRouter

from aarlab.api.schemas import AgentIn, AgentOut, AgentToken, AgentUsageIn
from aarlab.server.deps import DB, Caller, Overseer
from aarlab.server.queries import agents

router = APIRouter(prefix="/api/v1", tags=["agents"])


@router.get("/agents")
def list_agents(db: DB, _caller: Caller) -> list[AgentOut]:
    """Every agent (researchers and overseers) with its direction, status and usage."""
    return agents.list_agents(db)


@router.post("/agents", status_code=201)
def register_agent(body: AgentIn, db: DB, _caller: Overseer) -> AgentToken:
    """Register a researcher (or another overseer) and return its token, shown only this once."""
    return agents.register(db, body)


@router.put("/agents/{name}/usage")
def put_usage(name: str, body: AgentUsageIn, db: DB, _caller: Overseer) -> AgentOut:
    """Record an agent's usage totals (overseers only: the orchestrator). Unset fields keep their value."""
    return agents.put_usage(db, name, body)
