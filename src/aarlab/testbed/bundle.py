"""Label-free bundles: the one writer and the loader, and running a method on a bundle.

A bundle holds train_unlabel and evaluation *inputs* (records without labels), the weak teacher's soft
labels on train_unlabel, the strong encoder's features and zero-shot prior for every item (format 2),
and a manifest. ``aarlab export-sandbox`` writes one for a researcher's sandbox; verification, its
ablations and the transfer gate write one per confined run. A method runs on it through the ordinary
contract with ``ctx.test`` = the evaluation inputs and returns ``{id: probability}``. Because features
travel in the bundle, a confined run needs numpy and scikit-learn only: no encoder, no model files, no
feature cache it could read or poison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic_core

from aarlab.testbed.context import MethodContext, WeakLabels
from aarlab.testbed.encoders import encode_texts, get_encoder
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.files import atomic_path
from aarlab.testbed.loader import read_jsonl, write_jsonl
from aarlab.testbed.methods import get_method
from aarlab.testbed.models import EmbedModel, FeatureTable, zero_shot
from aarlab.testbed.pipeline import BASE_HEAD, validate_predictions
from aarlab.testbed.schema import Inputs, Item, PairwiseRecord, Record, item_from_record

BUNDLE_FORMAT = 2
MANIFEST = "manifest.json"
UNLABELED = "train_unlabel.jsonl"
DEV = "dev.jsonl"
WEAK = "weak_labels.json"
#: (n_unlabeled + n_dev, d) float32: the strong encoder's features, rows in file order (unlabeled, dev).
FEATURES = "strong_features.npy"
#: (n_unlabeled + n_dev,) float64: the strong encoder's zero-shot prior, same row order.
PRIOR = "strong_prior.npy"


@dataclass(frozen=True)
class Bundle:
    """A loaded sandbox bundle: label-free inputs, the teacher's soft labels, and (format 2) the strong
    student's precomputed features, so a method needs no encoder, no model and no feature cache."""

    manifest: dict[str, Any]
    unlabeled: Inputs
    dev: Inputs
    weak: np.ndarray
    features: np.ndarray | None = None
    prior: np.ndarray | None = None


@dataclass(frozen=True)
class BundleMap:
    """How a written bundle's evaluation items relate to the writer's: ``ids[k]`` is the bundle id of
    evaluation record ``k`` and ``swapped[k]`` says whether its two texts were swapped (pairwise), so a
    bundle prediction ``p`` means ``1 - p`` for the original record."""

    ids: list[str]
    swapped: list[bool]

    def original(self, predictions: dict[str, float]) -> np.ndarray:
        """Predictions in the writer's evaluation order (raises KeyError for a missing id)."""
        p = np.array([float(predictions[i]) for i in self.ids], dtype=float)
        s = np.array(self.swapped, dtype=bool)
        p[s] = 1.0 - p[s]
        return p


def strong_features(
    strong: str, prior_hypotheses: Sequence[str], items: Sequence[Item], *, show_progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The strong encoder's features (n, d) and zero-shot prior (n,) for items (trusted side: the
    encoders and their feature cache never run where submitted code does)."""
    flat = [t for it in items for t in it.texts]
    enc = get_encoder(strong)
    vecs = encode_texts(enc, flat, corpus=flat, show_progress=show_progress)
    feats = vecs if len(items[0].texts) == 1 else vecs[0::2] - vecs[1::2]
    hyp = encode_texts(enc, list(prior_hypotheses), corpus=flat, show_progress=False)
    prior = zero_shot(vecs, hyp, items)
    return np.asarray(feats, dtype=np.float32), np.array([prior[it.texts] for it in items], dtype=float)


#: Record fields a rekeyed bundle never carries: labels, and the trusted side's split keys.
_NOT_WRITTEN = frozenset({"label", "entity"})

#: Probabilities are written on a grid of 2^-24, where ``1 - p`` is exact, and rounded to it at random
#: (stochastic rounding, with the bundle's own RNG): a float64 ``1 - p`` has zero low mantissa bits where
#: ``p >= 0.5`` and is not a float32 where ``p`` is one (red team, stop 24), and rounding float32 values
#: to the nearest grid point (half to even) left an even index 76% of the time below 0.5 and 50% above,
#: parity that ``1 - p`` keeps (red team, stop 25). Rounded at random, the index is k or k + 1 with the
#: probabilities that keep its mean, so a swapped row's complement is distributed as the reversed pair's
#: own value would be. Every k / 2^24 is a float32.
_GRID = float(2**24)


def on_grid(p: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """``p`` (probabilities in [0, 1], any shape) on the grid k / 2^24; float64, a fresh array.

    With ``rng``: rounded up with probability equal to the remainder (unbiased); without: to nearest.
    """
    x = np.asarray(p, dtype=np.float64) * _GRID
    k = np.floor(x + rng.random(x.shape)) if rng is not None else np.rint(x)
    return np.clip(k, 0.0, _GRID) / _GRID


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """JSONL of label-free rows, as ``write_jsonl`` writes records (compact, UTF-8), atomically.
    pydantic-core's serialiser writes the same bytes as ``json.dumps(r, ensure_ascii=False,
    separators=(",", ":"))`` at ~1/9 of its time (30 row files per verification)."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        fh.write(b"\n".join(map(pydantic_core.to_json, rows)) + b"\n" if rows else b"")


def write_bundle(
    path: Path,
    manifest: dict[str, Any],
    unlabeled: Sequence[Record],
    weak: np.ndarray,
    evaluation: Sequence[Record],
    *,
    features: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    rekey: np.random.Generator | None = None,
) -> BundleMap:
    """Write a label-free bundle (the one writer: export-sandbox, verification, ablations, gate suites).

    ``weak``: the teacher's P(label=True) for ``unlabeled`` (same order). ``features``/``prior``: the
    strong encoder's rows for unlabeled then evaluation records. Probabilities are written to 2^-24
    (:func:`on_grid`, rounded at random when rekeyed) and zero features as +0.0, so no bit tells a
    swapped pair from another.
    With ``rekey`` (the trusted side's RNG) every id and group is replaced by a fresh random key
    (entities are dropped), records are shuffled, and the two texts of each pairwise record are
    swapped at random, so neither an id, a position nor an order inside a pair can carry a label;
    the returned map turns predictions back.
    Without it (the server's export, whose ids are already keyed) records are written as given.
    Labels are never written.
    """
    path.mkdir(parents=True, exist_ok=True)
    unl, ev = list(unlabeled), list(evaluation)
    n_u = len(unl)
    w = on_grid(weak, rekey)  # a fresh array
    flipped = np.zeros(n_u + len(ev), dtype=bool)  # rows whose pair order is swapped
    swapped = [False] * len(ev)
    order_u, order_e = list(range(n_u)), list(range(len(ev)))
    if rekey is not None:
        flips = rekey.random(n_u + len(ev)) < 0.5
        recs = unl + ev
        # one fresh 8-byte key per distinct id or group, in order of first appearance, drawn in one call
        # (the same bytes as one rekey.bytes(8) per name: Generator.bytes reads whole uint32 words)
        distinct = list(
            dict.fromkeys(v for k, r in enumerate(recs) for v in (r.id or f"#{k}", r.group) if v is not None)
        )
        pool = rekey.bytes(8 * len(distinct)).hex()
        names = {v: "k" + pool[16 * i : 16 * i + 16] for i, v in enumerate(distinct)}
        # rows are written from plain dicts (a pydantic copy per record per bundle was 60% of the
        # writer's time: 15 bundles per verification)
        out_rows: list[dict[str, Any]] = []
        for k, r in enumerate(recs):
            # every field is a str (or None): the field dict is the row, less label, entity and Nones
            row = {f: v for f, v in r.__dict__.items() if v is not None and f not in _NOT_WRITTEN}
            if isinstance(r, PairwiseRecord) and flips[k]:
                row["first"], row["second"] = r.second, r.first
                flipped[k] = True
                if k < n_u:
                    w[k] = 1.0 - w[k]
                else:
                    swapped[k - n_u] = True
            # entities are the trusted side's split keys: a method needs none, and one left in place
            # would keep the group structure a group-shuffle ablation removes
            row["id"] = names[r.id or f"#{k}"]
            if r.group is not None:
                row["group"] = names[r.group]
            out_rows.append(row)
        order_u = [int(i) for i in rekey.permutation(n_u)]
        order_e = [int(i) for i in rekey.permutation(len(ev))]
        _write_rows(path / UNLABELED, [out_rows[i] for i in order_u])
        _write_rows(path / DEV, [out_rows[n_u + i] for i in order_e])
        ids_u = [out_rows[i]["id"] for i in order_u]
        ev_ids = [row["id"] for row in out_rows[n_u:]]
    else:
        write_jsonl(path / UNLABELED, unl, with_labels=False)
        write_jsonl(path / DEV, ev, with_labels=False)
        ids_u = [r.id or f"u-{j}" for j, r in enumerate(unl)]
        ev_ids = [r.id or f"d-{j}" for j, r in enumerate(ev)]
    (path / WEAK).write_text(json.dumps({i: float(w[k]) for i, k in zip(ids_u, order_u, strict=True)}))
    rows = order_u + [n_u + i for i in order_e]
    if features is not None and prior is not None:
        # gathered once (a copy), then a swapped pair's features negated and its prior complemented
        feats = np.asarray(features, dtype=np.float32)[rows]
        pri = on_grid(np.asarray(prior)[rows], rekey)
        sel = flipped[rows]
        feats[sel] = -feats[sel]
        feats += np.float32(0.0)  # -0.0 -> +0.0: a negated zero would mark its row as swapped
        pri[sel] = 1.0 - pri[sel]
        np.save(path / FEATURES, feats)
        np.save(path / PRIOR, pri)
    (path / MANIFEST).write_text(json.dumps({"format": BUNDLE_FORMAT, **manifest}, indent=1))
    for f in path.iterdir():  # readable by the sandbox's unprivileged uid, writable by nobody there
        f.chmod(0o644)
    path.chmod(0o755)
    return BundleMap(ev_ids, swapped)


def load_bundle(path: Path) -> Bundle:
    """Read a bundle directory; say which file is missing or inconsistent."""
    for name in (MANIFEST, UNLABELED, DEV, WEAK):
        if not (path / name).is_file():
            raise AarlabError(f"{path / name}: missing; is {path} a bundle from `aarlab export-sandbox`?")
    manifest = json.loads((path / MANIFEST).read_text())
    if manifest.get("format") not in (1, BUNDLE_FORMAT):
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
    features = prior = None
    if (path / FEATURES).is_file() and (path / PRIOR).is_file():
        features = np.load(path / FEATURES, allow_pickle=False)
        prior = np.load(path / PRIOR, allow_pickle=False)
        n = len(unlabeled) + len(dev_inputs)
        if features.ndim != 2 or len(features) != n or prior.shape != (n,):
            raise AarlabError(f"{path}: strong features have shape {features.shape}, expected ({n}, d)")
    return Bundle(manifest, unlabeled, dev_inputs, weak, features, prior)


def _strong_model(bundle: Bundle, seed: int, show_progress: bool) -> EmbedModel:
    items = bundle.unlabeled.items + bundle.dev.items
    if bundle.features is not None and bundle.prior is not None:
        feats, prior = bundle.features, bundle.prior
    else:  # a format-1 bundle: encode here (needs the encoder and its cache)
        feats, prior = strong_features(
            bundle.manifest["strong"], bundle.manifest["prior_hypotheses"], items, show_progress=show_progress
        )
    scores = {it.texts: float(v) for it, v in zip(items, prior, strict=True)}
    return EmbedModel(FeatureTable(str(bundle.manifest["strong"]), items, feats), scores, seed, BASE_HEAD)


def run_method_on_bundle(
    bundle: Bundle,
    method: str,
    config: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    show_progress: bool = False,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run a method on a loaded bundle: ({dev id: P(label = True)}, the method's ``ctx.log`` notes).
    A verified run's ablations are already inside the bundle it gets (:mod:`aarlab.oversight.ablations`).
    """
    spec = get_method(method)
    cfg = spec.make_config(config)
    ctx: MethodContext[Any] = MethodContext(
        weak=WeakLabels(bundle.weak.copy()),
        unlabeled=bundle.unlabeled,
        test=bundle.dev,
        strong=_strong_model(bundle, seed, show_progress),
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
    show_progress: bool = False,
) -> dict[str, float]:
    """Run a method (built-in name, file or folder) on the bundle; returns {dev id: P(label = True)}."""
    bundle = load_bundle(path)
    return run_method_on_bundle(
        bundle, method, config, seed=seed, show_progress=show_progress
    )[0]
