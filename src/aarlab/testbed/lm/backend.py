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
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aarlab.config import get_settings
from aarlab.testbed.errors import AarlabError, OfflineModelError
from aarlab.testbed.lm.prompts import PromptFormat, item_prompt, label_words
from aarlab.testbed.lm.resolve import ModelSource, offline_hint, resolve_model
from aarlab.testbed.pipeline import Prepared, task_fingerprint
from aarlab.testbed.schema import Inputs
from aarlab.testbed.tasks import Task

#: ``fit`` keyword arguments that only mean something to the embed backend's probe heads. Methods written
#: for the embed backend pass them (``head=..., C=...``); the lm backend ignores them so they run unchanged.
PROBE_ONLY_OPTIONS = frozenset({"head", "C", "hidden", "max_iter"})


class LMConfig(BaseModel):
    """Training and inference settings of an lm student (also the ``fit(**overrides)`` vocabulary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=2, ge=0, description="passes over the training inputs per fit")
    lr: float = Field(default=2e-4, gt=0, description="AdamW learning rate of the LoRA weights")
    batch_size: int = Field(default=16, ge=1, description="examples per optimizer step")
    micro_batch_size: int = Field(
        default=8, ge=1, description="examples per forward pass (gradient accumulation)"
    )
    eval_batch_size: int = Field(default=32, ge=1, description="examples per forward pass when predicting")
    weight_decay: float = Field(default=0.0, ge=0)
    lora_rank: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    #: None: peft's default modules for the architecture (q_proj/v_proj for Llama/Qwen), else all linear.
    target_modules: tuple[str, ...] | None = None
    max_length: int = Field(
        default=256, ge=8, description="prompt tokens kept (the start is cut, the question kept)"
    )
    #: Hidden layer for ``features``; None = the middle layer (RECIPES.md: middle layers carry the truth
    #: direction; the last layer does much worse).
    features_layer: int | None = None
    max_new_tokens: int = Field(default=48, ge=1, description="default length of ``generate``")
    #: Wrap ``generate`` prompts in the tokenizer's chat template when it has one (instruct models).
    chat_generation: bool = True


def pick_device(requested: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless a device is named."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it (half the memory, native speed); float32 elsewhere (CPU bf16 is slow)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _set_threads() -> None:
    n = get_settings().torch_threads
    if n > 0:
        torch.set_num_threads(n)


class LoadedLM:
    """A frozen base model and its tokenizer, shared by every student built on it, plus label-free caches."""

    def __init__(
        self, source: ModelSource, model: Any, tokenizer: Any, device: torch.device, load_seconds: float
    ) -> None:
        self.source = source
        self.base = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_seconds = load_seconds
        self.peft: Any = None
        self._slots: dict[str, dict[str, torch.nn.Parameter]] = {}
        self._token_ids: dict[str, int] = {}
        # Caches of base-model (adapter-off) outputs: label-free and identical for every student.
        self._prior_cache: dict[tuple[str, int, int, int], float] = {}
        self._feature_cache: dict[tuple[str, int, int], np.ndarray] = {}
        self._generation_cache: dict[tuple[str, int, bool, int], str] = {}
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()

    @property
    def num_layers(self) -> int:
        return int(self.base.config.num_hidden_layers)

    def token_id(self, word: str) -> int:
        """The id of a label word, which must be exactly one token (else the loss would be ill-defined)."""
        if word not in self._token_ids:
            ids = self.tokenizer.encode(word, add_special_tokens=False)
            if len(ids) != 1:
                raise AarlabError(
                    f"label word {word!r} is {len(ids)} tokens for {self.source.slug}; the lm backend reads "
                    "the answer from one next token: choose single-token label words in PromptFormat"
                )
            self._token_ids[word] = int(ids[0])
        return self._token_ids[word]

    # --- tokenisation -------------------------------------------------------------------------------

    def encode(self, prompts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids per prompt; long prompts lose their *start*, so the question and answer cue survive."""
        if not prompts:  # the fast tokenizer raises IndexError on an empty batch
            return []
        self.tokenizer.truncation_side = "left"
        out = self.tokenizer(list(prompts), truncation=True, max_length=max_length)
        return [list(x) for x in out["input_ids"]]

    def _pad(self, seqs: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, attention mask and each row's last real position (positions stay 0-based)."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        last = torch.tensor([len(s) - 1 for s in seqs], dtype=torch.long)
        return ids.to(self.device), mask.to(self.device), last.to(self.device)

    # --- forward passes -----------------------------------------------------------------------------

    def label_logits(self, seqs: Sequence[list[int]], pairs: torch.Tensor) -> torch.Tensor:
        """(n, 2) float32 logits of each row's (positive, negative) label token after its last token.

        Runs the decoder, then the output head on the last real position only: the full (n, length,
        vocab) logits would cost GBs for a 150k vocabulary and are never needed.
        """
        ids, mask, last = self._pad(seqs)
        hidden = self.base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        h = hidden[torch.arange(len(seqs), device=self.device), last]
        logits = self.base.get_output_embeddings()(h).float()
        return torch.gather(logits, 1, pairs.to(self.device))

    def hidden_at(self, seqs: Sequence[list[int]], layer: int) -> torch.Tensor:
        """(n, d) hidden state at ``layer`` (0 = embeddings) of each row's last real token."""
        ids, mask, last = self._pad(seqs)
        out = self.base.get_decoder()(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[layer][torch.arange(len(seqs), device=self.device), last].float()

    # --- adapters -----------------------------------------------------------------------------------

    def _slot(self, cfg: LMConfig) -> str:
        """The LoRA slot for this adapter shape (created on first use; shared by same-shaped students)."""
        from peft import LoraConfig, get_peft_model

        shape = json.dumps([cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules])
        name = "aarlab_" + hashlib.sha256(shape.encode()).hexdigest()[:10]
        if name in self._slots:
            return name

        def lora(targets: Any) -> Any:
            return LoraConfig(
                r=cfg.lora_rank,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=targets,
                bias="none",
            )

        def inject(targets: Any) -> None:
            with warnings.catch_warnings():  # peft 0.21 probes a transformers attribute deprecated in v5
                warnings.filterwarnings("ignore", ".*is_gradient_checkpointing.*", FutureWarning)
                if self.peft is None:
                    self.peft = get_peft_model(self.base, lora(targets), adapter_name=name)
                else:
                    self.peft.add_adapter(name, lora(targets))

        try:
            inject(list(cfg.target_modules) if cfg.target_modules else None)
        except ValueError:
            if cfg.target_modules:
                raise
            # peft knows no default modules for this architecture: adapt every linear layer instead.
            inject("all-linear")
        params = {n: p for n, p in self.peft.named_parameters() if f".{name}." in n}
        if not params:
            raise AarlabError(f"LoRA found no modules to adapt in {self.source.slug} (target_modules?)")
        with torch.no_grad():
            for p in params.values():
                p.zero_()
        self._slots[name] = params
        return name

    @contextmanager
    def adapter(
        self, cfg: LMConfig, state: dict[str, torch.Tensor] | None
    ) -> Iterator[dict[str, torch.nn.Parameter]]:
        """Load a student's adapter into its slot (blank when ``state`` is None); blank it again after."""
        name = self._slot(cfg)
        params = self._slots[name]
        self.peft.set_adapter(name)
        with torch.no_grad():
            for n, p in params.items():
                if state is None:
                    p.zero_()
                else:
                    p.copy_(state[n])
        try:
            yield params
        finally:
            with torch.no_grad():
                for p in params.values():
                    p.zero_()
            self.base.eval()

    def base_only(self) -> Any:
        """A context in which the base model runs without any adapter."""
        return self.peft.disable_adapter() if self.peft is not None else nullcontext()

    # --- label-free, cached base-model outputs --------------------------------------------------------

    def prior(self, prompts: Sequence[str], pairs: Sequence[tuple[int, int]], cfg: LMConfig) -> np.ndarray:
        """Zero-shot P(positive label token) of the base model, cached per (prompt, labels, length)."""
        keys = [(p, a, b, cfg.max_length) for p, (a, b) in zip(prompts, pairs, strict=True)]
        todo = [i for i, k in enumerate(keys) if k not in self._prior_cache]
        if todo:
            with self.base_only():
                probs = self.label_proba([prompts[i] for i in todo], [pairs[i] for i in todo], cfg)
            for i, p in zip(todo, probs, strict=True):
                self._prior_cache[keys[i]] = float(p)
        return np.array([self._prior_cache[k] for k in keys], dtype=float)

    def features(self, prompts: Sequence[str], cfg: LMConfig) -> np.ndarray:
        """Base-model last-token hidden states at the features layer, cached per prompt."""
        layer = cfg.features_layer if cfg.features_layer is not None else self.num_layers // 2
        if not 0 <= layer <= self.num_layers:
            raise AarlabError(
                f"features_layer {layer} is outside 0..{self.num_layers} for {self.source.slug}"
            )
        keys = [(p, layer, cfg.max_length) for p in prompts]
        todo = sorted({k for k in keys if k not in self._feature_cache}, key=lambda k: len(k[0]))
        with self.base_only():
            for start in range(0, len(todo), cfg.eval_batch_size):
                chunk = todo[start : start + cfg.eval_batch_size]
                with torch.inference_mode():
                    states = self.hidden_at(self.encode([k[0] for k in chunk], cfg.max_length), layer)
                for k, v in zip(chunk, states.cpu().numpy(), strict=True):
                    self._feature_cache[k] = v.astype(np.float32)
        if not keys:
            return np.zeros((0, int(self.base.config.hidden_size)), dtype=np.float32)
        return np.stack([self._feature_cache[k] for k in keys])

    def label_proba(
        self, prompts: Sequence[str], pairs: Sequence[tuple[int, int]], cfg: LMConfig
    ) -> np.ndarray:
        """P(positive label token) with whatever adapter state is loaded; batches sorted by length."""
        seqs = self.encode(prompts, cfg.max_length)
        out = np.zeros(len(seqs))
        order = np.argsort([len(s) for s in seqs], kind="stable")
        pair_t = torch.tensor(list(pairs), dtype=torch.long).reshape(-1, 2)
        for start in range(0, len(seqs), cfg.eval_batch_size):
            idx = order[start : start + cfg.eval_batch_size]
            with torch.inference_mode():
                logits = self.label_logits([seqs[i] for i in idx], pair_t[idx])
            out[idx] = torch.softmax(logits, dim=-1)[:, 0].cpu().numpy()
        return out

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, cfg: LMConfig, cacheable: bool
    ) -> list[str]:
        """Greedy continuations (left-padded batches); base-model outputs are cached per prompt."""
        chat = bool(cfg.chat_generation and getattr(self.tokenizer, "chat_template", None))
        keys = [(p, max_new_tokens, chat, cfg.max_length) for p in prompts]
        todo = [k for k in dict.fromkeys(keys) if not cacheable or k not in self._generation_cache]
        results: dict[tuple[str, int, bool, int], str] = {}
        todo.sort(key=lambda k: len(k[0]))
        for start in range(0, len(todo), cfg.eval_batch_size):
            chunk = todo[start : start + cfg.eval_batch_size]
            texts = [self._generation_text(k[0], chat) for k in chunk]
            self.tokenizer.padding_side = "left"
            self.tokenizer.truncation_side = "left"
            try:
                enc = self.tokenizer(
                    texts,
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=cfg.max_length,
                    add_special_tokens=not chat,
                ).to(self.device)
            finally:
                self.tokenizer.padding_side = "right"
            with torch.inference_mode():
                out = self.base.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=int(self.tokenizer.pad_token_id),
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for k, text in zip(
                chunk, self.tokenizer.batch_decode(new, skip_special_tokens=True), strict=True
            ):
                results[k] = text.strip()
                if cacheable:
                    self._generation_cache[k] = results[k]
        return [results[k] if k in results else self._generation_cache[k] for k in keys]

    def _generation_text(self, prompt: str, chat: bool) -> str:
        if not chat:
            return prompt
        return str(
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        )


_LOADED: dict[tuple[str, str, str], LoadedLM] = {}


def load_lm(ref: str, device: str | None = None, *, show_progress: bool = False) -> LoadedLM:
    """Load (once per process) the model ``ref`` points to, from local files only."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(ref)
    dev = pick_device(device)
    dtype = pick_dtype(dev)
    key = (f"{source.folder.resolve()}::{source.gguf_file or ''}", str(dev), str(dtype))
    if key in _LOADED:
        return _LOADED[key]
    if not show_progress:
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    _set_threads()
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"local_files_only": True}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.folder), **kwargs)
        model: Any = AutoModelForCausalLM.from_pretrained(str(source.folder), dtype=dtype, **kwargs)
    except OSError as e:
        raise OfflineModelError(
            f"could not load {ref!r} from {source.folder}: {e}; {offline_hint(ref)}"
        ) from e
    model.to(dev)
    loaded = LoadedLM(source, model, tokenizer, dev, time.perf_counter() - t0)
    _LOADED[key] = loaded
    return loaded


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
