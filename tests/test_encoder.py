"""The ONNX encoder against sentence-transformers, and its batching."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from evalfast.encoder import Encoder, EncoderConfig, plan_batches
from evalfast.export import one_minus_cos
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


def test_progress_reports_every_text(tiny_export):
    seen = []
    Encoder(tiny_export, EncoderConfig(max_batch=2)).encode(TEXTS, seen.append)
    assert sum(seen) == len(TEXTS) and max(seen) <= 2
