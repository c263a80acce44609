"""The one place an onnxruntime session is made: provider order, CUDA checks, threads, optimisation level."""

from __future__ import annotations

import os
from pathlib import Path

from evalfast.errors import EvalfastError, ModelError


def import_onnxruntime():
    """The onnxruntime module, or an error naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise EvalfastError(
            "onnxruntime is not installed; `pip install evalfast[cpu]` (or evalfast[gpu] for CUDA, never both)"
        ) from err
    return onnxruntime


def require_cuda(ort) -> None:
    """Check that onnxruntime ``ort`` can run on CUDA, and load CUDA and cuDNN from torch or the nvidia-* wheels
    when they are not on the loader's path."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise EvalfastError("--device cuda: this onnxruntime has no CUDA provider; uninstall onnxruntime and "
                            "`pip install evalfast[gpu]` on a machine with an NVIDIA GPU")
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu >= 1.21
        ort.preload_dlls()


def onnx_session(model: Path | bytes, device: str = "cpu", threads: int | None = None):
    """An onnxruntime InferenceSession for ``model`` (a file, or a serialised graph) on ``device`` ("cpu" or
    "cuda"): all graph optimisations, ``threads`` intra-op threads (None: one per core), fp32 without TF32 on CUDA
    (fp32 means fp32), the CPU provider as the fallback for nodes CUDA lacks."""
    ort = import_onnxruntime()
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        require_cuda(ort)
        providers.insert(0, ("CUDAExecutionProvider", {"use_tf32": "0"}))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own untyped errors for unreadable models
        where = "the search graph" if isinstance(model, bytes) else str(model)
        raise ModelError(f"{where}: onnxruntime cannot load this model ({err}); re-export it") from err
