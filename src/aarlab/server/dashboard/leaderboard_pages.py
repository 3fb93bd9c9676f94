"""The leaderboard page with its CSV and JSON exports, and the page of one result (overseers).

Rows come from :func:`aarlab.server.queries.leaderboard.board_rows`, the API's own query, with the
logged-in agent as the caller, so a viewer sees exactly what the API shows their role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from aarlab.server.dashboard import leaderboard_view as lv
from aarlab.server.dashboard import result_view
from aarlab.server.dashboard.session import Viewer
from aarlab.server.dashboard.templating import render
from aarlab.server.dashboard.ui import OverseerDep, ViewerDep, task_or_default, ui_router
from aarlab.server.deps import DB, State
from aarlab.server.errors import NotFound, Unprocessable
from aarlab.server.queries.leaderboard import board_rows
from aarlab.server.ranking import split_ranked
from aarlab.server.state import ServerState

router = ui_router()
ResultIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


@dataclass(frozen=True)
class BoardQuery:
    """The leaderboard's task, sort, order, text filter and flag filter, from the query string."""

    task: str | None
    sort: str
    order: str
    q: str
    flags: str


def board_query(
    task: Annotated[str | None, Query()] = None,
    sort: Annotated[str, Query(max_length=20)] = "rank",
    order: Annotated[str, Query(max_length=4)] = "asc",
    q: Annotated[str, Query(max_length=200)] = "",
    flags: Annotated[str, Query(max_length=10)] = "any",
) -> BoardQuery:
    return BoardQuery(task, sort, order, q, flags)


Board = Annotated[BoardQuery, Depends(board_query)]


@dataclass(frozen=True)
class Arranged:
    """Every task name, the one shown, its ranked and pending rows after sort/filter, and the row count
    before filtering."""

    names: list[str]
    current: str | None
    ranked: list[lv.BoardRow]
    pending: list[lv.BoardRow]
    total: int


def _board(state: ServerState, db: Session, viewer: Viewer, b: BoardQuery, q: str) -> Arranged:
    names, current = task_or_default(state, b.task)
    # overseers also get the results held back by an open critical flag (listed apart, never ranked)
    rows = board_rows(db, viewer.agent, current, pending=viewer.is_overseer) if current else []
    methods = {r.result_id: result_view.method_for(state.store, r.snapshot_sha or "") for r in rows}
    try:
        ranked, pending = lv.arrange(rows, methods, sort=b.sort, order=b.order, q=q, flags=b.flags)
    except lv.BadQuery as e:
        raise Unprocessable(str(e)) from None
    return Arranged(names, current, ranked, pending, len(rows))


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request, state: State, db: DB, viewer: ViewerDep, b: Board) -> HTMLResponse:
    """Verified, non-disqualified rows per task (``GET /api/v1/leaderboard``): ranked rows, and rows with
    an open critical flag listed apart as pending review; sortable, filterable, exportable."""
    q = b.q.replace("\x00", "").strip()
    a = _board(state, db, viewer, b, q)
    base = {"task": a.current or "", "q": q, "flags": b.flags}

    def sort_link(key: str) -> str:
        nxt = "desc" if b.sort == key and b.order == "asc" else "asc"
        return "/ui/leaderboard?" + urlencode({**base, "sort": key, "order": nxt})

    export = urlencode({**base, "sort": b.sort, "order": b.order})
    return render(
        request,
        "leaderboard.html",
        title="Leaderboard",
        active="leaderboard",
        tasks=a.names,
        task=a.current,
        rows=a.ranked,
        pending=a.pending,
        total=a.total,
        page="leaderboard",
        sort=b.sort,
        order=b.order,
        q=q,
        flags=b.flags,
        flag_filters=lv.FLAG_FILTERS,
        sort_links={k: sort_link(k) for k in lv.SORTS},
        csv_url="/ui/leaderboard.csv?" + export,
        json_url="/ui/leaderboard.json?" + export,
        api_url="/api/v1/leaderboard?" + urlencode({"task": a.current or ""}),
        overseer=viewer.is_overseer,
    )


def _download(body: str, media_type: str, name: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/leaderboard.csv")
def leaderboard_csv(state: State, db: DB, viewer: ViewerDep, b: Board) -> Response:
    """The leaderboard as CSV (ranked rows, then rows pending review), with the page's sort and filter."""
    a = _board(state, db, viewer, b, b.q.strip())
    name = f"leaderboard-{a.current or 'none'}.csv"
    return _download(lv.to_csv(a.ranked + a.pending), "text/csv; charset=utf-8", name)


@router.get("/leaderboard.json")
def leaderboard_json(state: State, db: DB, viewer: ViewerDep, b: Board) -> Response:
    """The leaderboard as JSON: ``{"task", "exported_at", "ranked": [...], "pending_review": [...]}``."""
    a = _board(state, db, viewer, b, b.q.strip())
    body = lv.to_json(a.current or "", a.ranked, a.pending, datetime.now(UTC))
    return _download(
        json.dumps(body, indent=2), "application/json", f"leaderboard-{a.current or 'none'}.json"
    )


@router.get("/results/{result_id}", response_class=HTMLResponse)
def result_page(
    request: Request, result_id: ResultIdPath, state: State, db: DB, viewer: OverseerDep
) -> HTMLResponse:
    """One result: method and code, config, parent and diff, seeds and per-seed scores, ablations, flags
    with evidence and transfer verdicts per suite (overseers only: it shows sealed figures)."""
    view = result_view.result_view(db, state.store, result_id)
    if view is None:
        raise NotFound(f"no result {result_id}; the leaderboard links every result it shows")
    ranked, pending = split_ranked(board_rows(db, viewer.agent, view.result.task, pending=True))
    rank = next((k for k, r in enumerate(ranked, 1) if r.result_id == result_id), None)
    return render(
        request,
        "result.html",
        title=f"Result {result_id}",
        active="leaderboard",
        v=view,
        rank=rank,
        pending=any(r.result_id == result_id for r in pending),
        board_size=len(ranked),
    )
