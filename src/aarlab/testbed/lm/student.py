"""``LMStudent``: a causal LM with its own LoRA adapter, the lm backend's :class:`StudentModel`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from aarlab.testbed.errors import AarlabError
from aarlab.testbed.lm.config import PROBE_ONLY_OPTIONS, LMConfig
from aarlab.testbed.lm.loaded import LoadedLM
from aarlab.testbed.lm.prompts import PromptFormat, item_prompt, label_words
from aarlab.testbed.schema import Inputs


class LMStudent:
    """A causal LM with its own LoRA adapter: the lm backend's :class:`StudentModel`.

    ``fit`` trains a *new* adapter from a seeded initialisation each call (like the embed backend's new
    head per fit), on the label token only. ``prior`` and ``features`` come from the frozen base model
    (adapter off), so they are the same for every student of that base and cached.
    """

    def __init__(
        self, lm: LoadedLM, config: LMConfig, seed: int, prompts: PromptFormat | None = None
    ) -> None:
        self._lm = lm
        self._config = config
        self._seed = seed
        self._fmt = prompts or PromptFormat()
        self._state: dict[str, torch.Tensor] | None = None
        self._trained_config = config
        #: Mean training loss per epoch of the last fit (label-token cross-entropy on the fit's targets).
        self.train_losses: list[float] = []

    @property
    def model_id(self) -> str:
        return self._lm.source.slug

    @property
    def config(self) -> LMConfig:
        return self._config

    def _prompts(self, inputs: Inputs) -> tuple[list[str], list[tuple[int, int]]]:
        prompts = [item_prompt(it, self._fmt) for it in inputs]
        pairs = []
        for it in inputs:
            pos, neg = label_words(it, self._fmt)
            pairs.append((self._lm.token_id(pos), self._lm.token_id(neg)))
        return prompts, pairs

    def _options(self, overrides: dict[str, Any]) -> LMConfig:
        unknown_keys = sorted(set(overrides) - PROBE_ONLY_OPTIONS - set(LMConfig.model_fields))
        if unknown_keys:
            raise AarlabError(
                f"fit got unknown options {unknown_keys}; the lm backend accepts "
                f"{sorted(LMConfig.model_fields)} (and ignores the embed probe options "
                f"{sorted(PROBE_ONLY_OPTIONS)})"
            )
        values = {k: v for k, v in overrides.items() if k not in PROBE_ONLY_OPTIONS}
        if not values:
            return self._config
        try:
            return LMConfig.model_validate({**self._config.model_dump(), **values})
        except ValidationError as e:
            fields = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise AarlabError(f"bad lm fit options: {fields}") from None

    def fit(
        self, inputs: Inputs, targets: np.ndarray, weights: np.ndarray | None = None, **head: Any
    ) -> LMStudent:
        """Train a new LoRA adapter on (inputs, soft targets in [0, 1], optional per-example weights).

        ``head`` may override any :class:`LMConfig` training field for this fit (``epochs=3, lr=1e-4``);
        embed probe options (``head``, ``C``) are accepted and ignored so embed methods run unchanged.
        """
        cfg = self._options(head)
        t = np.asarray(targets, dtype=float)
        if len(t) != len(inputs):
            raise AarlabError(f"fit got {len(inputs)} inputs but {len(t)} targets")
        if len(t) and (not np.all(np.isfinite(t)) or t.min() < 0 or t.max() > 1):
            raise AarlabError("fit targets must be finite probabilities in [0, 1]")
        w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float)
        if len(w) != len(t):
            raise AarlabError(f"fit got {len(t)} targets but {len(w)} weights")
        if len(w) and (not np.all(np.isfinite(w)) or w.min() < 0):
            raise AarlabError("fit weights must be finite and non-negative")
        if len(w) and w.sum() > 0:
            w = w * (len(w) / w.sum())  # mean 1: the learning rate means the same whatever the weights' scale
        prompts, pairs = self._prompts(inputs)
        seqs = self._lm.encode(prompts, cfg.max_length)
        pair_t = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
        t_t = torch.tensor(t, dtype=torch.float32, device=self._lm.device)
        w_t = torch.tensor(w, dtype=torch.float32, device=self._lm.device)
        self.train_losses = []
        with self._lm.adapter(cfg, None) as params:
            _init_lora(params, self._seed)
            torch.manual_seed(self._seed)  # LoRA dropout
            self._lm.base.train(cfg.lora_dropout > 0)
            opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
            rng = np.random.default_rng(self._seed)
            for _ in range(cfg.epochs if len(seqs) else 0):
                order = rng.permutation(len(seqs))
                total = 0.0
                for start in range(0, len(order), cfg.batch_size):
                    batch = order[start : start + cfg.batch_size]
                    opt.zero_grad(set_to_none=True)
                    for ms in range(0, len(batch), cfg.micro_batch_size):
                        mb = batch[ms : ms + cfg.micro_batch_size]
                        logp = torch.log_softmax(self._lm.label_logits([seqs[i] for i in mb], pair_t[mb]), -1)
                        mb_t = torch.as_tensor(mb, device=self._lm.device)
                        ce = -(t_t[mb_t] * logp[:, 0] + (1 - t_t[mb_t]) * logp[:, 1])
                        loss = (w_t[mb_t] * ce).sum() / len(batch)
                        loss.backward()  # type: ignore[no-untyped-call]
                        total += float(loss.detach()) * len(batch)
                    opt.step()
                self.train_losses.append(total / len(order))
            self._state = {n: p.detach().clone() for n, p in params.items()}
        self._trained_config = cfg
        return self

    def _require_fit(self, what: str) -> dict[str, torch.Tensor]:
        if self._state is None:
            raise AarlabError(f"ctx.strong.{what} called before ctx.strong.fit: train the model first")
        return self._state

    def predict_proba(self, inputs: Inputs) -> np.ndarray:
        """P(label = True) (pairwise: P(first is better)) from the two label tokens' logits."""
        state = self._require_fit("predict_proba")
        cfg = self._trained_config
        prompts, pairs = self._prompts(inputs)
        if not prompts:
            return np.zeros(0)
        with self._lm.adapter(cfg, state):
            return self._lm.label_proba(prompts, pairs, cfg)

    def features(self, inputs: Inputs) -> np.ndarray:
        """The frozen base model's last-token hidden state at the middle layer (``features_layer``)."""
        prompts, _ = self._prompts(inputs)
        return np.array(self._lm.features(prompts, self._config), copy=True)

    def prior(self, inputs: Inputs) -> np.ndarray:
        """Zero-shot P(label = True) of the base model (adapter disabled): no label, no teacher."""
        prompts, pairs = self._prompts(inputs)
        if not prompts:
            return np.zeros(0)
        return self._lm.prior(prompts, pairs, self._config)

    def generate(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[str]:
        """Greedy continuations of raw prompts (chat-wrapped for instruct models), with this student's
        current weights: the base model before ``fit``, its adapter after."""
        n = max_new_tokens or self._config.max_new_tokens
        if not prompts:
            return []
        if self._state is None:
            with self._lm.base_only():
                return self._lm.generate(prompts, n, self._config, cacheable=True)
        with self._lm.adapter(self._trained_config, self._state):
            return self._lm.generate(prompts, n, self._trained_config, cacheable=False)

    def fresh(self) -> LMStudent:
        """An untrained student on the same frozen base (shared in memory, not reloaded)."""
        return LMStudent(self._lm, self._config, self._seed, self._fmt)


def _init_lora(params: dict[str, torch.nn.Parameter], seed: int) -> None:
    """peft's default LoRA init (A: Kaiming-uniform, B: 0), drawn from a seeded CPU generator so it is
    the same on every device and independent of any other use of torch's global RNG."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in params.items():
            if ".lora_A." in name:
                init = torch.empty(p.shape, dtype=torch.float32)
                torch.nn.init.kaiming_uniform_(init, a=math.sqrt(5), generator=gen)
                p.copy_(init)
            else:
                p.zero_()
