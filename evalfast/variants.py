"""Building the precision variants of an export (see evalfast.precision): each is derived from the export's
``model.onnx`` once, written atomically beside it as ``model.<precision>.onnx`` with a sidecar
``model.<precision>.json`` (sha256 and agreement with fp32 on the probe texts), and reused afterwards."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

from .atomic import atomic_path, write_text
from .encoder import Encoder, EncoderConfig
from .errors import ModelError
from .manifest import MODEL_FILE, Parity, file_sha256, read_manifest
from .parity import PROBE_TEXTS, parity
from .precision import PRECISIONS, Variant, variant_file


def _sidecar(folder: Path, precision: str) -> Path:
    return Path(folder) / f"model.{precision}.json"


def _fused(source: Path, use_gpu: bool):
    """The onnxruntime transformer optimizer's fused graph (attention, layer norm, GELU) of ``source``."""
    from onnxruntime.transformers.optimizer import optimize_model

    logging.disable(logging.WARNING)  # the optimizer logs every fusion it could not apply
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0, use_gpu=use_gpu)
    finally:
        logging.disable(logging.NOTSET)


def _write_int8(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        fused = Path(scratch) / "fused.onnx"
        _fused(source, use_gpu=False).save_model_to_file(str(fused))
        quantize_dynamic(str(fused), str(target), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _write_fp16(source: Path, target: Path) -> None:
    model = _fused(source, use_gpu=True)
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(target))


BUILDERS = {"int8": _write_int8, "fp16": _write_fp16}


def ensure_variant(folder: Path, precision: str) -> Variant:
    """The ``precision`` variant of the export in ``folder``, built (and checked against fp32) on first use."""
    folder = Path(folder)
    if precision == "fp32":
        return Variant("fp32", folder / MODEL_FILE, read_manifest(folder).sha256, None)
    target, sidecar = variant_file(folder, precision), _sidecar(folder, precision)
    if not (target.is_file() and sidecar.is_file()):
        _build(folder, precision)
    raw = json.loads(sidecar.read_text(encoding="utf-8"))
    return Variant(precision, target, raw["sha256"], Parity(**raw["parity_vs_fp32"]))


def _build(folder: Path, precision: str) -> None:
    target = variant_file(folder, precision)
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
        {"sha256": file_sha256(target), "parity_vs_fp32": asdict(parity(exact, approx))}, indent=2) + "\n")
