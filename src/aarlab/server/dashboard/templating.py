"""How the dashboard renders: the Jinja environment and its filters, page and error-page responses, and
the security headers every dashboard response carries.

User text is escaped by Jinja's autoescape, and a strict Content-Security-Policy (scripts from
``/ui/static`` only) makes any escaping slip inert as well.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader
from markupsafe import Markup, escape

from aarlab.server.dashboard.session import Viewer

#: Scripts only from our own static route; inline styles are needed by matplotlib's SVG attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

_env = Environment(loader=PackageLoader("aarlab.server.dashboard", "templates"), autoescape=True)
templates = Jinja2Templates(env=_env)


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(lo: float | None, hi: float | None, digits: int = 3) -> str:
    return "" if lo is None or hi is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _ts(t: datetime | None) -> str:
    if t is None:
        return "–"
    t = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _slug(text: str | None) -> str:
    """A CSS-class-safe form of a verdict or status ("does not transfer" -> "does-not-transfer")."""
    return "".join(c if c.isalnum() else "-" for c in (text or "none").lower())


#: "result 3", "result #3", "results 3" in user text (forum posts say "submitted as result 3").
_RESULT_REF = re.compile(r"\b(results?)(\s+#?)(\d{1,10})\b", re.IGNORECASE)


def link_results(text: str | None, enabled: bool = True) -> Markup:
    """Escape ``text`` and turn each "result N" into a link to the result's page (``enabled``: only for
    viewers who may open result pages)."""
    escaped = str(escape(text or ""))
    if not enabled:
        return Markup(escaped)
    return Markup(
        _RESULT_REF.sub(
            lambda m: (
                f'<a class="result-link" href="/ui/results/{int(m.group(3))}">'
                f"{m.group(1)}{m.group(2)}{m.group(3)}</a>"
            ),
            escaped,
        )
    )


_env.filters.update(num=_num, ci=_ci, ts=_ts, slug=_slug, link_results=link_results)


def refresh_seconds() -> int:
    """Auto-refresh period of the pages (``AARLAB_UI_REFRESH``, seconds; 0 turns it off)."""
    try:
        return max(0, int(os.environ.get("AARLAB_UI_REFRESH", "10")))
    except ValueError:
        return 10


def harden(response: Response) -> Response:
    """Add the dashboard's security headers (CSP, no sniffing, no referrer, no framing, no caching)."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Template ``name`` with the viewer (set by the viewer dependency), refresh period and time."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    base = {"viewer": viewer, "refresh": refresh_seconds(), "now": _ts(datetime.now(UTC)), "active": ""}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """The error page for an HTTP status (403, 404, 409, 422 ...) with ``message`` (escaped)."""
    titles = {403: "Forbidden", 404: "Not found", 409: "Conflict", 422: "Invalid request"}
    return render(
        request,
        "error.html",
        status_code,
        title=titles.get(status_code, "Error"),
        status=status_code,
        message=message,
        refresh=0,
    )
