"""Throughput and accuracy of evalfast's encoders against sentence-transformers, in one process.

Every contender (each evalfast device x precision, and the sentence-transformers peers) embeds the same
texts in interleaved, repeated rounds, so a noisy machine slows all of them alike; ratios are taken within
a round. Accuracy is measured against sentence-transformers fp32 on the same device: 1-cos of the vectors
and, with a golden set, the change in nDCG@10.

A :class:`Budget` bounds the run: once it is spent, the contenders and rounds left are skipped and their rows
say so; ``on_update`` is called after each contender and round, so a caller can keep what was measured. Peers
that would not run natively here (bf16 autocast on a CPU without bf16 instructions is emulated, several times
slower than fp32) are left out with a note rather than timed.
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from evalfast.data.golden import GoldenSet
from evalfast.errors import EvalfastError
from evalfast.evaluate import EvalConfig, score_vectors
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.export import resolve_source
from evalfast.model.once import quiet_tools
from evalfast.model.parity import one_minus_cos
from evalfast.model.precision import PRECISIONS
from evalfast.model.variants import ensure_variant

REFERENCE = "sentence-transformers fp32"
BF16_PEER = "sentence-transformers bf16 autocast"
CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 flags, and the aarch64 feature
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
    rounds: list[int] = field(default_factory=list)  # the rounds (from 0) in which it was timed, one per seconds
    note: str = ""  # why it was not timed in every round


@dataclass
class Budget:
    """A time limit for the whole run, counted from its creation on ``clock``."""

    seconds: float
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.started = self.clock()

    def allows(self, expected_seconds: float = 0.0) -> bool:
        """Whether a step expected to take ``expected_seconds`` still ends within the budget."""
        return self.clock() + expected_seconds <= self.started + self.seconds

    def describe(self) -> str:
        """ "15m" or "90s". """
        minutes, seconds = divmod(self.seconds, 60)
        return f"{minutes:g}m" if minutes and not seconds else f"{self.seconds:g}s"


def _evalfast_contender(folder, device: str, precision: str) -> Contender:
    ensure_variant(folder, precision)
    encoder = Encoder(folder, EncoderConfig.for_device(device, precision))
    return Contender(f"evalfast {precision}", device, lambda texts: encoder.encode(texts).vectors)


def cpu_has_bf16(cpuinfo: Path | None = None) -> bool | None:
    """Whether the CPU has bf16 instructions (by the flags in ``cpuinfo``, /proc/cpuinfo by default); None when
    that cannot be read."""
    try:
        text = (cpuinfo or CPUINFO).read_text(errors="replace")
    except OSError:
        return None
    flags = {flag for line in text.splitlines() if line.split(":", 1)[0].strip() in ("flags", "Features")
             for flag in line.split(":", 1)[-1].split()}
    return bool(flags & set(BF16_FLAGS))


def _st_contenders(source: str, device: str, notes: list[str]) -> list[Contender]:
    """sentence-transformers fp32, its reduced-precision mode (bf16 autocast on CPU, fp16 on CUDA) and, on CPU,
    its own ONNX backend; a peer that would not run natively here is left out, with a line in ``notes``."""
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

        if cpu_has_bf16() is False:
            notes.append(f"{BF16_PEER} not run: this CPU has no bf16 instructions ({' or '.join(BF16_FLAGS[:2])} in "
                         f"{CPUINFO}), so torch would emulate bf16, several times slower than fp32; that measures "
                         "the emulation, not the peer")
        else:
            contenders.append(Contender(BF16_PEER, device, bf16, on_torch=True))
        with quiet_tools():  # its export's TracerWarnings are the peer's own chatter, not a finding
            onnx_model = SentenceTransformer(source, device="cpu", backend="onnx")
        contenders.append(Contender("sentence-transformers onnx backend", device,
                                    lambda texts: onnx_model.encode(texts, batch_size=ST_BATCH, convert_to_numpy=True)))
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
    from evalfast.model.manifest import read_manifest

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

    from evalfast.search.distributed import RayEngine

    encoder = Encoder(folder, EncoderConfig.for_device(device, precision))

    def encode(texts):
        scratch = Path(tempfile.mkdtemp(prefix="evalfast-bench-shards-"))
        try:
            return RayEngine(encoder, scratch, actors).embed(texts).vectors.dense()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return Contender(f"evalfast {precision} on ray ({actors} actors)", device, encode)


def contenders_for(folder, devices: Sequence[str], precisions: Sequence[str], against_st: bool,
                   ray_actors: int | None = None) -> tuple[list[Contender], list[str]]:
    """Every runnable (device, precision) of evalfast (and on Ray, with ``ray_actors``), then the peers; and a
    note for each peer left out."""
    contenders, notes = [], []
    for device in devices:
        runnable = [p for p in precisions if device in PRECISIONS[p].devices]
        if not runnable:
            raise EvalfastError(f"--precision {','.join(precisions)}: none runs on {device}")
        contenders += [_evalfast_contender(folder, device, p) for p in runnable]
        if ray_actors:
            contenders += [_ray_contender(folder, device, p, ray_actors) for p in runnable]
        if against_st:
            contenders += _st_contenders(source_model(folder), device, notes)
    return contenders, notes


@dataclass(frozen=True)
class BenchConfig:
    """What ``evalfast bench`` measures: evalfast's devices and precisions, sentence-transformers' configurations
    as peers, the timed rounds and the time limit of the whole bench."""

    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32", "int8")
    peers: bool = True
    repeats: int = 3
    budget_seconds: float = 15 * 60
    ray_actors: int | None = None  # also through this many Ray actors (inside a Ray session)


SCHEMA_VERSION = 2  # of the bench document


def run_bench(folder: Path, texts: list[str], config: BenchConfig, golden: GoldenSet | None = None,
              golden_path: str | None = None, command: str = "", on_step: Callable[[str, int], None] | None = None,
              on_save: Callable[[dict], None] | None = None) -> dict:
    """Benchmark the export ``folder`` on ``texts`` (and, with ``golden``, the change in nDCG@10): the bench
    document (``schema_version``, machine, rows, notes, ``status``).

    ``on_step(label, steps)`` starts each of the bench's ``steps`` (each contender's warm-up, then its rounds).
    ``on_save(document)`` follows each contender and round, with ``status`` "running", then once more with the
    outcome ("complete", "stopped by the time budget", "interrupted" or "failed (...)"; an interrupt or an error
    is raised again once saved), so a caller that writes it keeps what was measured.
    """
    contenders, notes = contenders_for(folder, config.devices, config.precisions, config.peers, config.ray_actors)
    n_tokens = Encoder(folder).token_stats(texts)[0]
    budget = Budget(config.budget_seconds)
    document = {"schema_version": SCHEMA_VERSION, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": command, "machine": machine(), "model": str(folder), "n_texts": len(texts),
                "mean_tokens": n_tokens / len(texts), "repeats": config.repeats, "golden": golden_path,
                "budget": budget.describe(), "status": "running", "notes": notes, "rows": []}
    measured: list[Row] = []

    def save(rows: list[Row], status: str = "running") -> None:
        measured[:] = rows
        document.update(status=status, rows=summary_rows(rows, len(texts), n_tokens))
        if on_save:
            on_save(document)

    steps = len(contenders) * (config.repeats + 1)
    try:
        rows = measure(contenders, texts, golden, config.repeats, on_step and (lambda label: on_step(label, steps)),
                       budget, save)
    except KeyboardInterrupt:
        save(measured, "interrupted")
        raise
    except Exception as err:
        save(measured, f"failed ({type(err).__name__}: {err})")
        raise
    skipped = sum(config.repeats - len(row.seconds) for row in rows)
    if skipped:
        notes.append(f"the time budget ({budget.describe()}) ran out: {skipped} of {config.repeats * len(rows)} timed "
                     "runs skipped; give a larger --budget, or a smaller --n or --repeats")
    save(rows, "stopped by the time budget" if skipped else "complete")
    return document


def measure(contenders: list[Contender], texts: list[str], golden: GoldenSet | None, repeats: int,
            on_step: Callable[[str], None] | None = None, budget: Budget | None = None,
            on_update: Callable[[list[Row]], None] | None = None) -> list[Row]:
    """Warm up, measure accuracy, then time ``repeats`` interleaved rounds (order rotated each round).

    With ``budget``, a contender is not started once the budget is spent, and a timing is skipped when its
    expected length (its last round, or its accuracy pass scaled to the texts) would overrun it; the rows'
    notes say what was skipped. ``on_update(rows)`` follows each contender's pass and each timing."""
    rows = {c.name + c.device: Row(c.name, c.device) for c in contenders}
    accuracy_texts = golden.doc_texts + golden.query_texts if golden else texts[:1000]
    vectors, expected = {}, {}
    for contender in contenders:
        key, label = contender.name + contender.device, f"{contender.name} ({contender.device})"
        if budget and not budget.allows():
            rows[key].note = f"not run: the time budget ({budget.describe()}) was spent before its turn"
            _step(on_step, f"{label}: skipped (time budget)")
            continue
        _step(on_step, f"{label}: warm-up and accuracy")
        contender.encode(texts[:64])
        start = time.perf_counter()
        vectors[key] = contender.encode(accuracy_texts)
        expected[key] = (time.perf_counter() - start) * len(texts) / len(accuracy_texts)
        for done in (vectors if contender.name == REFERENCE else [key]):  # each needs its device's reference
            _accuracy(rows[done], vectors, golden)
        _update(on_update, rows)

    ran = [c for c in contenders if c.name + c.device in vectors]
    for round_no in range(repeats):
        order = ran[round_no % len(ran):] + ran[: round_no % len(ran)] if ran else []
        for contender in order:
            key, label = contender.name + contender.device, f"{contender.name} ({contender.device})"
            row = rows[key]
            if budget and not budget.allows(row.seconds[-1] if row.seconds else expected[key]):
                _step(on_step, f"round {round_no + 1}/{repeats}: {label} skipped (time budget)")
                continue
            _step(on_step, f"round {round_no + 1}/{repeats}: {label}")
            _reset_peak_rss()
            with _gpu_peak(row, contender.on_torch):
                start = time.perf_counter()
                contender.encode(texts)
                row.seconds.append(time.perf_counter() - start)
            row.rounds.append(round_no)
            row.peak_rss_mb = max(row.peak_rss_mb, _peak_rss_mb())
            _update(on_update, rows)
        for row in rows.values():
            reference = rows.get(REFERENCE + row.device)
            if reference and row.rounds[-1:] == reference.rounds[-1:] == [round_no]:
                row.ratios.append(reference.seconds[-1] / row.seconds[-1])
        _update(on_update, rows)
    for row in (rows[key] for key in vectors):
        if budget and len(row.seconds) < repeats:
            row.note = (f"timed in {len(row.seconds)} of {repeats} rounds: the time budget ({budget.describe()}) "
                        "ran out")
    _update(on_update, rows)
    return list(rows.values())


def _step(on_step: Callable[[str], None] | None, label: str) -> None:
    if on_step:
        on_step(label)


def _update(on_update: Callable[[list[Row]], None] | None, rows: dict[str, Row]) -> None:
    if on_update:
        on_update(list(rows.values()))


def _accuracy(row: Row, vectors: dict[str, np.ndarray], golden: GoldenSet | None) -> None:
    reference = vectors.get(REFERENCE + row.device)
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
    """Per contender: medians over the rounds it was timed in, ratio to sentence-transformers fp32 on its device,
    accuracy, and its note; the rates are None for a contender never timed."""
    out = []
    for row in rows:
        median = statistics.median(row.seconds) if row.seconds else None
        out.append({
            "name": row.name, "device": row.device,
            "sentences_per_second": n_texts / median if median else None,
            "tokens_per_second": n_tokens / median if median else None,
            "ratio_median": statistics.median(row.ratios) if row.ratios else None,
            "ratio_min": min(row.ratios, default=None), "ratio_max": max(row.ratios, default=None),
            "seconds": row.seconds, "rounds": row.rounds, "peak_rss_mb": row.peak_rss_mb or None,
            "peak_gpu_mb": row.peak_gpu_mb, "max_one_minus_cos": row.max_one_minus_cos,
            "mean_one_minus_cos": row.mean_one_minus_cos, "ndcg10_delta": row.ndcg10_delta, "note": row.note,
        })
    return out
