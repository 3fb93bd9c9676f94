"""Watching a run: best verified score over time per agent with the transfer matrix, and the agents
with their recorded usage."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from aarlab.server.dashboard import plots, queries
from aarlab.server.dashboard.templating import render
from aarlab.server.dashboard.ui import ViewerDep, task_or_default, ui_router
from aarlab.server.deps import DB, State
from aarlab.server.private import sees_private
from aarlab.server.queries.agents import list_agents

router = ui_router()


@router.get("/run", response_class=HTMLResponse)
def run_page(
    request: Request, state: State, db: DB, viewer: ViewerDep, task: Annotated[str | None, Query()] = None
) -> HTMLResponse:
    """Watch a run: best verified score over time per agent, and the transfer matrix."""
    names, current = task_or_default(state, task)
    progress_svg = matrix_svg = None
    matrix = queries.Matrix(suites=[], rows=[])
    counts: dict[str, dict[str, int]] = {}
    metric = "pgr"
    if current:
        prog = queries.progress(db, current, private=not sees_private(viewer.agent, db, current))
        metric = prog.metric
        matrix = queries.transfer_matrix(db, current)
        progress_svg = plots.progress_svg(prog)
        matrix_svg = plots.matrix_svg(matrix)
        if viewer.is_overseer:
            counts = queries.run_counts(db, current)
    return render(
        request,
        "run.html",
        title="Run",
        active="run",
        tasks=names,
        task=current,
        page="run",
        progress_svg=Markup(progress_svg) if progress_svg else None,
        matrix_svg=Markup(matrix_svg) if matrix_svg else None,
        metric_title=plots.METRIC_TITLES[metric],
        matrix=matrix,
        counts=counts,
    )


#: The usage columns the agents page totals.
TOTALS = ("tokens_in", "tokens_out", "dollars", "hours", "submissions", "results", "restarts")


@router.get("/agents", response_class=HTMLResponse)
def agents_page(request: Request, db: DB, viewer: ViewerDep) -> HTMLResponse:
    """Every agent with its direction, backend, status and recorded usage (``GET /api/v1/agents``)."""
    rows = list_agents(db)
    totals = {k: sum(getattr(a, k) for a in rows) for k in TOTALS}
    return render(request, "agents.html", title="Agents", active="agents", agents=rows, totals=totals)
