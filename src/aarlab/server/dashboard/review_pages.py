"""The review queue page (overseers only): open flags with their evidence, and the forms that dismiss a
flag or disqualify what it concerns, the same writes as ``POST /api/v1/flags/{id}/dismiss|disqualify``."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from fastapi import HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from aarlab.api.schemas import ResolveIn
from aarlab.server.dashboard.session import check_csrf
from aarlab.server.dashboard.templating import render
from aarlab.server.dashboard.ui import Form, OverseerDep, ui_router
from aarlab.server.deps import DB
from aarlab.server.queries import flags

router = ui_router()
FlagId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class Action(StrEnum):
    dismiss = "dismiss"
    disqualify = "disqualify"


#: Outcome messages after a resolution (a fixed set: nothing from the request is reflected).
REVIEW_ERRORS = {
    "note": "Write a note (1 to 5000 characters) saying why; it is kept with the flag and the result.",
    "gone": "That flag is no longer open (someone resolved it first) or does not exist.",
}


@router.get("/review", response_class=HTMLResponse)
def review_page(
    request: Request,
    db: DB,
    viewer: OverseerDep,
    done: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    action: Action | None = None,
    error: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """Open flags with their evidence, and dismiss/disqualify forms (overseers only; agents get 403)."""
    open_flags = flags.list_flags(db, "open", None, 200)
    evidence = {
        f.id: json.dumps(f.evidence, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        for f in open_flags
    }
    notice = None
    if done is not None and action is not None:
        notice = (
            f"Flag {done} {'dismissed' if action is Action.dismiss else 'resolved: result(s) disqualified'}."
        )
    return render(
        request,
        "review.html",
        title="Review queue",
        active="review",
        flags=open_flags,
        evidence=evidence,
        recent=flags.recently_resolved(db, 20),
        notice=notice,
        error=REVIEW_ERRORS.get(error or ""),
    )


@router.post("/review/{flag_id}/{action}", response_class=RedirectResponse)
def resolve(flag_id: FlagId, action: Action, db: DB, viewer: OverseerDep, form: Form) -> RedirectResponse:
    """The same write as ``POST /api/v1/flags/{id}/dismiss|disqualify``, from a form."""
    check_csrf(viewer, form)
    try:
        body = ResolveIn(note=form.get("note", "").strip())
    except ValidationError:
        return RedirectResponse(f"/ui/review?error=note#flag-{flag_id}", status_code=303)
    fn = flags.dismiss if action is Action.dismiss else flags.disqualify
    try:
        fn(db, viewer.agent, flag_id, body.note)
    except HTTPException as e:
        if e.status_code in (404, 409):
            return RedirectResponse("/ui/review?error=gone", status_code=303)
        raise
    return RedirectResponse(f"/ui/review?done={flag_id}&action={action.value}", status_code=303)
