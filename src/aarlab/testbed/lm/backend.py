"""The ``lm`` model backend: Hugging Face causal LMs fine-tuned with LoRA, behind :class:`StudentModel`.

Why this shape:

* **One frozen base per model, adapters in memory.** A base model is loaded once per process (a 4B model
  takes GBs and tens of seconds; SmolLM2's GGUF ~18 s to dequantise) and shared by every student built on
  it: weak and strong when they are the same model, and every ``fresh()`` copy a method makes. peft
  injects one LoRA *slot* per LoRA shape into the base; a student owns only its adapter tensors (a few
  hundred KB to MB) and loads them into the slot for the duration of a call. No checkpoint is written.
* **The slot is blanked after every call.** Otherwise the ceiling's adapter (trained on ground truth)
  would sit in the shared base after ``seed_baseline`` and a method could read it through
  ``ctx.strong``; with the slot zeroed between calls, nothing reachable from a method's context holds a
  label-trained weight except the method's own student.
* **The answer is one label token** (``prompts.py``): loss and prediction use the two label tokens'
  logits only, renormalised, so a soft target p is the exact two-way cross-entropy and
  P(True) = softmax(z_True, z_False)[0]. The zero-shot prior is the same quantity with the adapter off.
* **Deterministic on CPU per seed:** adapter init from a seeded CPU generator, data order from a seeded
  NumPy generator, dropout from a seeded torch RNG.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from aarlab.testbed.lm.config import LMConfig
from aarlab.testbed.lm.loaded import LoadedLM, load_lm
from aarlab.testbed.lm.prompts import PromptFormat
from aarlab.testbed.lm.resolve import ModelSource, resolve_model
from aarlab.testbed.lm.student import LMStudent
from aarlab.testbed.pipeline import Prepared, task_fingerprint
from aarlab.testbed.tasks import Task


def model_id(source: ModelSource, config: LMConfig, prompts: PromptFormat) -> str:
    """Report/cache id: the model's slug, plus a settings hash when the settings are not the defaults
    (the pipeline caches weak and ceiling predictions by id, so different settings must not collide)."""
    if config == LMConfig() and prompts == PromptFormat():
        return source.slug
    blob = json.dumps([config.model_dump(mode="json"), repr(prompts)], sort_keys=True)
    return f"{source.slug}@{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def prepare_lm(
    task: Task,
    weak: str,
    strong: str,
    *,
    show_progress: bool = True,
    weak_config: LMConfig | None = None,
    strong_config: LMConfig | None = None,
    prompts: PromptFormat | None = None,
    device: str | None = None,
) -> Prepared:
    """The ``lm`` backend: load both models (once per process; the same object when weak == strong)."""
    t0 = time.perf_counter()
    resolve_model(weak), resolve_model(strong)  # a missing model fails before the other one loads
    weak_lm = load_lm(weak, device, show_progress=show_progress)
    strong_lm = load_lm(strong, device, show_progress=show_progress)
    fmt = prompts or PromptFormat()
    wc, sc = weak_config or LMConfig(), strong_config or LMConfig()

    def student(lm: LoadedLM, cfg: LMConfig) -> Callable[[int], LMStudent]:
        return lambda seed: LMStudent(lm, cfg, seed, fmt)

    return Prepared(
        task,
        "lm",
        model_id(weak_lm.source, wc, fmt),
        model_id(strong_lm.source, sc, fmt),
        student(weak_lm, wc),
        student(strong_lm, sc),
        task_fingerprint(task),
        time.perf_counter() - t0,
    )
