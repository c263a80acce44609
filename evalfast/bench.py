"""Throughput and accuracy of evalfast's encoders against sentence-transformers, in one process.

Every contender (each evalfast device x precision, and the sentence-transformers peers) embeds the same
texts in interleaved, repeated rounds, so a noisy machine slows all of them alike; ratios are taken within
a round. Accuracy is measured against sentence-transformers fp32 on the same device: 1-cos of the vectors
and, with a golden set, the change in nDCG@10.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoder import Encoder, EncoderConfig
from .errors import EvalfastError
from .evaluate import EvalConfig, score_vectors
from .export import resolve_source
from .golden import GoldenSet
from .parity import one_minus_cos
from .precision import PRECISIONS
from .variants import ensure_variant

REFERENCE = "sentence-transformers fp32"
ST_BATCH = 32  # sentence-transformers' default batch size
NDCG_CONFIG = EvalConfig(ks=(10,), metrics=("ndcg",))
VERSIONED = ("evalfast", "numpy", "onnxruntime", "onnxruntime-gpu", "tokenizers", "faiss-cpu", "torch",
             "transformers", "sentence-transformers", "optimum-onnx")


@dataclass(frozen=True)
class Contender:
    """Something that embeds texts: an evalfast encoder or a sentence-transformers peer."""

    name: str
    device: str
    encode: Callable[[list[str]], np.ndarray]  # texts -> float32 (n, dim) unit vectors
    on_torch: bool = False  # its GPU memory is torch's, and so measurable


@dataclass
class Row:
    """One contender's figures."""

    name: str
    device: str
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # reference seconds / own seconds, per round
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None
    max_one_minus_cos: float = float("nan")
    mean_one_minus_cos: float = float("nan")
    ndcg10_delta: float | None = None


def _evalfast_contender(folder, device: str, precision: str) -> Contender:
    ensure_variant(folder, precision)
    encoder = Encoder(folder, EncoderConfig.for_device(device, precision))
    return Contender(f"evalfast {precision}", device, lambda texts: encoder.encode(texts).vectors)


def _st_contenders(source: str, device: str) -> list[Contender]:
    """sentence-transformers fp32, its reduced-precision mode (bf16 autocast on CPU, fp16 on CUDA) and, on CPU,
    its own ONNX backend."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(source, device=device)

    def fp32(texts):
        return model.encode(texts, batch_size=ST_BATCH, convert_to_numpy=True)

    contenders = [Contender(REFERENCE, device, fp32, on_torch=True)]
    if device == "cpu":
        def bf16(texts):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fp32(texts).astype(np.float32)

        onnx_model = SentenceTransformer(source, device="cpu", backend="onnx")
        contenders += [Contender("sentence-transformers bf16 autocast", device, bf16, on_torch=True),
                       Contender("sentence-transformers onnx backend", device,
                                 lambda texts: onnx_model.encode(texts, batch_size=ST_BATCH, convert_to_numpy=True))]
    else:
        half = SentenceTransformer(source, device=device).half()
        contenders.append(Contender("sentence-transformers fp16", device, lambda texts: half.encode(
            texts, batch_size=ST_BATCH, convert_to_numpy=True).astype(np.float32), on_torch=True))
    return contenders


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM, the peak resident set size


def _peak_rss_mb() -> float:
    with contextlib.suppress(OSError):
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def _gpu_peak(row: Row, on_torch: bool):
    """Record torch's peak CUDA allocation for the block. Only torch-backed peers are measured: onnxruntime's
    own arena is not visible to torch, and their rows say so with no figure."""
    try:
        import torch
        tracked = on_torch and row.device == "cuda" and torch.cuda.is_available()
    except ImportError:
        tracked = False
    if tracked:
        torch.cuda.reset_peak_memory_stats()
    yield
    if tracked:
        torch.cuda.synchronize()
        row.peak_gpu_mb = max(row.peak_gpu_mb or 0.0, torch.cuda.max_memory_allocated() / 2**20)


def source_model(folder) -> str:
    """The PyTorch model an export came from, for the sentence-transformers peers."""
    from .manifest import read_manifest

    source = read_manifest(folder).source
    try:
        return str(resolve_source(source))
    except EvalfastError as err:
        raise EvalfastError(f"{folder}: its source model {source!r} is not available ({err}); "
                            "use --against none to benchmark evalfast alone") from err


def _ray_contender(folder, device: str, precision: str, actors: int) -> Contender:
    """evalfast on the Ray cluster started by the caller: sharded embedding by warm actors, into a fresh folder
    each call so every round embeds everything."""
    import shutil
    import tempfile

    from .distributed import RayEngine

    encoder = Encoder(folder, EncoderConfig.for_device(device, precision))

    def encode(texts):
        scratch = Path(tempfile.mkdtemp(prefix="evalfast-bench-shards-"))
        try:
            return RayEngine(encoder, scratch, actors).embed(texts).vectors.dense()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return Contender(f"evalfast {precision} on ray ({actors} actors)", device, encode)


def contenders_for(folder, devices: Sequence[str], precisions: Sequence[str], against_st: bool,
                   ray_actors: int | None = None) -> list[Contender]:
    """Every runnable (device, precision) of evalfast (and on Ray, with ``ray_actors``), then the peers."""
    contenders = []
    for device in devices:
        runnable = [p for p in precisions if device in PRECISIONS[p].devices]
        if not runnable:
            raise EvalfastError(f"--precision {','.join(precisions)}: none runs on {device}")
        contenders += [_evalfast_contender(folder, device, p) for p in runnable]
        if ray_actors:
            contenders += [_ray_contender(folder, device, p, ray_actors) for p in runnable]
        if against_st:
            contenders += _st_contenders(source_model(folder), device)
    return contenders


def run_bench(contenders: list[Contender], texts: list[str], golden: GoldenSet | None, repeats: int,
              on_step: Callable[[str], None] | None = None) -> list[Row]:
    """Warm up, measure accuracy, then time ``repeats`` interleaved rounds (order rotated each round)."""
    rows = {c.name + c.device: Row(c.name, c.device) for c in contenders}
    accuracy_texts = golden.doc_texts + golden.query_texts if golden else texts[:1000]
    vectors = {}
    for contender in contenders:
        if on_step:
            on_step(f"{contender.name} ({contender.device}): warm-up and accuracy")
        contender.encode(texts[:64])
        vectors[contender.name + contender.device] = contender.encode(accuracy_texts)
    for contender in contenders:
        _accuracy(rows[contender.name + contender.device], vectors, contender.device, golden)

    for round_no in range(repeats):
        order = contenders[round_no % len(contenders):] + contenders[: round_no % len(contenders)]
        for contender in order:
            if on_step:
                on_step(f"round {round_no + 1}/{repeats}: {contender.name} ({contender.device})")
            row = rows[contender.name + contender.device]
            _reset_peak_rss()
            with _gpu_peak(row, contender.on_torch):
                start = time.perf_counter()
                contender.encode(texts)
                row.seconds.append(time.perf_counter() - start)
            row.peak_rss_mb = max(row.peak_rss_mb, _peak_rss_mb())
        for row in rows.values():
            reference = rows.get(REFERENCE + row.device)
            if reference:
                row.ratios.append(reference.seconds[-1] / row.seconds[-1])
    return list(rows.values())


def _accuracy(row: Row, vectors: dict[str, np.ndarray], device: str, golden: GoldenSet | None) -> None:
    reference = vectors.get(REFERENCE + device)
    if reference is None:
        return
    own = vectors[row.name + row.device]
    gaps = one_minus_cos(reference, own)
    row.max_one_minus_cos, row.mean_one_minus_cos = float(gaps.max()), float(gaps.mean())
    if golden:
        n_docs = golden.n_docs

        def ndcg(v):
            return score_vectors(golden, v[:n_docs], v[n_docs:], NDCG_CONFIG).metrics["ndcg@10"]

        row.ndcg10_delta = ndcg(own) - ndcg(reference)


def machine() -> dict:
    """CPU model, cores, memory, GPU (when torch sees one) and versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    info = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version()}
    with contextlib.suppress(ImportError):
        import torch
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    versions = {}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    info["versions"] = versions
    return info


def summary_rows(rows: list[Row], n_texts: int, n_tokens: int) -> list[dict]:
    """Per contender: medians over rounds, ratio to sentence-transformers fp32 on its device, accuracy."""
    out = []
    for row in rows:
        median = statistics.median(row.seconds)
        out.append({
            "name": row.name, "device": row.device,
            "sentences_per_second": n_texts / median, "tokens_per_second": n_tokens / median,
            "ratio_median": statistics.median(row.ratios) if row.ratios else None,
            "ratio_min": min(row.ratios, default=None), "ratio_max": max(row.ratios, default=None),
            "seconds": row.seconds, "peak_rss_mb": row.peak_rss_mb, "peak_gpu_mb": row.peak_gpu_mb,
            "max_one_minus_cos": row.max_one_minus_cos, "mean_one_minus_cos": row.mean_one_minus_cos,
            "ndcg10_delta": row.ndcg10_delta,
        })
    return out
