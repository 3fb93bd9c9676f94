"""Pick SmolLM2's feature layer for a task on a validation split, in one forward pass over the texts.

Runs SmolLM2-135M once over the task's texts (or a seeded subsample of its groups), keeps the last-token
hidden state at several layers, writes each layer into the feature cache under the pipeline's own key
(``cache_name`` of ``smollm2-l<k>``, so later pipeline runs reuse them) and scores each layer by a
ceiling probe trained on ``train_unlabel`` ground truth and evaluated on ``train_label`` — never on
``test``: the test split is for the reported figures only.

    python bench/smollm2_layers.py --task reference-math --layers 6 9 12 15 18 21 24 --seeds 3
    python bench/smollm2_layers.py --task reference-math --groups 400 --layers 9 12 15 18

``--groups N`` keeps the same seeded subsample of groups as ``bench/reference_pairs.py --groups N``, so
the layer picked here is the one that script then measures (``--pairs tfidf:smollm2-l<k>``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from aarlab.config import get_settings
from aarlab.testbed.encoders.base import cache_name
from aarlab.testbed.encoders.builtin import SMOLLM2_LAYERS, SmolLM2States
from aarlab.testbed.encoders.cache import FeatureCache, text_key
from aarlab.testbed.metrics import accuracy
from aarlab.testbed.models import FeatureTable, ProbeHead
from aarlab.testbed.tasks import Task, load_task
from reference_pairs import subsample


def layer_states(texts: list[str], layers: list[int]) -> dict[int, np.ndarray]:
    """Last-token states of every text at each layer (one pass of the model up to the deepest layer)."""
    import torch

    enc = SmolLM2States(max(layers))
    enc._load()
    out = {k: np.zeros((len(texts), enc.dim), dtype=np.float32) for k in layers}
    order = np.argsort([len(t) for t in texts], kind="stable")
    t0 = time.perf_counter()
    for start in range(0, len(texts), enc.batch_size):
        idx = order[start : start + enc.batch_size]
        batch = enc.tokenizer(
            [texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=512
        )
        with torch.inference_mode():
            hs = enc.model.model(**batch, output_hidden_states=True).hidden_states
        last = batch["attention_mask"].sum(dim=1) - 1
        for k in layers:
            out[k][idx] = hs[k][torch.arange(len(idx)), last].float().numpy()
        if start // enc.batch_size % 20 == 0:
            print(f"  {start + len(idx)}/{len(texts)} texts, {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--layers", type=int, nargs="+", default=list(SMOLLM2_LAYERS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--groups", type=int, default=0, help="subsample this many groups (0 = all)")
    args = ap.parse_args()
    unknown = sorted(set(args.layers) - set(SMOLLM2_LAYERS))
    if unknown:
        raise SystemExit(f"layers {unknown} have no encoder id; registered: {list(SMOLLM2_LAYERS)}")
    task: Task = load_task(args.task)
    if args.groups:
        recs = subsample(task, args.groups)
        task = Task(name=f"{task.name}-{len(recs)}", schema=task.schema, records=recs, spec=task.spec)
    items = task.pool().items
    texts = list(dict.fromkeys(t for it in items for t in it.texts))
    keys = [text_key(t) for t in texts]
    root = get_settings().feature_cache
    caches = {k: FeatureCache(root, cache_name(SmolLM2States(k))) for k in args.layers}
    missing = {k: ~caches[k].lookup(keys)[0] for k in args.layers}
    todo = [k for k in args.layers if missing[k].any()]
    # only the texts some layer lacks (a larger --groups reuses a smaller run's pass)
    need = np.flatnonzero(np.logical_or.reduce([missing[k] for k in args.layers]))
    t0 = time.perf_counter()
    if todo:
        states = layer_states([texts[i] for i in need], todo)
        for k, m in states.items():
            caches[k].put([keys[i] for i in need], m)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "task": task.name,
                "texts": len(texts),
                "layers_encoded": todo,
                "texts_encoded": len(need),
                "encode_seconds": round(seconds, 1),
            }
        )
    )
    for k in args.layers:
        _, rows = caches[k].lookup(keys)
        assert rows is not None
        pos = {t: i for i, t in enumerate(texts)}
        flat = rows[[pos[t] for it in items for t in it.texts]]
        feats = flat if len(items[0].texts) == 1 else flat[0::2] - flat[1::2]
        table = FeatureTable(f"smollm2-l{k}", items, feats)
        val = []
        for seed in range(args.seeds):
            s = task.split(seed)
            head = ProbeHead(C=0.01, seed=seed).fit(
                table.rows(s.train_unlabel.inputs), s.train_unlabel.labels.astype(float)
            )
            val.append(accuracy(s.train_label.labels, head.predict_proba(table.rows(s.train_label.inputs))))
        print(
            json.dumps(
                {"layer": k, "val_acc": round(float(np.mean(val)), 4), "val_sd": round(float(np.std(val)), 4)}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
