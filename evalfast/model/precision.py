"""The precisions a model runs at (the exact fp32 graph, a dynamic int8 graph for CPUs, an fp16 graph for GPUs),
which devices each suits, and where each one's graph lies in an export folder (evalfast.model.variants builds them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalfast.errors import EvalfastError

if TYPE_CHECKING:
    from evalfast.model.manifest import Parity


@dataclass(frozen=True)
class Precision:
    """A way to run the model: which devices it suits and what it trades."""

    name: str
    devices: tuple[str, ...]
    summary: str


PRECISIONS = {
    "fp32": Precision("fp32", ("cpu", "cuda"), "the exported graph as is: exact (1-cos ~1e-12 against PyTorch)"),
    "int8": Precision("int8", ("cpu",), "fused graph, int8 weights per channel, activations quantised on the fly"),
    "fp16": Precision("fp16", ("cuda",), "fused graph with fused attention in fp16; fp32 inputs and output"),
}


@dataclass(frozen=True)
class Variant:
    """A built precision variant: its graph file and how far it is from fp32."""

    precision: str
    path: Path
    sha256: str
    parity_vs_fp32: Parity | None  # None for fp32 itself


def check_precision(precision: str, device: str) -> Precision:
    """The registry entry for ``precision``; an error if unknown or not runnable on ``device``."""
    if precision not in PRECISIONS:
        raise EvalfastError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)} (bf16 is not offered: "
                            "onnxruntime's CPU provider has no bf16 kernels for these graphs)")
    entry = PRECISIONS[precision]
    if device not in entry.devices:
        raise EvalfastError(f"--precision {precision} runs on {' or '.join(entry.devices)}, not {device}; "
                            f"on {device} use one of {', '.join(p for p, e in PRECISIONS.items() if device in e.devices)}")
    return entry


def variant_file(folder: Path, precision: str) -> Path:
    """The graph file of ``precision`` in the export folder ``folder``."""
    from evalfast.model.manifest import MODEL_FILE  # deferred: the command line imports this module for its names

    return Path(folder) / (MODEL_FILE if precision == "fp32" else f"model.{precision}.onnx")
