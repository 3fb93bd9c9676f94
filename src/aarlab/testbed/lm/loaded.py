"""A frozen base model and its tokenizer, loaded once per process and shared by every student on it."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from aarlab.testbed.encoders.frozen import set_threads
from aarlab.testbed.errors import AarlabError, OfflineModelError
from aarlab.testbed.lm.config import LMConfig, pick_device, pick_dtype
from aarlab.testbed.lm.resolve import ModelSource, offline_hint, resolve_model


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
    dtype = pick_dtype(dev, gguf=source.gguf_file is not None)
    key = (f"{source.folder.resolve()}::{source.gguf_file or ''}", str(dev), str(dtype))
    if key in _LOADED:
        return _LOADED[key]
    if not show_progress:
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    set_threads()
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
