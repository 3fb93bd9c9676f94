"""The orchestrator: N researcher agents with distinct directions, in parallel, against one server.

It registers each agent (its own token), gives it a copy of the label-free sandbox bundle in its own
folder, assigns a distinct direction, starts one **process** per agent (locally, or inside one Ray task
per agent), restarts an agent that crashes (bounded), enforces every budget, and records each agent's
usage on the server (``PUT /api/v1/agents/{name}/usage``, overseer only) while they run. It talks to the
server over :mod:`aarlab.api` only (never its database or data directory).

Modules, one job each:

* :mod:`.plans` — directions (file loading, assignment), budgets, :class:`AgentPlan`, :func:`make_plans`,
  the backend check and the per-agent record :class:`AgentState`;
* :mod:`.attempts` — one attempt of one agent: :class:`AgentJob`, the scrubbed environment,
  :class:`LocalAttempt` (a process group here) and :class:`RayAttempt` (one Ray task);
* :mod:`.runners` — the agent process itself (``python -m aarlab.agents.orchestrator``): the search,
  red-team and LLM runners and :func:`agent_main`;
* :mod:`.supervision` — :class:`Orchestrator`: registration, launches, restarts, budgets, usage.

Why a process per agent (``subprocess``, not threads nor a ``ProcessPoolExecutor``):

* isolation: the orchestrator's memory holds the overseer token and, with the in-process server, the
  dev labels; an agent thread could read both. A child gets a scrubbed environment and, on stdin, only
  its own token, the server URL and its folders (never the overseer token or the server's data dir);
* enforcement: a thread cannot be killed when it overruns its wall budget; a process group can;
* crashes: a dying agent (segfault, OOM kill, ``os._exit``) must not take the others with it, whereas a
  ``ProcessPoolExecutor`` turns one dead worker into ``BrokenProcessPool`` for every job, and its
  workers inherit the parent's environment.

On Ray the same child runs inside one Ray task per agent (so a cluster schedules agents like any job);
the bundle travels with the task, and usage is recorded when an attempt ends (no live stream).

Budgets are enforced twice: by the agent (its own loop stops cleanly at the cap: the search
researcher's :class:`~aarlab.agents.search.Budget`, or the LLM loop's ``LLMBudget``, given what is
*left* after earlier attempts) and by the orchestrator, which kills an agent that runs past its wall
budget (plus a grace period) or reports more tokens or dollars than allowed; the in-process lab also
sets the server's per-agent dev budget to the submission cap, so no submission past the cap can be
accepted.
"""

from aarlab.agents.orchestrator.attempts import (
    EVENT,
    AgentJob,
    Attempt,
    AttemptOutcome,
    LocalAttempt,
    RayAttempt,
    agent_command,
    agent_env,
)
from aarlab.agents.orchestrator.plans import (
    BACKENDS,
    REDTEAM_DIRECTION,
    AgentPlan,
    AgentState,
    ResearchBudget,
    assign_directions,
    check_backend,
    direction_from_json,
    direction_to_json,
    load_directions,
    make_plans,
)
from aarlab.agents.orchestrator.runners import RUNNERS, agent_main
from aarlab.agents.orchestrator.supervision import GRACE_S, Orchestrator, attach_verified

__all__ = [
    "BACKENDS",
    "EVENT",
    "GRACE_S",
    "REDTEAM_DIRECTION",
    "RUNNERS",
    "AgentJob",
    "AgentPlan",
    "AgentState",
    "Attempt",
    "AttemptOutcome",
    "LocalAttempt",
    "Orchestrator",
    "RayAttempt",
    "ResearchBudget",
    "agent_command",
    "agent_env",
    "agent_main",
    "assign_directions",
    "attach_verified",
    "check_backend",
    "direction_from_json",
    "direction_to_json",
    "load_directions",
    "make_plans",
]
