"""The CUDA path: fp32 equal to the CPU, fp16 within the issue's bounds. Skipped without onnxruntime-gpu and a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from evalfast.data.golden import load_golden
from evalfast.evaluate import evaluate
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.parity import one_minus_cos
from evalfast.model.variants import ensure_variant
from evalfast.search.index import search

from conftest import HANDWRITTEN

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo():
    return load_golden(HANDWRITTEN)


def test_cuda_fp32_equals_cpu(minilm_export, demo):
    texts = demo.doc_texts + demo.query_texts
    cpu = Encoder(minilm_export).encode(texts).vectors
    cuda = Encoder(minilm_export, EncoderConfig(device="cuda")).encode(texts).vectors
    assert one_minus_cos(cpu, cuda).max() < 1e-5


def test_cuda_fp16_is_close_and_ranks_the_same(minilm_export, demo):
    """fp16 as `--device cuda --precision fp16` runs it: mean 1-cos <= 1e-3, and nDCG@10 within 0.002 of fp32's.

    fp16 rounding depends on how texts are batched (padding width), and on the 160-query set of that run a near-tie flips for one
    query or so: measured on an H200, nDCG@10 moved by 0.0009 here and by 0.00003 in `evalfast bench`, whose
    batches differ (benchmarks/RESULTS.md)."""
    ensure_variant(minilm_export, "fp16")
    texts = demo.doc_texts + demo.query_texts
    exact = Encoder(minilm_export).encode(texts).vectors
    half = Encoder(minilm_export, EncoderConfig.for_device("cuda", "fp16"))
    assert one_minus_cos(exact, half.encode(texts).vectors).mean() <= 1e-3
    exact_ndcg = evaluate(Encoder(minilm_export), demo).metrics["ndcg@10"]
    assert abs(evaluate(half, demo).metrics["ndcg@10"] - exact_ndcg) < 2e-3


def test_cuda_search_gives_the_cpu_run():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50_000, 384)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    docs[25_000:25_100] = docs[:100]  # exact ties
    queries = docs[rng.choice(50_000, 300)] + rng.normal(scale=0.05, size=(300, 384)).astype(np.float32)
    tie_rank = np.arange(len(docs))
    on_cpu, on_gpu = search(docs, queries, 100, tie_rank), search(docs, queries, 100, tie_rank, device="cuda")
    np.testing.assert_array_equal(on_gpu.doc_ids, on_cpu.doc_ids)
    np.testing.assert_array_equal(on_gpu.scores, on_cpu.scores)


def test_finetune_trains_on_cuda(tiny_model, tmp_path):
    import torch

    from evalfast.train.finetune import FinetuneConfig, finetune

    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    result = finetune(str(tiny_model), HANDWRITTEN, tmp_path / "tuned", FinetuneConfig(epochs=1, lr=1e-3, device="cuda"),
                      cache_root=tmp_path / "cache")
    assert (result.output / "model.onnx").is_file() and result.finetuned.counts["queries_evaluated"] > 0
