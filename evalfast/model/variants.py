"""Building the precision variants of an export (see evalfast.model.precision): each is derived from the export's
``model.onnx`` once, written atomically beside it as ``model.<precision>.onnx`` with a sidecar
``model.<precision>.json`` (its sha256, the sha256 of the ``model.onnx`` it was built from, and its agreement with
fp32 on the probe texts), and reused until ``model.onnx`` is replaced by another graph."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from evalfast.atomic import atomic_path, write_text
from evalfast.errors import ModelError
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.manifest import MODEL_FILE, Parity, read_manifest, remembered_sha256
from evalfast.model.once import Status, build_once, quiet_tools
from evalfast.model.parity import PROBE_TEXTS, parity
from evalfast.model.precision import PRECISIONS, Variant, variant_file


def _sidecar(folder: Path, precision: str) -> Path:
    return Path(folder) / f"model.{precision}.json"


def _fused(source: Path, use_gpu: bool):
    """The onnxruntime transformer optimizer's fused graph (attention, layer norm, GELU) of ``source``."""
    from onnxruntime.transformers.optimizer import optimize_model

    with quiet_tools(stdout=True):  # it logs every fusion it could not apply, and prints when shapes are unknown
        return optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0, use_gpu=use_gpu)


def _write_int8(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        fused = Path(scratch) / "fused.onnx"
        _fused(source, use_gpu=False).save_model_to_file(str(fused))
        with quiet_tools():  # "Please consider to run pre-processing before quantization", types it cannot infer
            quantize_dynamic(str(fused), str(target), per_channel=True, weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _write_fp16(source: Path, target: Path) -> None:
    model = _fused(source, use_gpu=True)
    with quiet_tools():
        model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(target))


BUILDERS = {"int8": _write_int8, "fp16": _write_fp16}


def ensure_variant(folder: Path, precision: str, on_status: Status | None = None) -> Variant:
    """The ``precision`` variant of the export in ``folder``, built (and checked against fp32) on first use and
    again whenever ``model.onnx`` is no longer the graph it was built from. Concurrent processes build it once
    (see :func:`evalfast.model.once.build_once`); ``on_status`` gets a line before and after a build."""
    folder = Path(folder)
    read_manifest(folder)  # a damaged export is named as such, not as a missing graph
    if precision == "fp32":
        return Variant("fp32", folder / MODEL_FILE, remembered_sha256(folder / MODEL_FILE), None)
    build_once(folder / f".model.{precision}.lock", lambda: _built(folder, precision) is not None,
               lambda: _build(folder, precision), f"building the {precision} variant of {folder} (first use only)",
               f"built the {precision} variant", on_status)
    record = _built(folder, precision)
    if record is None:  # replaced again while it was being built
        raise ModelError(f"{folder / MODEL_FILE}: changed while its {precision} variant was built; run again")
    return Variant(precision, variant_file(folder, precision), record["sha256"], Parity(**record["parity_vs_fp32"]))


def _built(folder: Path, precision: str) -> dict | None:
    """The sidecar's record of the ``precision`` variant if the variant file is the one it describes and was built
    from the current ``model.onnx``; None if it must be built (again)."""
    target = variant_file(folder, precision)
    try:
        record = json.loads(_sidecar(folder, precision).read_text(encoding="utf-8"))
        fresh = (record["source_sha256"] == remembered_sha256(folder / MODEL_FILE)
                 and record["sha256"] == remembered_sha256(target))
        Parity(**record["parity_vs_fp32"])
    except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable or from before source_sha256
        return None
    return record if fresh else None


def _build(folder: Path, precision: str) -> None:
    target = variant_file(folder, precision)
    source_sha256 = remembered_sha256(folder / MODEL_FILE)
    try:
        with atomic_path(target) as tmp:
            BUILDERS[precision](folder / MODEL_FILE, tmp)
    except (ImportError, OSError, RuntimeError, ValueError) as err:
        raise ModelError(f"{folder}: cannot build the {precision} variant ({err})") from err
    device = PRECISIONS[precision].devices[0]
    texts = list(PROBE_TEXTS)
    exact = Encoder(folder, EncoderConfig(device=device)).encode(texts).vectors
    approx = Encoder(folder, EncoderConfig(device=device, precision=precision)).encode(texts).vectors
    write_text(_sidecar(folder, precision), json.dumps(
        {"sha256": remembered_sha256(target), "source_sha256": source_sha256,
         "parity_vs_fp32": asdict(parity(exact, approx))}, indent=2) + "\n")
