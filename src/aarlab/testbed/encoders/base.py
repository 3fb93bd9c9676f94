"""The encoder interface, the encoder registry, and cached featurisation of items.

An encoder turns texts into fixed vectors; the *strong* and *weak* models of the ``embed`` backend are a
frozen encoder plus a trained head. Encoders are registered by id; the id is part of the cache key, so
any change to what an encoder computes must change its id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from aarlab.config import get_settings
from aarlab.registry import Registry
from aarlab.testbed.encoders.cache import FeatureCache, text_key
from aarlab.testbed.errors import OfflineModelError
from aarlab.testbed.schema import Item

log = logging.getLogger(__name__)

# Nothing in aarlab may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Encoder(Protocol):
    """What the testbed needs from an encoder."""

    id: str
    dim: int
    #: False for encoders fitted on the corpus itself (TF-IDF): their outputs depend on more than one text.
    cacheable: bool

    def prepare(self, corpus: Sequence[str]) -> None:
        """Fit on the (label-free) corpus if the encoder needs it; a no-op for frozen encoders."""

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode texts to a float32 matrix (len(texts), dim); call ``progress(n)`` as batches finish."""


#: ``cache_tag`` of encoders that cut a text longer than their window at its *start*: the end of a text
#: (the candidate answer after the question, the response after the prompt) carries the label, so it is
#: the part kept. Part of the feature-cache key (features cut at the end are never reused).
KEEP_END = "keep-end"


@runtime_checkable
class Windowed(Protocol):
    """An encoder with a token window (transformers): texts beyond it are cut, which is counted."""

    def count_truncated(self, texts: Sequence[str]) -> int:
        """How many of ``texts`` are longer than the window."""
        ...


def cache_name(encoder: Encoder) -> str:
    """The feature-cache key of an encoder: its id, and its ``cache_tag`` if it has one."""
    tag = getattr(encoder, "cache_tag", "")
    return f"{encoder.id}+{tag}" if tag else encoder.id


def warn_truncation(encoder: Encoder, texts: Sequence[str]) -> int:
    """Log, with counts, how many ``texts`` are longer than ``encoder``'s window; return that count."""
    if not isinstance(encoder, Windowed) or not texts:
        return 0
    n = encoder.count_truncated(texts)
    if n:
        window = getattr(encoder, "max_length", "its")
        log.warning(
            "encoder %s: %d of %d texts are longer than its %s-token window and were cut at their start "
            "(the question or prompt); the end (the candidate answer or response) is kept whole when it "
            "fits",
            encoder.id,
            n,
            len(texts),
            window,
        )
        TRUNCATED[encoder.id] = TRUNCATED.get(encoder.id, 0) + n
    return n


#: Texts cut by each encoder's window in this process (what ``warn_truncation`` reported).
TRUNCATED: dict[str, int] = {}


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: how to build it and what it is."""

    id: str
    description: str
    dim: int
    factory: Callable[[], Encoder]
    package: str
    params: str


#: The encoders by id; each is registered beside its implementation (``encoders/builtin.py``).
ENCODERS: Registry[EncoderSpec] = Registry("encoder", builtins=("aarlab.testbed.encoders.builtin",))
_INSTANCES: dict[str, Encoder] = {}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Register an encoder under ``spec.id`` (a taken id raises ValueError)."""
    return ENCODERS.register(spec.id, spec)


def encoder_specs() -> list[EncoderSpec]:
    """Every registered encoder, sorted by id."""
    return [ENCODERS.get(k) for k in ENCODERS.names()]


def get_encoder(encoder_id: str) -> Encoder:
    """The (process-wide, lazily loaded) encoder for an id; hub names fail with the offline alternative
    (``OfflineModelError``), other unknown ids with ``UnknownNameError`` listing the ids."""
    if encoder_id not in ENCODERS and "/" in encoder_id:
        raise OfflineModelError(
            f"encoder {encoder_id!r} looks like a model-hub name; aarlab never downloads models at run "
            f"time. Use an offline encoder shipped on PyPI ({', '.join(ENCODERS.names())}); "
            "see `aarlab encoders list`."
        )
    spec = ENCODERS.get(encoder_id)
    if encoder_id not in _INSTANCES:
        _INSTANCES[encoder_id] = spec.factory()
    return _INSTANCES[encoder_id]


def encode_texts(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    corpus: Sequence[str] | None = None,
    show_progress: bool = True,
    cache: FeatureCache | None = None,
) -> np.ndarray:
    """Encode texts through the feature cache: only texts never seen by this encoder are computed."""
    if not encoder.cacheable:
        encoder.prepare(corpus if corpus is not None else texts)
        return _run(encoder, list(texts), show_progress)
    unique = list(dict.fromkeys(texts))
    keys = [text_key(t) for t in unique]
    if cache is None:  # (an empty cache is falsy: never use `or` here)
        cache = FeatureCache(get_settings().feature_cache, cache_name(encoder))
    found, rows = cache.lookup(keys)
    out = np.zeros((len(unique), encoder.dim), dtype=np.float32)
    if rows is not None:
        out[found] = rows
    missing = np.flatnonzero(~found)
    if len(missing):
        todo = [unique[i] for i in missing]
        warn_truncation(encoder, todo)
        new = _run(encoder, todo, show_progress)
        cache.put([keys[i] for i in missing], new)
        out[missing] = new
    pos = {t: i for i, t in enumerate(unique)}
    return out[[pos[t] for t in texts]]


def _run(encoder: Encoder, texts: list[str], show_progress: bool) -> np.ndarray:
    if not show_progress or len(texts) < 64:
        return encoder.encode(texts)
    from aarlab.render import Counter

    with Counter(f"encoding {len(texts):,} texts with {encoder.id}", len(texts)) as counter:
        return encoder.encode(texts, progress=lambda n: counter.advance(n))


def featurize(
    encoder_id: str, items: Sequence[Item], *, corpus: Sequence[str] | None = None, show_progress: bool = True
) -> np.ndarray:
    """Item features: the text's vector (single) or the difference of the two vectors (pairwise).

    The pairwise difference is antisymmetric, so swapping ``first`` and ``second`` flips the sign of the
    features and a linear head's logit: the probe cannot learn a position bias.
    """
    encoder = get_encoder(encoder_id)
    flat = [t for it in items for t in it.texts]
    vecs = encode_texts(encoder, flat, corpus=corpus, show_progress=show_progress)
    widths = {len(it.texts) for it in items}
    if widths == {1}:
        return vecs
    if widths == {2}:
        return vecs[0::2] - vecs[1::2]
    raise ValueError(f"items mix text counts {sorted(widths)}; one task uses one schema")
