"""Critic: the strong model writes a short critique of every candidate, and the judge reads it.

The idea (scalable-oversight style): a strong model's critique surfaces what is wrong with a candidate,
which helps a weaker judge decide. The reference setup has a *weak* judge read strong critiques; the
method contract cannot do that literally, because the teacher's labels are fixed before a method runs
(``ctx`` holds the weak labels, never the weak model). So, within the contract:

1. a fresh, untrained copy of the strong student (the base model, adapter off) critiques every distinct
   candidate text of ``ctx.unlabeled`` and ``ctx.test`` (greedy, ``max_new_tokens`` tokens); a fresh copy
   so the critic never depends on what the student has been trained on;
2. each item's texts get their critique appended (``\\nCritique: ...``);
3. the student is trained on the teacher's labels (hard by default, as ``vanilla``) over the
   critique-augmented unlabeled inputs and predicts the critique-augmented test inputs.

So this measures whether strong critiques in the input help the student learn from weak labels (it can
use its own critique as a scratchpad), and it compares directly with ``vanilla``, which differs only in
step 2. Label-free: critiques are generated from inputs alone. It needs a student that can generate
text (the ``lm`` backend); on a backend without ``generate`` (``embed``: frozen encoders and probes,
whose features exist only for the task's own texts) it fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aarlab.testbed.context import MethodContext
from aarlab.testbed.errors import AarlabError
from aarlab.testbed.methods.registry import method
from aarlab.testbed.schema import Inputs, Item

DEFAULT_CRITIQUE_PROMPT = (
    "{text}\n\nIn one or two sentences, critique the text above: is it accurate? Point out any error."
)


class CriticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int = Field(32, ge=1, le=512, description="length of each critique (greedy)")
    hard: bool = Field(True, description="train on the teacher's hard labels (False: its probabilities)")
    critique_prompt: str = Field(DEFAULT_CRITIQUE_PROMPT, description="must contain {text}")
    suffix: str = Field(
        "\nCritique: {critique}", description="appended to each text; must contain {critique}"
    )


@runtime_checkable
class TextGenerator(Protocol):
    """A student that can continue text (the lm backend's ``generate``)."""

    def generate(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[str]: ...


def critique_inputs(critic: TextGenerator, inputs: Inputs, cfg: CriticConfig) -> tuple[Inputs, int]:
    """``inputs`` with a critique appended to each text, and the number of distinct texts critiqued."""
    texts = list(dict.fromkeys(t for it in inputs for t in it.texts))
    critiques = critic.generate([cfg.critique_prompt.format(text=t) for t in texts], cfg.max_new_tokens)
    if len(critiques) != len(texts):
        raise AarlabError(f"the critic returned {len(critiques)} critiques for {len(texts)} texts")
    by_text = dict(zip(texts, critiques, strict=True))
    items = tuple(
        Item(
            it.id,
            tuple(t + cfg.suffix.format(critique=by_text[t].strip()) for t in it.texts),
            it.group,
            it.entity,
        )
        for it in inputs
    )
    return Inputs(items), len(texts)


@method("critic", CriticConfig)
def run(ctx: MethodContext[CriticConfig]) -> np.ndarray:
    """Strong-model critiques appended to every input; the student learns weak labels on those."""
    cfg = ctx.config
    if "{text}" not in cfg.critique_prompt or "{critique}" not in cfg.suffix:
        raise AarlabError("critic: critique_prompt must contain {text} and suffix must contain {critique}")
    critic = ctx.strong.fresh()
    if not isinstance(critic, TextGenerator):
        raise AarlabError(
            "method 'critic' needs a student that can generate text (ctx.strong.generate); the "
            f"{type(ctx.strong).__name__} student cannot (the embed backend is frozen encoders with probe "
            "heads). Run it on the lm backend, e.g. backend='lm', weak='smollm2-135m', strong='smollm2-135m'"
        )
    unlabeled, n_unl = critique_inputs(critic, ctx.unlabeled, cfg)
    test, n_test = critique_inputs(critic, ctx.test, cfg)
    ctx.log(critiqued_texts=n_unl + n_test)
    targets = ctx.weak.hard if cfg.hard else ctx.weak.proba
    ctx.strong.fit(unlabeled, targets)
    return ctx.strong.predict_proba(test)
