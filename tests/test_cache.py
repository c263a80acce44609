"""The embedding cache: hits return the stored vectors, misses are embedded once, torn writes are ignored."""

from __future__ import annotations

import numpy as np

from evalfast.model.cache import KEYS_SUFFIX, EmbeddingCache, text_keys
from evalfast.model.embeddings import embed
from evalfast.model.encoder import Encoder


class CountingEncoder:
    """Wraps an encoder and records which texts reached the model."""

    def __init__(self, encoder: Encoder):
        self.inner, self.dimension, self.config, self.seen = encoder, encoder.dimension, encoder.config, []

    def encode(self, texts, *args):
        self.seen.extend(texts)
        return self.inner.encode(texts, *args)

    def token_stats(self, texts):
        return self.inner.token_stats(texts)


def test_lookup_returns_stored_vectors_in_key_order(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp")
    keys = text_keys(["a", "b", "c"])
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.add(keys[:2], vectors[:2])
    cache.add(keys[2:], vectors[2:])
    found, hits = cache.lookup(text_keys(["c", "zzz", "a"]), 4)
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(hits, vectors[[2, 0]])


def test_shard_without_keys_file_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, "fp")
    cache.add(text_keys(["a"]), np.ones((1, 4), np.float32))
    next(cache.folder.glob(f"*{KEYS_SUFFIX}")).unlink()  # as if killed between the two writes
    found, hits = cache.lookup(text_keys(["a"]), 4)
    assert not found.any() and hits is None


def test_embed_encodes_each_distinct_text_once_and_reuses_the_cache(tiny_export, tmp_path):
    encoder = CountingEncoder(Encoder(tiny_export))
    cache = EmbeddingCache(tmp_path, "fp")
    texts = ["red", "green", "red", "blue"]
    first = embed(encoder, texts, cache)
    assert sorted(encoder.seen) == ["blue", "green", "red"] and first.n_encoded == 3
    np.testing.assert_array_equal(first.vectors[0], first.vectors[2])

    encoder.seen.clear()
    second = embed(encoder, ["blue", "violet", "red"], cache)
    assert encoder.seen == ["violet"] and (second.n_encoded, second.n_cached) == (1, 2)
    np.testing.assert_array_equal(second.vectors[[0, 2]], first.vectors[[3, 0]])
    np.testing.assert_allclose(second.vectors[1], Encoder(tiny_export).encode(["violet"]).vectors[0], atol=1e-6)


def test_a_graph_replaced_in_place_is_not_served_from_the_cache(tiny_export, tmp_path):
    # another valid graph of the same shape under the old manifest: the cache key must follow the bytes that run
    import shutil

    from evalfast.data.golden import load_golden
    from evalfast.evaluate import evaluate
    from evalfast.model.export import export_model
    from evalfast.model.manifest import MODEL_FILE, file_sha256

    from conftest import HANDWRITTEN, make_tiny_model

    folder = tmp_path / "export"
    shutil.copytree(tiny_export, folder)
    golden = load_golden(HANDWRITTEN)
    first = Encoder(folder)
    before = evaluate(first, golden, cache=EmbeddingCache(tmp_path / "cache", first.fingerprint))
    other = export_model(str(make_tiny_model(tmp_path / "other", seed=1)), tmp_path / "other-export")
    shutil.copy(tmp_path / "other-export" / MODEL_FILE, folder / MODEL_FILE)
    swapped = Encoder(folder)
    assert swapped.graph_sha256 == file_sha256(folder / MODEL_FILE) == other.sha256 != first.graph_sha256
    cached = evaluate(swapped, golden, cache=EmbeddingCache(tmp_path / "cache", swapped.fingerprint))
    fresh = evaluate(Encoder(folder), golden)
    assert cached.model_sha256 == other.sha256 and cached.embedding["cached"] == 0
    assert cached.metrics == fresh.metrics != before.metrics


def test_a_graphs_hash_is_remembered_until_the_file_changes(tmp_path):
    import hashlib
    import json
    import os

    from evalfast.model.manifest import HASHES_NAME, remembered_sha256

    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"first graph")
    assert remembered_sha256(graph) == hashlib.sha256(b"first graph").hexdigest()
    memo = tmp_path / HASHES_NAME
    poisoned = json.loads(memo.read_text())
    poisoned["model.onnx"]["sha256"] = "remembered"
    memo.write_text(json.dumps(poisoned))
    assert remembered_sha256(graph) == "remembered"  # same size and mtime: not read again
    graph.write_bytes(b"other graph")  # same size, new content and mtime
    os.utime(graph, ns=(graph.stat().st_atime_ns, graph.stat().st_mtime_ns + 1_000_000))
    assert remembered_sha256(graph) == hashlib.sha256(b"other graph").hexdigest()


def test_rates_count_only_the_texts_encoded_now(tiny_export, tmp_path):
    encoder = Encoder(tiny_export)
    cache = EmbeddingCache(tmp_path, "fp")
    first = embed(encoder, ["red", "green", "blue"], cache)
    assert first.n_encoded_tokens == first.n_tokens and 0 < first.encode_seconds <= first.seconds
    assert first.encoded_texts_per_second == 3 / first.encode_seconds

    partly = embed(encoder, ["red", "a violet sky at dusk"], cache)
    assert partly.n_encoded == 1 and partly.n_encoded_tokens == encoder.token_stats(["a violet sky at dusk"])[0]
    assert partly.encoded_tokens_per_second == partly.n_encoded_tokens / partly.encode_seconds

    cached = embed(encoder, ["red", "green"], cache)
    assert (cached.n_encoded, cached.n_encoded_tokens, cached.encode_seconds) == (0, 0, 0.0)
    assert cached.encoded_texts_per_second is None and cached.encoded_tokens_per_second is None
    assert cached.n_tokens > 0  # the texts' own counts are still reported
