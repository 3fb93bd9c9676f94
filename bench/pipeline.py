"""Pipeline benchmark: encoder overhead, cold vs warm runs, and the warm 5-seed experiment time.

Targets (issue #2): our encoding path within 1.2x of the raw model; a warm 5-seed run >= 20x faster than
a cold one; the warm 5-seed experiment on the default task <= 2 s on 2 cores. Prints figures; asserts
nothing (benchmarks are not tests).

    .venv/bin/python bench/pipeline.py [--texts 512] [--encoders minilm-l3 minilm-l6 mpnet] [--skip-cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()


def _fresh_home(path: str) -> None:
    from aarlab.config import get_settings

    os.environ["AARLAB_HOME"] = path
    get_settings.cache_clear()


def raw_encode(enc_id: str, texts: list[str]) -> float:
    """Seconds for the bare model (no hashing, no cache) on the same texts and batch size."""
    from aarlab.testbed.encoders import get_encoder

    enc = get_encoder(enc_id)
    if enc_id == "minilm-l3":
        t0 = time.perf_counter()
        enc.encode(texts)  # already the raw ONNX session loop
        return time.perf_counter() - t0
    model = enc.model  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    model.encode(texts, batch_size=enc.batch_size, convert_to_numpy=True, show_progress_bar=False)  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def ours_encode(enc_id: str, texts: list[str]) -> float:
    """Seconds through aarlab's path (hash, cache lookup, encode, cache write) on an empty cache."""
    from aarlab.testbed.encoders import encode_texts, get_encoder
    from aarlab.testbed.encoders.cache import FeatureCache

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        encode_texts(get_encoder(enc_id), texts, show_progress=False, cache=FeatureCache(Path(d), enc_id))
        return time.perf_counter() - t0


def encoder_overhead(encoders: list[str], n: int) -> None:
    from aarlab.testbed.tasks import load_task

    texts = [it.texts[0] for it in load_task("truth-cities").pool().items][:n]
    table = Table(title=f"encoder throughput, {len(texts)} truth-cities texts (texts/s; best of 3)")
    for col in ("encoder", "raw model", "aarlab path", "aarlab time / raw time", "target"):
        table.add_column(col)
    for enc_id in encoders:
        raw_encode(enc_id, texts[:32])  # load + warm up
        raw = min(raw_encode(enc_id, texts) for _ in range(3))
        ours = min(ours_encode(enc_id, texts) for _ in range(3))
        ratio = ours / raw
        table.add_row(enc_id, f"{len(texts) / raw:.0f}", f"{len(texts) / ours:.0f}", f"{ratio:.2f}x",
                      "ok (<= 1.2x)" if ratio <= 1.2 else "MISSED")
    console.print(table)


def experiment_seconds(task: str, seeds: int = 5) -> tuple[float, float]:
    """(seconds for load + prepare + 5-seed vanilla run, seconds for the run alone)."""
    from aarlab.testbed.pipeline import prepare, run_experiment
    from aarlab.testbed.tasks import load_task

    t0 = time.perf_counter()
    t = load_task(task)
    prep = prepare(t, show_progress=False)
    t1 = time.perf_counter()
    run_experiment(t, "vanilla", seeds=seeds, prepared=prep)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1


def cold_vs_warm(task: str, skip_cold: bool) -> None:
    table = Table(title=f"5-seed vanilla experiment on {task}")
    for col in ("run", "total s", "experiment s (after prepare)", "note"):
        table.add_column(col)
    with tempfile.TemporaryDirectory() as home:
        if not skip_cold:
            _fresh_home(home)
            cold, _ = experiment_seconds(task)
            table.add_row("cold (empty cache: encode + weak + ceiling + method)", f"{cold:.1f}", "", "")
        else:
            cold = float("nan")
            _fresh_home(os.environ.get("AARLAB_REAL_HOME", str(Path.home() / ".cache" / "aarlab")))
            experiment_seconds(task)  # make sure this home is warm
        warm = [experiment_seconds(task) for _ in range(3)]
        total = statistics.median(w[0] for w in warm)
        exp = statistics.median(w[1] for w in warm)
        table.add_row("warm (median of 3)", f"{total:.2f}", f"{exp:.2f}", "target <= 2 s")
        if not np.isnan(cold):
            table.add_row("cold / warm", f"{cold / total:.0f}x", "", "target >= 20x")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--encoders", nargs="+", default=["minilm-l3", "minilm-l6", "mpnet"])
    ap.add_argument("--task", default="truth-cities")
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold run (it encodes the whole task)")
    args = ap.parse_args()
    import torch

    console.print(f"torch threads: {torch.get_num_threads()}, cores: {os.cpu_count()}")
    encoder_overhead(args.encoders, args.texts)
    cold_vs_warm(args.task, args.skip_cold)


if __name__ == "__main__":
    main()
