"""Export: manifest contents, atomicity, refusal to overwrite, bad model folders."""

from __future__ import annotations

import json

import onnx
import pytest

from evalfast.errors import EvalfastError, ModelError
from evalfast.model import export as export_module
from evalfast.model.export import export_model
from evalfast.model.manifest import MANIFEST_NAME, file_sha256, read_manifest


def test_manifest_describes_the_export(tiny_export):
    manifest = read_manifest(tiny_export)
    raw = json.loads((tiny_export / MANIFEST_NAME).read_text())
    graph = onnx.load(str(tiny_export / "model.onnx"))
    assert manifest.sha256 == file_sha256(tiny_export / "model.onnx")
    assert [o.name for o in graph.graph.output] == ["sentence_embedding"]
    assert manifest.opset == max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    assert (manifest.dimension, manifest.max_seq_length, manifest.pooling) == (32, 24, "mean")
    assert manifest.parity.probe_texts > 10 and manifest.parity.max_one_minus_cos < 1e-4
    assert {"source", "sha256", "opset", "max_seq_length", "pooling", "normalize", "dimension", "parity"} <= raw.keys()
    assert (tiny_export / "tokenizer.json").is_file()


def test_existing_folder_is_kept_without_overwrite(tiny_model, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(EvalfastError, match="--overwrite"):
        export_model(str(tiny_model), target)
    assert (target / "keep.txt").read_text() == "mine"


def test_failed_parity_leaves_nothing_behind(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "FP32_PARITY_LIMIT", -1.0)
    target = tmp_path / "out"
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        export_model(str(tiny_model), target)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_export(tiny_model, tiny_export, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "out"
    shutil.copytree(tiny_export, target)
    before = (target / MANIFEST_NAME).read_text()
    monkeypatch.setattr(export_module, "FP32_PARITY_LIMIT", -1.0)
    with pytest.raises(ModelError):
        export_model(str(tiny_model), target, overwrite=True)
    assert (target / MANIFEST_NAME).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: p, "missing config.json"),
])
def test_bad_model_folders(tmp_path, make, message):
    with pytest.raises(ModelError, match=message):
        export_model(str(make(tmp_path)), tmp_path / "out")
