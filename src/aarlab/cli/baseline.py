"""``aarlab baseline`` (one method over seeds) and ``aarlab baseline-table`` (every baseline on every
built-in task: the README table, optionally as Markdown)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aarlab.cli.common import console, friendly, out, parse_config
from aarlab.cli.tables import fmt, results_table
from aarlab.config import get_settings
from aarlab.render import emit


def baseline(
    task: Annotated[
        str | None, typer.Option(help="task name or reference-format directory (default: the default task)")
    ] = None,
    method: Annotated[str, typer.Option(help="method name, method.py file or method folder")] = "vanilla",
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds (splits)")] = 5,
    weak: Annotated[str | None, typer.Option(help="weak encoder (default: the task's)")] = None,
    strong: Annotated[str | None, typer.Option(help="strong encoder (default: the task's)")] = None,
    config: Annotated[str | None, typer.Option(help="method config as a JSON object")] = None,
    backend: Annotated[str, typer.Option(help="model backend: embed or lm")] = "embed",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run one method over several seeds and print weak, ceiling, transfer and PGR with 95% CIs."""
    from aarlab.testbed.pipeline import run_experiment

    result = run_experiment(
        task or get_settings().default_task,
        method,
        seeds=seeds,
        weak=weak,
        strong=strong,
        config=parse_config(config),
        show_progress=not as_json and sys.stderr.isatty(),
        backend=backend,
    )
    data = result.to_json()
    if as_json:
        if data["note"]:
            data["task_notes"] = task_gap_notes(task or result.task, backend)
        print(json.dumps(data))
        return
    emit(out, results_table([data], "aarlab baseline", out))
    if data["pgr_structured"] is not None:
        lo, hi = data["pgr_structured_ci"]
        out.print(
            f"structured ceiling (group-exclusive decoding of the gold-trained student): "
            f"{data['ceiling_structured_acc']:.3f}; PGR against it {data['pgr_structured']:+.2f} "
            f"[{lo:+.2f}, {hi:+.2f}] (ranked by this: decoding alone cannot exceed 1)",
            highlight=False,
        )
    out.print(f"a seed varies: {data['seed_varies']}", highlight=False)
    if data["note"]:
        console.print(f"[yellow]{data['note']}[/]", highlight=False, soft_wrap=True)
        for line in task_gap_notes(task or result.task, backend):
            console.print(f"[yellow]{line}[/]", highlight=False, soft_wrap=True)


def task_gap_notes(task: str, backend: str) -> list[str]:
    """Where no resolvable gap was found: what the task's spec says about its gap and the command that
    runs it on the GPU path (the reference study's pair through the lm backend)."""
    from aarlab.testbed.tasks import get_spec, task_names
    from aarlab.testbed.tasks.reference import GPU_COMMAND

    if backend == "lm":
        return []
    if task in task_names():
        spec = get_spec(task)
        lines = [f"{task}: {spec.gap_note}"] if spec.gap_note else []
        command = spec.gpu_command or GPU_COMMAND.format(task=task)
    else:
        lines, command = [], GPU_COMMAND.format(task=task)
    return [*lines, f"GPU path (the reference pair, lm backend): {command}"]


def baseline_table(
    tasks: Annotated[
        list[str] | None, typer.Option("--task", help="tasks (default: every built-in task)")
    ] = None,
    methods: Annotated[
        list[str] | None, typer.Option("--method", help="methods (default: every baseline)")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds (splits) per task and method")] = 5,
    markdown: Annotated[Path | None, typer.Option(help="also write the table as Markdown here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (a list of results)")] = False,
) -> None:
    """Every baseline on every built-in task (the README table)."""
    from aarlab.testbed.methods.baselines import BASELINES
    from aarlab.testbed.pipeline import prepare, run_experiment
    from aarlab.testbed.tasks import load_task, task_names

    results = []
    for name in tasks or task_names():
        task = load_task(name)
        prep = prepare(task, show_progress=sys.stderr.isatty())
        for m in methods or BASELINES:
            with console.status(f"{name}: {m}"):
                results.append(run_experiment(task, m, seeds=seeds, prepared=prep).to_json())
    if as_json:
        print(json.dumps(results))
    else:
        title = f"aarlab baselines ({seeds} seeds, 95% bootstrap CIs over seeds × examples)"
        emit(out, results_table(results, title, out))
    if markdown:
        markdown.write_text(markdown_table(results))
        console.print(f"wrote {markdown}")


def markdown_table(results: list[dict[str, Any]]) -> str:
    """Experiment results as the README's Markdown table (one row per task and method)."""
    lines = [
        "| task | method | weak → strong | weak acc | ceiling acc | transfer acc | PGR [95% CI] "
        "| AUROC-PGR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["pgr"] is None:
            pgr_s, au = f"gap not resolvable (gap {r['gap']:+.3f})", "–"
        else:
            pgr_s, au = (
                f"{r['pgr']:+.2f} [{r['pgr_ci'][0]:+.2f}, {r['pgr_ci'][1]:+.2f}]",
                fmt(r["auroc_pgr"], 2),
            )
        lines.append(
            f"| {r['task']} | {r['method']} | {r['weak']} → {r['strong']} | {fmt(r['weak_acc'])} | "
            f"{fmt(r['ceiling_acc'])} | {fmt(r['transfer_acc'])} | {pgr_s} | {au} |"
        )
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command()(friendly(baseline))
    app.command("baseline-table")(friendly(baseline_table))
