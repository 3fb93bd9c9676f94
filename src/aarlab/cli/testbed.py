"""``aarlab tasks list|export``, ``aarlab encoders list``, ``aarlab methods list``: the testbed's
registered tasks, encoders and methods."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aarlab.cli.common import console, friendly, out
from aarlab.cli.tables import listing_table
from aarlab.config import get_settings
from aarlab.render import emit, typer_app

tasks_app = typer_app(help="Built-in and reference-format tasks.", no_args_is_help=True)
encoders_app = typer_app(help="Frozen encoders shipped on PyPI.", no_args_is_help=True)
methods_app = typer_app(help="Registered W2S methods.", no_args_is_help=True)


def tasks_list(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Each built-in task with its split sizes (seed 0), positive rate and default encoder pair."""
    from aarlab.testbed.tasks import get_spec, load_task, task_names

    rows: list[dict[str, Any]] = []
    for name in task_names():
        spec = get_spec(name)
        with console.status(f"loading {name} (built once, then cached)"):
            task = load_task(name)
        s = task.split(0)
        rows.append(
            {
                "task": name,
                "schema": spec.schema,
                "records": len(task.records),
                "train_label": len(s.train_label),
                "train_unlabel": len(s.train_unlabel),
                "test": len(s.test),
                "positive_rate": round(float(task.pool().positive_rate), 3),
                "weak": spec.weak,
                "strong": spec.strong,
                "gap": spec.gap_note or "resolvable",
                "gpu_command": spec.gpu_command,
                "default": name == get_settings().default_task,
                "description": spec.description,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    notes: list[str] = []
    body = []
    for r in rows:
        name = r["task"] + (" (default)" if r["default"] else "")
        gap = "resolvable"
        if r["gap"] != "resolvable":
            gpu = f"; GPU path: `{r['gpu_command']}`" if r["gpu_command"] else ""
            notes.append(f"[{len(notes) + 1}] {r['task']}: {r['gap']}{gpu}")
            gap = f"not resolvable [{len(notes)}]"
        body.append(
            [
                name,
                r["schema"],
                str(r["train_label"]),
                str(r["train_unlabel"]),
                str(r["test"]),
                f"{r['positive_rate']:.2f}",
                f"{r['weak']} → {r['strong']}",
                gap,
            ]
        )
    headers = ("task", "schema", "label", "unlabel", "test", "pos.", "weak → strong", "W2S gap")
    emit(out, listing_table("aarlab tasks (split sizes at seed 0)", headers, body, out))
    for note in notes:
        out.print(note, highlight=False, markup=False)


def tasks_export(
    name: Annotated[str, typer.Argument(help="built-in task name (see `aarlab tasks list`)")],
    dest: Annotated[Path, typer.Argument(help="new folder for train_label/train_unlabel/test.jsonl")],
    seed: Annotated[int, typer.Option(help="split seed")] = 0,
) -> None:
    """Write a built-in task as a reference-format directory (train_label/train_unlabel/test.jsonl)."""
    from aarlab.testbed.loader import write_jsonl
    from aarlab.testbed.tasks import load_task
    from aarlab.testbed.tasks.registry import split_by_entity

    task = load_task(name)
    fractions = task.spec.fractions if task.spec else (0.25, 0.40, 0.35)
    parts = split_by_entity(task.records, fractions, seed)
    for split, recs in zip(("train_label", "train_unlabel", "test"), parts, strict=True):
        n = write_jsonl(dest / f"{split}.jsonl", recs)
        out.print(f"{dest / (split + '.jsonl')}: {n} records")


def encoders_list() -> None:
    """The offline encoders, their sizes and the packages that ship them."""
    from aarlab.testbed.encoders import encoder_specs

    rows = [[s.id, str(s.dim), s.params, s.package, s.description] for s in encoder_specs()]
    headers = ("id", "dim", "params", "package", "description")
    emit(out, listing_table("aarlab encoders (all offline, from PyPI wheels)", headers, rows, out))


def methods_list() -> None:
    """Registered methods and their hyperparameters."""
    from aarlab.testbed.methods import get_method, method_names

    rows = []
    for name in method_names():
        spec = get_method(name)
        cfg = ", ".join(f"{k}={v.default}" for k, v in spec.config.model_fields.items())
        rows.append([name, "yes" if spec.uses_teacher else "no (strong prior)", cfg, spec.description])
    emit(out, listing_table("aarlab methods", ("method", "teacher", "config", "description"), rows, out))


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    tasks_app.command("list")(friendly(tasks_list))
    tasks_app.command("export")(friendly(tasks_export))
    encoders_app.command("list")(friendly(encoders_list))
    methods_app.command("list")(friendly(methods_list))
    app.add_typer(tasks_app, name="tasks")
    app.add_typer(encoders_app, name="encoders")
    app.add_typer(methods_app, name="methods")
