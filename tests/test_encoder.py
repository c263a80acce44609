"""The ONNX encoder against sentence-transformers, and its batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from evalfast.errors import ModelError
from evalfast.model.encoder import Encoder, EncoderConfig, chunk_bounds, pack_batches, plan_batches
from evalfast.model.parity import one_minus_cos

from conftest import TINY_MAX_SEQ_LENGTH

TEXTS = [
    "a haunted lighthouse",
    "something cozy for a rainy day",
    "  padded with spaces  ",
    "Write about the kitchen you grew up in, the smell of bread and the radio that never worked.",
    " ".join(["word"] * 100),  # far past the tiny model's 24-token limit
    "x",
]


@pytest.mark.parametrize("budget, max_batch", [(1, 1), (64, 4), (100_000, 3), (100_000, 1000)])
def test_plan_batches_covers_every_text_once_within_budget(budget, max_batch):
    lengths = np.random.default_rng(0).integers(1, 60, size=97)
    batches = plan_batches(lengths, budget, max_batch)
    assert sorted(np.concatenate(batches).tolist()) == list(range(97))
    for batch in batches:
        assert 1 <= len(batch) <= max_batch
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= budget


def test_pack_batches_pads_each_text_as_a_loop_would():
    rng = np.random.default_rng(1)
    token_ids = [rng.integers(1, 30000, size=n).tolist() for n in rng.integers(2, 40, size=57)]
    flat_ids = np.array([i for ids in token_ids for i in ids], np.int64)
    lengths = np.array([len(ids) for ids in token_ids], np.int64)
    batches = pack_batches(flat_ids, lengths, token_budget=200, max_batch=8)
    assert sorted(np.concatenate([b.rows for b in batches]).tolist()) == list(range(57))
    for batch in batches:
        width = max(len(token_ids[row]) for row in batch.rows)
        assert batch.input_ids.shape == batch.attention_mask.shape == (len(batch.rows), width)
        for ids, mask, row in zip(batch.input_ids, batch.attention_mask, batch.rows):
            expected = token_ids[row] + [0] * (width - len(token_ids[row]))
            assert ids.tolist() == expected
            assert mask.tolist() == [1] * len(token_ids[row]) + [0] * (width - len(token_ids[row]))


def test_tiny_export_matches_sentence_transformers(tiny_model, tiny_export):
    reference = SentenceTransformer(str(tiny_model), device="cpu").encode(TEXTS, convert_to_numpy=True)
    ours = Encoder(tiny_export).encode(TEXTS).vectors
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    assert one_minus_cos(reference, ours).max() < 1e-6
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_truncation_count_matches_the_models_max_length(tiny_model, tiny_export):
    tokenizer = SentenceTransformer(str(tiny_model), device="cpu").tokenizer
    too_long = sum(len(tokenizer(t.strip())["input_ids"]) > TINY_MAX_SEQ_LENGTH for t in TEXTS)
    encoded = Encoder(tiny_export).encode(TEXTS)
    assert too_long == 1 and encoded.n_truncated == too_long


@pytest.mark.parametrize("budget, max_batch", [(8, 1), (64, 2), (4096, 64)])
def test_batching_never_changes_vectors_or_order(tiny_export, budget, max_batch):
    one_by_one = np.stack([Encoder(tiny_export).encode([t]).vectors[0] for t in TEXTS])
    batched = Encoder(tiny_export, EncoderConfig(token_budget=budget, max_batch=max_batch, chunk=4)).encode(TEXTS)
    np.testing.assert_allclose(batched.vectors, one_by_one, atol=1e-6)


@pytest.mark.parametrize("n, chunk", [(0, 8), (1, 8), (100, 8), (100, 1), (5000, 1024)])
def test_chunks_cover_the_input_in_order_growing_to_the_chunk_size(n, chunk):
    bounds = list(chunk_bounds(n, chunk))
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(n))
    sizes = [stop - start for start, stop in bounds]
    assert all(size <= chunk for size in sizes) and sizes == sorted(sizes[:-1]) + sizes[-1:]


@pytest.mark.parametrize("config", [
    EncoderConfig(chunk=7, max_batch=3, tokenizer_threads=3, runners=4),
    EncoderConfig(chunk=16, max_batch=5, tokenizer_processes=2, runners=2),
], ids=["threads", "processes"])
def test_parallel_tokenising_and_running_keep_input_order(tiny_export, config):
    texts = [f"{i} {TEXTS[i % len(TEXTS)]}" for i in range(200)]
    serial = Encoder(tiny_export).encode(texts)
    encoder = Encoder(tiny_export, config)
    for _ in range(2):  # the worker processes are reused by a second call
        parallel = encoder.encode(texts)
        np.testing.assert_allclose(parallel.vectors, serial.vectors, atol=1e-6)
        assert (parallel.n_tokens, parallel.n_truncated) == (serial.n_tokens, serial.n_truncated)


def test_progress_reports_every_text(tiny_export):
    seen = []
    Encoder(tiny_export, EncoderConfig(max_batch=2)).encode(TEXTS, seen.append)
    assert sum(seen) == len(TEXTS) and max(seen) <= 2


def _copy_export(tiny_export, tmp_path):
    import shutil

    return Path(shutil.copytree(tiny_export, tmp_path / "export"))


@pytest.mark.parametrize("content", ["garbage, not JSON", '{"version": "1.0", "truncated": [1, 2'])
def test_a_corrupt_tokenizer_is_a_model_error_naming_the_file(tiny_export, tmp_path, content):
    folder = _copy_export(tiny_export, tmp_path)
    (folder / "tokenizer.json").write_text(content)
    with pytest.raises(ModelError, match=r"tokenizer\.json: not a readable tokenizer .*re-export"):
        Encoder(folder)


class SymbolicWidth:
    """An onnxruntime session whose output's width reads as symbolic, as some exported graphs' do."""

    def __init__(self, session):
        self.session = session

    def __getattr__(self, name):
        return getattr(self.session, name)

    def get_outputs(self):
        from types import SimpleNamespace

        return [SimpleNamespace(name=o.name, shape=[*o.shape[:-1], "width"]) for o in self.session.get_outputs()]


@pytest.mark.parametrize("static_shape", [True, False], ids=["static", "probed"])
def test_a_manifest_dimension_that_disagrees_with_the_graph_is_a_model_error(tiny_export, tmp_path, monkeypatch,
                                                                            static_shape):
    import json

    from evalfast.model import encoder as encoder_module

    folder = _copy_export(tiny_export, tmp_path)
    if not static_shape:  # the width is known only by running the graph
        real_session = encoder_module.onnx_session
        monkeypatch.setattr(encoder_module, "onnx_session", lambda *args: SymbolicWidth(real_session(*args)))
        assert Encoder(folder).dimension == 32  # the probe agrees with a right manifest
    manifest = json.loads((folder / "evalfast.json").read_text())
    manifest["dimension"] = 48
    (folder / "evalfast.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"evalfast\.json: dimension 48, but model\.onnx outputs 32 components"):
        Encoder(folder)
