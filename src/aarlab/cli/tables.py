"""Every table the CLI prints, built with the one renderer (:func:`aarlab.render.table`): it fits the
terminal without cutting identifiers or splitting words, and is plain and wide off a terminal.

Rows come in as JSON-like dicts (what ``--json`` prints), so the live display, ``aarlab research`` and
``aarlab demo`` share one leaderboard table and one agents table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, RenderableType

from aarlab.render import Col, table

DASH = "–"
STATUS_COLORS = {"running": "cyan", "finished": "green", "stopped": "yellow", "crashed": "red"}


def fmt(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or a dash for None."""
    return DASH if x is None else f"{x:.{digits}f}"


def with_ci(x: float | None, lo: float | None, hi: float | None, spec: str) -> str:
    """``"x [lo, hi]"`` in format ``spec`` (``"x"`` without bounds; a dash for None)."""
    if x is None:
        return DASH
    if lo is None or hi is None:
        return format(x, spec)
    return f"{format(x, spec)} [{format(lo, spec)}, {format(hi, spec)}]"


def leaderboard_table(rows: Sequence[Mapping[str, Any]], title: str, console: Console) -> RenderableType:
    """Leaderboard rows (``LeaderboardRow`` as JSON): ranked rows, then rows pending review (an open
    critical flag; never ranked), with 95% CIs, open flags, the transfer verdict and the config."""
    from aarlab.server.ranking import split_ranked

    ranked, pending = split_ranked([dict(r) for r in rows])
    body = []
    for k, row in [*enumerate(ranked, 1), *((None, p) for p in pending)]:
        flags = DASH if not row["open_flags"] else f"[red]{row['open_flags']} ({row['top_severity']})[/]"
        body.append(
            [
                str(k) if k is not None else "[red]pending review[/]",
                str(row["result_id"]),
                row["agent"],
                with_ci(row["dev_acc"], row.get("dev_low"), row.get("dev_high"), ".3f"),
                with_ci(row["sealed_acc"], row.get("sealed_low"), row.get("sealed_high"), ".3f"),
                with_ci(row["pgr"], row.get("pgr_low"), row.get("pgr_high"), "+.2f"),
                flags,
                row.get("transfer") or DASH,
                json.dumps(row.get("config") or {}, sort_keys=True),
            ]
        )
    cols = [
        Col("rank", "id"),
        Col("result", "id"),
        Col("agent", "id"),
        Col("dev acc [CI]", "num", 3, "right"),
        Col("sealed acc [CI]", "num", 0, "right"),
        Col("PGR [CI]", "num", 2, "right"),
        Col("open flags", "id"),
        Col("transfer", "text", 1),
        Col("config", "text", 4),
    ]
    note = (
        f"{len(pending)} result(s) with an open critical flag are pending review and not ranked; "
        "an overseer resolves them in the dashboard's review queue."
        if pending
        else None
    )
    return table(title, cols, body, console, note)


def agents_table(agents: Sequence[Mapping[str, Any]], title: str, console: Console) -> RenderableType:
    """Agents (``AgentState.to_json()`` dicts): status, dev submissions, results, best dev (Ladder /
    verified), usage and why it stopped. A ``server_usage`` entry (the server's record, as the demo
    keeps it) replaces status, submissions, results and seconds with what the server holds."""
    cols = [
        Col("agent", "id"),
        Col("direction", "id", 2),
        Col("backend", "id", 4),
        Col("status", "id"),
        Col("subs", "num", 0, "right"),
        Col("results", "num", 0, "right"),
        Col("best dev", "num", 0, "right"),
        Col("verified dev", "num", 1, "right"),
        Col("tokens", "num", 5, "right"),
        Col("$", "num", 5, "right"),
        Col("s", "num", 3, "right"),
        Col("restarts", "num", 4, "right"),
        Col("reason", "text", 3),
    ]
    rows = []
    for a in agents:
        u = a.get("server_usage") or {}
        status = str(u.get("status", a.get("status", DASH)))
        results = u.get("results", len(a["results"]) if "results" in a else DASH)
        seconds = 3600 * float(u["hours"]) if "hours" in u else a.get("seconds")
        rows.append(
            [
                a["name"],
                a.get("direction", DASH),
                a.get("backend", DASH),
                f"[{STATUS_COLORS.get(status, 'white')}]{status}[/]",
                str(u.get("submissions", a.get("submissions", DASH))),
                str(results),
                fmt(a.get("best_dev")),
                fmt(a.get("verified_dev")),
                str(a.get("tokens", DASH)),
                fmt(a.get("dollars"), 2),
                fmt(seconds, 0),
                str(a.get("restarts", DASH)),
                a.get("stop_reason", ""),
            ]
        )
    return table(title, cols, rows, console)


def flags_table(flags: Sequence[Mapping[str, Any]], title: str, console: Console) -> RenderableType:
    """Review-queue flags (``FlagOut`` as JSON: id, agent, result_id, kind, severity, summary)."""
    cols = [
        Col("flag", "id"),
        Col("agent", "id"),
        Col("result", "id"),
        Col("kind", "id"),
        Col("severity", "id"),
        Col("summary", "text"),
    ]
    rows = [
        [str(f["id"]), f["agent"], str(f["result_id"] or "dev log"), f["kind"], f["severity"], f["summary"]]
        for f in flags
    ]
    return table(title, cols, rows, console)


def verdicts_table(verdicts: Sequence[Mapping[str, Any]], title: str, console: Console) -> RenderableType:
    """Transfer-gate verdicts of results (the demo's ``verdicts``): per suite ΔPGR [CI] and Holm p."""
    rows = []
    for v in verdicts:
        suites = "; ".join(
            f"{s['suite']}: {s['status']}"
            + (
                ""
                if s["delta_pgr"] is None
                else f" {s['delta_pgr']:+.3f} [{s['delta_pgr_ci'][0]:+.3f}, {s['delta_pgr_ci'][1]:+.3f}]"
            )
            + ("" if s["p_holm"] is None else f", p {s['p_holm']:.3f}")
            for s in v["suites"]
        )
        rows.append(
            [str(v["result_id"]), v["agent"], str(v["verdict"] or v["status"]), suites, v["reason"] or ""]
        )
    cols = [
        Col("result", "id"),
        Col("agent", "id"),
        Col("verdict", "id"),
        Col("suites (ΔPGR [CI], p Holm)", "text"),
        Col("reason", "text", 1),
    ]
    return table(title, cols, rows, console)


def gate_table(report: Mapping[str, Any], console: Console) -> RenderableType:
    """One transfer-gate report (``GateResult.to_json()``): per suite status, ΔPGR [CI], PGRs, p, power."""
    rows = []
    for s in report["suites"]:
        ci = s["delta_pgr_ci"]
        rows.append(
            [
                s["suite"]["name"],
                s["status"],
                DASH if s["delta_pgr"] is None else f"{s['delta_pgr']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]",
                DASH if s["pgr_method"] is None else f"{s['pgr_method']:+.2f} / {s['pgr_baseline']:+.2f}",
                fmt(s["p_holm"]),
                fmt(s["power"], 2),
            ]
        )
    cols = [
        Col("suite", "id"),
        Col("status", "id"),
        Col("ΔPGR [95% CI]", "num", 0, "right"),
        Col("PGR method / vanilla", "num", 1, "right"),
        Col("p (Holm)", "num", 0, "right"),
        Col("power", "num", 2, "right"),
    ]
    title = f"transfer gate: {report['method']} → {report['verdict'].upper()}"
    return table(title, cols, rows, console)


def results_table(results: Sequence[Mapping[str, Any]], title: str, console: Console) -> RenderableType:
    """Experiment results (``ExperimentResult.to_json()``): weak, ceiling and transfer accuracy, PGR
    [95% CI], AUROC-PGR and seconds per task and method."""
    rows = []
    for r in results:
        if r["pgr"] is None:
            pgr, auroc = "gap not resolvable", DASH
        else:
            pgr = f"{r['pgr']:+.2f} [{r['pgr_ci'][0]:+.2f}, {r['pgr_ci'][1]:+.2f}]"
            auroc = fmt(r["auroc_pgr"], 2)
        rows.append(
            [
                r["task"],
                r["method"],
                f"{r['weak']} → {r['strong']}",
                str(r["seeds"]),
                fmt(r["weak_acc"]),
                fmt(r["ceiling_acc"]),
                fmt(r["transfer_acc"]),
                pgr,
                auroc,
                f"{r['seconds']:.1f}",
            ]
        )
    cols = [
        Col("task", "id"),
        Col("method", "id"),
        Col("weak → strong", "id", 3),
        Col("seeds", "num", 4, "right"),
        Col("weak acc", "num", 0, "right"),
        Col("ceiling acc", "num", 0, "right"),
        Col("transfer acc", "num", 0, "right"),
        Col("PGR [95% CI]", "num", 0, "right"),
        Col("AUROC-PGR", "num", 2, "right"),
        Col("s", "num", 5, "right"),
    ]
    return table(title, cols, rows, console)


def listing_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], console: Console
) -> RenderableType:
    """A listing (tasks, encoders, methods): the first column is the identifier (never wrapped), the
    others wrap at spaces only."""
    cols = [Col(h, "id" if k == 0 else "text") for k, h in enumerate(headers)]
    return table(title, cols, rows, console)
