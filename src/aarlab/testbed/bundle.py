"""The sandbox side of the scoring protocol: load a label-free bundle and run a method on it.

``aarlab export-sandbox`` writes the bundle (train_unlabel and dev inputs, the weak teacher's soft
labels, a manifest). Here a researcher runs any method through the ordinary contract with
``ctx.test`` = the dev inputs, and gets ``{id: probability}`` to submit to the server's dev endpoint.
The strong model's features come from the testbed encoders (feature cache), which only need texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aarlab.testbed.context import MethodContext, WeakLabels
from aarlab.testbed.encoders import encode_texts, get_encoder
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.loader import read_jsonl
from aarlab.testbed.methods import get_method
from aarlab.testbed.models import EmbedModel, FeatureTable, zero_shot
from aarlab.testbed.pipeline import BASE_HEAD, validate_predictions
from aarlab.testbed.schema import Inputs, item_from_record

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
UNLABELED = "train_unlabel.jsonl"
DEV = "dev.jsonl"
WEAK = "weak_labels.json"


@dataclass(frozen=True)
class Bundle:
    """A loaded sandbox bundle: label-free inputs and the teacher's soft labels."""

    manifest: dict[str, Any]
    unlabeled: Inputs
    dev: Inputs
    weak: np.ndarray


def load_bundle(path: Path) -> Bundle:
    """Read a bundle directory; say which file is missing or inconsistent."""
    for name in (MANIFEST, UNLABELED, DEV, WEAK):
        if not (path / name).is_file():
            raise AarlabError(f"{path / name}: missing; is {path} a bundle from `aarlab export-sandbox`?")
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") != BUNDLE_FORMAT:
        raise AarlabError(f"{path}: bundle format {manifest.get('format')!r}, expected {BUNDLE_FORMAT}")
    schema = manifest["schema"]
    _, unl = read_jsonl(path / UNLABELED, schema, require_labels=False)
    _, dev = read_jsonl(path / DEV, schema, require_labels=False)
    unlabeled = Inputs(tuple(item_from_record(r, f"u-{i}") for i, r in enumerate(unl)))
    dev_inputs = Inputs(tuple(item_from_record(r, f"d-{i}") for i, r in enumerate(dev)))
    weak_map = json.loads((path / WEAK).read_text())
    missing = [i for i in unlabeled.ids if i not in weak_map]
    if missing:
        raise AarlabError(f"{path / WEAK}: no weak label for {len(missing)} items (e.g. {missing[0]!r})")
    weak = np.array([weak_map[i] for i in unlabeled.ids], dtype=float)
    return Bundle(manifest, unlabeled, dev_inputs, weak)


def _strong_model(bundle: Bundle, seed: int, show_progress: bool) -> EmbedModel:
    items = bundle.unlabeled.items + bundle.dev.items
    flat = [t for it in items for t in it.texts]
    enc = get_encoder(bundle.manifest["strong"])
    vecs = encode_texts(enc, flat, corpus=flat, show_progress=show_progress)
    feats = vecs if len(items[0].texts) == 1 else vecs[0::2] - vecs[1::2]
    hyp = encode_texts(enc, list(bundle.manifest["prior_hypotheses"]), corpus=flat, show_progress=False)
    prior = zero_shot(vecs, hyp, items)
    return EmbedModel(FeatureTable(enc.id, items, feats), prior, seed, BASE_HEAD)


def _random_model(bundle: Bundle, seed: int, show_progress: bool) -> EmbedModel:
    """The student ablation: random features of the real student's shape, and a random prior."""
    real = _strong_model(bundle, seed, show_progress)
    items = bundle.unlabeled.items + bundle.dev.items
    rng = np.random.default_rng(10_000 + seed)
    shape = real.features(Inputs(items)).shape
    table = FeatureTable("random", items, rng.standard_normal(shape).astype(np.float32))
    prior = {it.texts: float(v) for it, v in zip(items, rng.random(len(items)), strict=True)}
    return EmbedModel(table, prior, seed)


def run_method_on_bundle(
    bundle: Bundle,
    method: str,
    config: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    student: Literal["real", "random"] = "real",
    show_progress: bool = False,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run a method on a loaded bundle: ({dev id: P(label = True)}, the method's ``ctx.log`` notes).

    ``student="random"`` swaps the strong student for random features of the same shape (the student
    ablation of a verified run).
    """
    spec = get_method(method)
    cfg = spec.make_config(config)
    make = _random_model if student == "random" else _strong_model
    ctx: MethodContext[Any] = MethodContext(
        weak=WeakLabels(bundle.weak.copy()),
        unlabeled=bundle.unlabeled,
        test=bundle.dev,
        strong=make(bundle, seed, show_progress),
        seed=seed,
        config=cfg,
    )
    pred = validate_predictions(spec.run(ctx), len(bundle.dev), f"method {spec.name!r}")
    return {i: float(p) for i, p in zip(bundle.dev.ids, pred, strict=True)}, ctx.notes


def run_on_bundle(
    path: Path,
    method: str,
    config: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    student: Literal["real", "random"] = "real",
    show_progress: bool = False,
) -> dict[str, float]:
    """Run a method (built-in name, file or folder) on the bundle; returns {dev id: P(label = True)}."""
    bundle = load_bundle(path)
    return run_method_on_bundle(
        bundle, method, config, seed=seed, student=student, show_progress=show_progress
    )[0]
