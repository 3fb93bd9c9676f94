"""Encoders: real offline models, the feature cache, pairwise features, and no hub access."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.testbed.encoders import encode_texts, encoder_specs, featurize, get_encoder
from aarlab.testbed.encoders.cache import FeatureCache
from aarlab.testbed.errors import OfflineModelError, UnknownNameError
from aarlab.testbed.schema import Item

TEXTS = ["The city of Paris is in France.", "The city of Paris is in Peru.", "def f(x):\n    return x + 1"]


def test_registry_lists_every_offline_encoder():
    ids = {s.id for s in encoder_specs()}
    assert {"tfidf", "minilm-l3", "minilm-l6", "mpnet", "smollm2-l15"} <= ids


@pytest.mark.parametrize("enc_id", ["minilm-l3", "minilm-l6"])
def test_real_encoders_embed_meaningfully(enc_id, tmp_path):
    enc = get_encoder(enc_id)
    v = encode_texts(enc, TEXTS, show_progress=False, cache=FeatureCache(tmp_path, enc_id))
    assert v.shape == (3, enc.dim) and v.dtype == np.float32
    cos = (v @ v.T) / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    assert cos[0, 1] > cos[0, 2]  # two city statements are closer than a statement and code


def test_second_run_encodes_nothing(tmp_path):
    enc = get_encoder("minilm-l3")
    cache = FeatureCache(tmp_path, enc.id)
    first = encode_texts(enc, TEXTS, show_progress=False, cache=cache)
    calls: list[int] = []
    original = enc.encode

    def counting(texts, progress=None):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(texts, progress)

    enc.encode = counting  # type: ignore[method-assign]
    try:
        again = encode_texts(
            enc, [*TEXTS, TEXTS[0]], show_progress=False, cache=FeatureCache(tmp_path, enc.id)
        )
        assert calls == []
        assert np.allclose(again[:3], first) and np.allclose(again[3], first[0])
        encode_texts(enc, [*TEXTS, "a new text"], show_progress=False, cache=FeatureCache(tmp_path, enc.id))
        assert calls == [1]  # only the unseen text
    finally:
        enc.encode = original  # type: ignore[method-assign]


def test_onnx_batched_equals_single():
    enc = get_encoder("minilm-l3")
    batched = enc.encode(TEXTS)
    single = np.concatenate([enc.encode([t]) for t in TEXTS])
    assert np.allclose(batched, single, atol=1e-5)


def test_pairwise_features_are_antisymmetric():
    a = Item("1", ("p\nfirst answer", "p\nsecond answer"))
    b = Item("2", ("p\nsecond answer", "p\nfirst answer"))
    f = featurize("minilm-l3", [a, b], show_progress=False)
    assert np.allclose(f[0], -f[1])


def test_tfidf_is_fitted_on_corpus_and_not_cached():
    enc = get_encoder("tfidf")
    assert enc.cacheable is False
    v = encode_texts(enc, TEXTS * 3, show_progress=False)
    assert v.shape == (9, enc.dim)


def test_hub_names_fail_with_offline_alternative():
    with pytest.raises(OfflineModelError, match="never downloads.*minilm-l6"):
        get_encoder("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(UnknownNameError, match="unknown encoder 'bert'"):
        get_encoder("bert")
