"""The CUDA path: fp32 equal to the CPU, fp16 within the issue's bounds. Skipped without onnxruntime-gpu and a GPU."""

from __future__ import annotations

import pytest

from conftest import DEMO_GOLDEN
from evalfast.encoder import Encoder, EncoderConfig
from evalfast.evaluate import evaluate
from evalfast.export import one_minus_cos
from evalfast.golden import load_golden
from evalfast.precision import ensure_variant

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo():
    return load_golden(DEMO_GOLDEN)


def test_cuda_fp32_equals_cpu(minilm_export, demo):
    texts = demo.doc_texts + demo.query_texts
    cpu = Encoder(minilm_export).encode(texts).vectors
    cuda = Encoder(minilm_export, EncoderConfig(device="cuda")).encode(texts).vectors
    assert one_minus_cos(cpu, cuda).max() < 1e-5


def test_cuda_fp16_is_close_and_ranks_the_same(minilm_export, demo):
    ensure_variant(minilm_export, "fp16")
    texts = demo.doc_texts + demo.query_texts
    exact = Encoder(minilm_export).encode(texts).vectors
    half = Encoder(minilm_export, EncoderConfig(device="cuda", precision="fp16"))
    assert one_minus_cos(exact, half.encode(texts).vectors).mean() <= 1e-3
    exact_ndcg = evaluate(Encoder(minilm_export), demo).metrics["ndcg@10"]
    assert round(evaluate(half, demo).metrics["ndcg@10"], 3) == round(exact_ndcg, 3)
