"""``aarlab transfer``: the transfer gate (ΔPGR vs vanilla on the sealed suites, Holm-corrected) for a
verified result on the server or for trusted local code."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from aarlab.cli.common import console, friendly, out, parse_config
from aarlab.cli.tables import gate_table
from aarlab.render import emit
from aarlab.testbed.errors import AarlabError


def transfer(
    result_id: Annotated[
        int | None, typer.Argument(help="a verified result on the server (needs --data-dir)")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="or: a method name, method.py file or folder (trusted, in-process)")
    ] = None,
    config: Annotated[str | None, typer.Option(help="method config as a JSON object")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="the server's data directory (with RESULT_ID)")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite)")] = None,
    seeds: Annotated[int, typer.Option(min=2, help="seeds per suite (registered with the settings)")] = 10,
    min_effect: Annotated[float, typer.Option(help="pre-registered minimum ΔPGR (H0: ΔPGR ≤ this)")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run the transfer gate: ΔPGR vs vanilla on the sealed suites, Holm-corrected, with a verdict.

    `aarlab transfer RESULT_ID --data-dir D` gates a verified result (its snapshot runs in the sandbox;
    the verdict is stored on the server); `aarlab transfer --method M` gates trusted local code."""
    from aarlab.transfer.gate import DEFAULT_SUITES, GateSettings, run_gate

    if (result_id is None) == (method is None):
        raise AarlabError("give either RESULT_ID (with --data-dir) or --method, not both")
    if not math.isfinite(min_effect):
        raise AarlabError(f"--min-effect must be a finite ΔPGR (e.g. 0.05), got {min_effect}")
    suites = [s.model_copy(update={"seeds": list(range(100, 100 + seeds))}) for s in DEFAULT_SUITES]
    settings = GateSettings(suites=suites, min_effect=min_effect)
    if result_id is not None:
        from aarlab.server.datadir import require_data_dir
        from aarlab.server.transfer_worker import transfer_result

        if data_dir is None:
            raise AarlabError("RESULT_ID needs --data-dir (the server's data directory)")
        require_data_dir(data_dir)
        from aarlab.lab.demo import gate_progress

        console.print(f"transfer gate for result {result_id} (settings {settings.fingerprint()})")
        with gate_progress(len(settings.suites), not as_json) as progress:
            stored = transfer_result(data_dir, db, result_id, settings, progress=progress)
        if stored["status"] != "done":
            raise AarlabError(f"transfer gate for result {result_id} failed: {stored['reason']}")
        result = stored["report"]
    else:
        assert method is not None
        from aarlab.lab.demo import gate_progress

        console.print(f"transfer gate for {method} (settings {settings.fingerprint()})")
        with gate_progress(len(settings.suites), not as_json) as progress:
            result = run_gate(method, parse_config(config), settings, progress=progress).to_json()
    if as_json:
        print(json.dumps(result))
        return
    emit(out, gate_table(result, out))
    out.print(f"{result['reason']} (settings {result['settings_hash']})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command()(friendly(transfer))
