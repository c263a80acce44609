"""The model side under faults and on first use: damaged manifests, impossible opsets, a full disk, a graph
swapped under its variants, two first runs at once, the tools' chatter, and status lines for the long steps."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import optimum.exporters.onnx.convert as optimum_convert
import pytest
from test_cli import assert_user_error, invoke

from evalfast.errors import EvalfastError, ModelError
from evalfast.model import export as export_module
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.export import ensure_exported, export_model
from evalfast.model.manifest import MANIFEST_NAME, MODEL_FILE, read_manifest
from evalfast.model.once import build_once, exclusive
from evalfast.model.parity import one_minus_cos
from evalfast.model.variants import ensure_variant

from conftest import make_tiny_model, write_file

TEXTS = ["a haunted lighthouse", "a recipe from my grandmother", "robots learning to paint", "a cozy mystery"]
NOISE = ("failed in shape inference", "Please consider to run pre-processing before quantization", "TracerWarning",
         "torch_dtype", "Failed to infer data type", "Warning", "WARNING")


@pytest.fixture(autouse=True)
def _no_home_cache(monkeypatch, tmp_path) -> None:
    """A command that uses the default cache uses one of this test's own."""
    monkeypatch.setenv("EVALFAST_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture
def export_copy(tiny_export, tmp_path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_export, folder)
    return folder


def _rewrite_manifest(folder: Path, change) -> Path:
    path = folder / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(change(raw) if callable(change) else change, encoding="utf-8")
    return path


def _set(**fields):
    """A change of the manifest: ``fields`` set to these values."""
    return lambda raw: json.dumps({**raw, **fields})


def _drop(name: str):
    """A change of the manifest: field ``name`` removed."""
    return lambda raw: json.dumps({k: v for k, v in raw.items() if k != name})


DAMAGE = {  # id: (how the manifest is changed, what the error says)
    "dimension-string": (_set(dimension="384"), "field 'dimension' is \"384\", expected an integer"),
    "negative-length": (_set(max_seq_length=-1), "field 'max_seq_length' is -1, expected a positive integer"),
    "dimension-null": (_set(dimension=None), "field 'dimension' is null, expected an integer"),
    "dimension-float": (_set(dimension=32.0), "field 'dimension' is 32.0, expected an integer"),
    "bool-string": (_set(normalize="yes"), "field 'normalize' is \"yes\", expected true or false"),
    "optional-string": (_set(truncate_dim="16"), "field 'truncate_dim' is \"16\", expected an integer or null"),
    "truncate-too-long": (_set(truncate_dim=64), "field 'truncate_dim' is 64, expected at most dimension (32)"),
    "prompt-number": (_set(prompts={"query": 1}), "field 'prompts' is {\"query\": 1}, expected an object of strings"),
    "similarity-typo": (_set(similarity="dott"), "field 'similarity' is \"dott\""),
    "default-prompt-unknown": (_set(default_prompt_name="search"), "field 'default_prompt_name' is \"search\""),
    "parity-incomplete": (_set(parity={"probe_texts": 13}), "field 'parity.max_one_minus_cos' is missing"),
    "parity-list": (_set(parity=[1, 2]), "field 'parity' is [1, 2], expected an object"),
    "unknown-field": (_set(colour="blue"), "unknown field 'colour'"),
    "newer-format": (_set(format_version=99), "manifest format 99, newer than this evalfast reads"),
    "missing-field": (_drop("pooling"), "field 'pooling' is missing"),
    "list": ("[1, 2, 3]", "not a JSON object"),
    "null": ("null", "not a JSON object"),
    "invalid-json": ('{"source": "x",', "not valid JSON"),
}


@pytest.mark.parametrize("change, fragment", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_manifest_names_file_field_and_fix(export_copy, change, fragment):
    path = _rewrite_manifest(export_copy, change)
    with pytest.raises(ModelError) as err:
        read_manifest(export_copy)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and fragment in message, message
    assert f"-o {export_copy} --overwrite`" in message and "\n" not in message


def test_damaged_manifest_is_one_line_from_the_cli(export_copy, tmp_path):
    path = _rewrite_manifest(export_copy, _set(dimension="384"))
    texts = write_file(tmp_path / "texts.txt", "a haunted lighthouse\n")
    result = invoke("embed", "-m", export_copy, "-i", texts, "-o", tmp_path / "v.npy", "--no-cache")
    assert_user_error(result, str(path), "'dimension'", "--overwrite")
    assert not (tmp_path / "v.npy").exists()


def _refuse_to_export(*_args, **_kwargs):
    raise AssertionError("the export ran")


def test_opset_range_is_optimums_default_or_14_to_what_torch_and_onnx_write(tiny_model):
    from optimum.exporters.onnx.model_configs import SentenceTransformersTransformerOnnxConfig
    from torch.onnx import _constants as torch_onnx

    lowest, highest = export_module._opset_range(_loaded(tiny_model))
    assert lowest == min(SentenceTransformersTransformerOnnxConfig.DEFAULT_ONNX_OPSET, 14)
    assert highest == min(onnx.defs.onnx_opset_version(), torch_onnx.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)


@pytest.mark.parametrize("pick", [lambda lowest, highest: 1, lambda lowest, highest: lowest - 1,
                                  lambda lowest, highest: highest + 1, lambda lowest, highest: 99],
                         ids=["1", "below", "above", "99"])
def test_opset_outside_the_supported_range_is_refused_before_exporting(tiny_model, tmp_path, monkeypatch, pick):
    lowest, highest = export_module._opset_range(_loaded(tiny_model))
    opset = pick(lowest, highest)
    monkeypatch.setattr(optimum_convert, "export_pytorch", _refuse_to_export)
    with pytest.raises(EvalfastError, match=rf"--opset {opset}: st can be exported at opsets {lowest} to {highest} "):
        export_model(str(tiny_model), tmp_path / "out", opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_opsets_at_both_ends_of_the_range_export(tiny_model, tmp_path):
    lowest, highest = export_module._opset_range(_loaded(tiny_model))
    for opset in sorted({lowest, highest}):
        assert export_model(str(tiny_model), tmp_path / str(opset), opset=opset).opset == opset


def test_cli_refuses_opset_1_in_one_line(tiny_model, tmp_path):
    lowest, highest = export_module._opset_range(_loaded(tiny_model))
    assert_user_error(invoke("export", tiny_model, "-o", tmp_path / "out", "--opset", "1"), "--opset 1",
                      f"opsets {lowest} to {highest}")
    assert list(tmp_path.iterdir()) == []


def _loaded(model_folder: Path):
    return export_module._load_sentence_transformer(model_folder, trust_remote_code=False).model


def _fill_the_disk(path: Path) -> None:
    """A write that fills the disk: some bytes reach ``path``, then ENOSPC (naming no file, as a real write)."""
    with open(path, "ab") as handle:
        handle.write(b"\0" * 1000)
    raise OSError(errno.ENOSPC, "No space left on device")


def _save_graph_on_a_full_disk(model_path) -> None:
    _fill_the_disk(Path(model_path))


def _copy_tokenizer_on_a_full_disk(_source, output, *_args, **_kwargs) -> None:
    _fill_the_disk(Path(output) / "tokenizer.json")


@pytest.mark.parametrize("module, write_step, fake", [
    (export_module, "_keep_only_embedding_output", _save_graph_on_a_full_disk),
    (optimum_convert, "maybe_save_preprocessors", _copy_tokenizer_on_a_full_disk),
], ids=["graph", "tokenizer"])
def test_full_disk_is_one_line_naming_the_folder_and_leaves_nothing(tiny_model, tmp_path, monkeypatch, module,
                                                                     write_step, fake):
    monkeypatch.setattr(module, write_step, fake)
    output = tmp_path / "exports" / "tiny"
    line = assert_user_error(invoke("export", tiny_model, "-o", output), f"{output}: cannot write the export",
                             "No space left on device", "free some space")
    assert ".tmp" not in line
    assert list((tmp_path / "exports").iterdir()) == []


def test_full_disk_on_overwrite_keeps_the_old_export(tiny_model, export_copy, monkeypatch):
    before = {p.name: p.read_bytes() for p in export_copy.iterdir()}
    monkeypatch.setattr(export_module, "_keep_only_embedding_output", _save_graph_on_a_full_disk)
    with pytest.raises(ModelError, match="No space left on device"):
        export_model(str(tiny_model), export_copy, overwrite=True)
    assert {p.name: p.read_bytes() for p in export_copy.iterdir()} == before
    assert sorted(p.name for p in export_copy.parent.iterdir()) == ["tiny"]


def test_int8_variant_follows_a_swapped_graph(export_copy, tmp_path):
    ensure_variant(export_copy, "int8")
    old_int8 = Encoder(export_copy, EncoderConfig(precision="int8")).encode(TEXTS).vectors
    other = tmp_path / "other-export"
    export_model(str(make_tiny_model(tmp_path / "other", seed=1)), other)
    shutil.copy(other / MODEL_FILE, export_copy / MODEL_FILE)

    variant = ensure_variant(export_copy, "int8")

    new_fp32 = Encoder(export_copy).encode(TEXTS).vectors
    new_int8 = Encoder(export_copy, EncoderConfig(precision="int8")).encode(TEXTS).vectors
    assert one_minus_cos(new_fp32, new_int8).max() < 0.05  # built from the new graph
    assert one_minus_cos(old_int8, new_int8).min() > 0.05  # not the old variant
    assert variant.parity_vs_fp32.max_one_minus_cos < 0.05


def test_variant_from_before_source_hashes_is_rebuilt(export_copy):
    ensure_variant(export_copy, "int8")
    sidecar = export_copy / "model.int8.json"
    record = json.loads(sidecar.read_text(encoding="utf-8"))
    del record["source_sha256"]
    sidecar.write_text(json.dumps(record), encoding="utf-8")
    built = (export_copy / "model.int8.onnx").stat().st_mtime_ns

    ensure_variant(export_copy, "int8")

    assert (export_copy / "model.int8.onnx").stat().st_mtime_ns != built
    assert "source_sha256" in json.loads(sidecar.read_text(encoding="utf-8"))


def _start_evalfast(logs: Path, *args: object) -> subprocess.Popen:
    """``python -m evalfast ARGS`` in a process of its own, its stdout and stderr going to ``logs``.out and .err
    (files, not pipes: a process blocked on a full pipe could hold a lock the other one waits for)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(logs.with_suffix(".out"), "w") as out, open(logs.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, "-m", "evalfast", *map(str, args)], stdout=out, stderr=err, env=env)


def _finish(run: subprocess.Popen, logs: Path) -> tuple[int, str, str]:
    """The exit status, stdout and stderr of a run of :func:`_start_evalfast`."""
    return run.wait(timeout=300), logs.with_suffix(".out").read_text(), logs.with_suffix(".err").read_text()


def test_two_first_runs_at_once_both_succeed(tiny_model, tmp_path):
    texts = write_file(tmp_path / "texts.txt", "\n".join(TEXTS) + "\n")
    cache = tmp_path / "cache"
    runs = {name: _start_evalfast(tmp_path / name, "embed", "-m", tiny_model, "-i", texts, "-o",
                                  tmp_path / f"{name}.npy", "--cache-dir", cache, "--no-cache", "--precision", "int8")
            for name in ("first", "second")}
    outcomes = [_finish(run, tmp_path / name) for name, run in runs.items()]

    assert [rc for rc, _, _ in outcomes] == [0, 0], outcomes
    np.testing.assert_array_equal(np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy"))
    exports = list((cache / "models").iterdir())
    assert len(exports) == 1 and (exports[0] / "model.int8.onnx").is_file()  # one export, no temporaries


def test_export_and_int8_build_print_none_of_the_tools_chatter(tiny_model, tmp_path):
    texts = write_file(tmp_path / "texts.txt", "\n".join(TEXTS) + "\n")
    run = _start_evalfast(tmp_path / "log", "embed", "-m", tiny_model, "-i", texts, "-o", tmp_path / "v.npy",
                          "--cache-dir", tmp_path / "cache", "--no-cache", "--precision", "int8")
    rc, stdout, stderr = _finish(run, tmp_path / "log")

    assert rc == 0, stderr
    assert (tmp_path / "cache" / "models").is_dir()  # it did export and build the variant
    for noise in NOISE:
        assert noise not in stdout + stderr, (noise, stdout, stderr)


def test_first_use_steps_say_what_they_do_before_and_after(tiny_model, tmp_path):
    cache, messages = tmp_path / "cache", []

    folder = ensure_exported(str(tiny_model), cache, on_status=messages.append)
    ensure_variant(folder, "int8", on_status=messages.append)

    assert len(messages) == 4, messages
    assert messages[0].startswith(f"exporting {tiny_model} to ONNX into {folder} (first use only")
    assert messages[0].endswith(" ...") and messages[1].startswith(f"exported {tiny_model} in ")
    assert messages[2].startswith(f"building the int8 variant of {folder}") and messages[3].endswith(" s")
    ensure_exported(str(tiny_model), cache, on_status=messages.append)
    ensure_variant(folder, "int8", on_status=messages.append)
    assert len(messages) == 4  # done once: nothing to say


def test_a_model_retrained_in_place_is_exported_again(tmp_path):
    model, cache, messages = make_tiny_model(tmp_path / "model", seed=0), tmp_path / "cache", []
    folder = ensure_exported(str(model), cache)
    before = Encoder(folder).encode(TEXTS).vectors

    make_tiny_model(tmp_path / "model", seed=1)  # new weights in the same folder

    assert ensure_exported(str(model), cache, on_status=messages.append) == folder
    assert "(its files changed since the last export)" in messages[0]
    assert one_minus_cos(before, Encoder(folder).encode(TEXTS).vectors).min() > 0.05


def test_a_waiting_run_uses_the_winners_result(tmp_path):
    lock, messages, built, calls = tmp_path / "locks" / "thing.lock", [], threading.Event(), []

    def loser() -> None:
        build_once(lock, built.is_set, lambda: calls.append("loser built"), "building the thing", "built",
                   messages.append)

    with exclusive(lock, "unused"):
        waiting = threading.Thread(target=loser)
        waiting.start()
        for _ in range(100):
            if messages:
                break
            time.sleep(0.05)
        built.set()  # the winner finishes while holding the lock
    waiting.join(timeout=10)

    assert messages == ["waiting for another evalfast process that is building the thing ..."]
    assert calls == []
