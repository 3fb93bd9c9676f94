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


def test_a_shard_being_written_or_torn_is_never_read(tmp_path, caplog):
    """Another process's temp file once matched ``shard-*.npz``: a reader opened it half-written and the
    server answered 500 (``BadZipFile``) in the middle of a demo. Temp files are not shards; a torn shard
    (a full disk, an old version's leftover) is skipped with a warning and its texts re-encoded."""
    writer = FeatureCache(tmp_path, "enc")
    writer.put(["a", "b"], np.ones((2, 3)))
    (writer.dir / ".tmp-0123456789abcdef0123456789abcdef.npz").write_bytes(b"PK\x03\x04half")
    (writer.dir / "shard-0123456789abcdef0123456789abcdef.tmp.npz").write_bytes(b"PK\x03\x04half")
    (writer.dir / "shard-fedcba9876543210fedcba9876543210.npz").write_bytes(b"torn")
    found, rows = FeatureCache(tmp_path, "enc").lookup(["a", "c", "b"])
    assert found.tolist() == [True, False, True]
    assert rows is not None and rows.shape == (2, 3)
    assert "shard-fedcba9876543210fedcba9876543210.npz" in caplog.text
    clean = FeatureCache(tmp_path / "clean", "enc")
    clean.put(["a"], np.ones((1, 3)))
    assert [p.name[:6] for p in clean.dir.iterdir()] == ["shard-"]  # the temp file was renamed


def test_concurrent_writers_of_one_cache_entry_never_publish_a_torn_file(tmp_path):
    """Every writer has a temp file of its own: two processes filling the same entry (the seed cache,
    a task pool, a bundle file) once shared ``x.tmp`` and renamed each other's half-written file."""
    import threading

    from aarlab.testbed.files import atomic_path

    target, seen = tmp_path / "seed-0.npz", []
    go = threading.Barrier(2)

    def write(value: float) -> None:
        with atomic_path(target, ".npz") as tmp:
            seen.append(tmp)
            go.wait()  # both writers are mid-write at once
            np.savez(tmp, x=np.full(100_000, value))

    threads = [threading.Thread(target=write, args=(v,)) for v in (1.0, 2.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen[0] != seen[1]
    with np.load(target) as z:
        assert set(np.unique(z["x"]).tolist()) in ({1.0}, {2.0})
    assert [p.name for p in tmp_path.iterdir()] == ["seed-0.npz"]


def test_a_torn_seed_cache_is_computed_again(tmp_path, monkeypatch, tiny_prepared):
    from aarlab.testbed import pipeline

    path = tmp_path / "seed-0.npz"
    monkeypatch.setattr(pipeline, "_cache_path", lambda *_: path)
    prep = tiny_prepared
    good = pipeline.seed_baseline(prep, 0)
    path.write_bytes(b"PK\x03\x04torn")
    again = pipeline.seed_baseline(prep, 0)
    assert np.array_equal(again.ceiling_test, good.ceiling_test)
    with np.load(path) as z:  # and replaced by a whole file
        assert np.array_equal(z["ceiling_test"], good.ceiling_test)
