"""The FastAPI application: wires settings, storage, auth and the routers together.

``create_app`` migrates the database before serving, so a server never runs on an old schema.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from aarlab.api.schemas import Health, Whoami
from aarlab.server.codestore import CodeStore
from aarlab.server.dashboard import router as dashboard_router
from aarlab.server.db import make_engine, migrate, session_factory
from aarlab.server.deps import Caller
from aarlab.server.docs import add_offline_docs
from aarlab.server.middleware import BodyLimit, NoNul
from aarlab.server.routes import agents, dev, flags, forum, results, snapshots
from aarlab.server.routes import sandbox as sandbox_routes
from aarlab.server.settings import ServerSettings
from aarlab.server.state import ServerState, TaskUnavailableError
from aarlab.testbed.errors import AarlabError

log = logging.getLogger(__name__)

#: Seconds a client is told to wait after the database was busy (503).
DB_RETRY_AFTER_S = 1


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg')}")
    return "invalid request: " + "; ".join(parts[:5]) + (" (and more)" if len(parts) > 5 else "")


def create_app(settings: ServerSettings) -> FastAPI:
    """An app over ``settings.data_dir``; the database is migrated to the newest schema first."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, settings.sqlite_synchronous, settings.db_busy_timeout_s)
    migrate(engine)
    store = CodeStore(settings.code_url, settings.storage_options)
    app = FastAPI(
        title="aarlab evaluation server", version="1", description=__doc__, docs_url=None, redoc_url=None
    )
    add_offline_docs(app)
    state = ServerState(settings, engine, session_factory(engine), store)
    # load dev labels now (no slow first request); a broken task is logged and answered with 503
    state.usable_task_names()
    app.state.aarlab = state

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    @app.exception_handler(AarlabError)
    async def on_user_error(_request: Request, exc: AarlabError) -> JSONResponse:
        status = 503 if isinstance(exc, TaskUnavailableError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(OperationalError)
    async def on_database_error(request: Request, exc: OperationalError) -> JSONResponse:
        # the driver's text stays in the server's log only
        log.warning("database error on %s %s: %s", request.method, request.url.path, exc.orig)
        if exc.statement is None or exc.statement.strip().upper() == "COMMIT":
            # failed at COMMIT (or with no statement): it may have been stored, so no retry is invited
            return JSONResponse(
                {
                    "detail": "the database failed while saving; the request may have been stored. "
                    "Check (e.g. list your submissions) before sending it again"
                },
                status_code=503,
            )
        # failed at a statement (a lock held past the busy timeout, a deadlock): the transaction was
        # rolled back before anything was stored, so sending it again is safe
        return JSONResponse(
            {"detail": "the database is busy; nothing was stored. Retry the request"},
            status_code=503,
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    @app.get("/healthz", tags=["meta"])
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/api/v1/whoami", tags=["meta"])
    def whoami(caller: Caller) -> Whoami:
        return Whoami(name=caller.name, role=caller.role)

    routers = (agents.router, dev.router, forum.router, forum.html_router, results.router, snapshots.router)
    for r in (*routers, flags.router, sandbox_routes.router, dashboard_router):
        app.include_router(r)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(NoNul)
    return app


def app_from_env() -> Any:
    """Factory for ``uvicorn --factory``: settings from ``AARLAB_SERVER_*`` variables."""
    return create_app(ServerSettings())  # type: ignore[call-arg]
