"""The ``aarlab`` command line: one Typer app (:data:`app`), its commands split by area.

* :mod:`.common` — the app, the consoles, error handling (:func:`~aarlab.cli.common.friendly`);
* :mod:`.tables` — every table, through the one renderer :mod:`aarlab.render`;
* :mod:`.testbed` — ``tasks list|export``, ``encoders list``, ``methods list``;
* :mod:`.baseline` — ``baseline``, ``baseline-table``;
* :mod:`.transfer` — ``transfer`` (the gate);
* :mod:`.research` — ``research``; :mod:`.demo` — ``demo``;
* :mod:`.review` — ``review list|show|dismiss|disqualify|reveal`` (an overseer, over the HTTP API);
* the server's commands (``serve``, ``verify``, ``admin``, ``server``, ...) from :mod:`aarlab.server.cli`,
  and ``mcp`` from :mod:`aarlab.agents.mcp_server`.

User errors (AarlabError) are printed as one clear message with exit code 2, never as a traceback.
"""

from __future__ import annotations

from aarlab.agents.mcp_server import mcp_command
from aarlab.cli import baseline, demo, research, review, testbed, transfer
from aarlab.cli.common import app, friendly
from aarlab.server.cli import register as register_server_commands

for area in (testbed, baseline, transfer, research, demo):  # the order `aarlab -h` lists them in
    area.register(app)
register_server_commands(app, friendly)
review.register(app, friendly)
app.command("mcp", help="Serve the researcher tools over MCP (stdio) for an external agent harness.")(
    friendly(mcp_command)
)

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - entry point
    app()
