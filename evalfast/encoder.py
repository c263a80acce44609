"""Text to unit vectors with a Hugging Face tokenizer and onnxruntime, in length-sorted, token-budgeted batches."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from .errors import EvalfastError, ModelError
from .manifest import OUTPUT_NAME, TOKENIZER_FILE, Manifest, file_sha256, read_manifest
from .precision import check_precision, variant_file

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class EncoderConfig:
    """How the encoder batches and where it runs."""

    device: str = "cpu"
    precision: str = "fp32"  # see evalfast.precision.PRECISIONS
    token_budget: int = 2048  # padded tokens per batch (rows x longest row)
    max_batch: int = 64  # rows per batch, whatever the budget allows
    chunk: int = 8192  # texts tokenised and sorted together (the next chunk is tokenised meanwhile)
    threads: int | None = None  # onnxruntime intra-op threads; None = one per CPU core

    @classmethod
    def for_device(cls, device: str, precision: str = "fp32") -> EncoderConfig:
        """Batching that suits the device: small batches keep a CPU's caches warm, a GPU wants large ones."""
        if device == "cuda":
            return cls(device, precision, token_budget=65536, max_batch=1024, chunk=32768)
        return cls(device, precision)


@dataclass(frozen=True)
class Encoded:
    """Vectors for a list of texts, in input order, with what it took to make them."""

    vectors: np.ndarray  # float32 (n, dim), unit length
    n_tokens: int  # real (unpadded) tokens after truncation
    n_truncated: int  # texts longer than the model's max sequence length
    seconds: float


def _session(model_path: Path, config: EncoderConfig):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise EvalfastError(
            "onnxruntime is not installed; `pip install evalfast[cpu]` (or evalfast[gpu] for CUDA, never both)"
        ) from err
    providers = ["CPUExecutionProvider"]
    if config.device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EvalfastError(
                "--device cuda: this onnxruntime has no CUDA provider; uninstall onnxruntime and "
                "`pip install evalfast[gpu]` on a machine with an NVIDIA GPU"
            )
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = config.threads or os.cpu_count() or 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own untyped errors for unreadable models
        raise ModelError(f"{model_path}: onnxruntime cannot load this model ({err}); re-export it") from err


def plan_batches(lengths: np.ndarray, token_budget: int, max_batch: int) -> list[np.ndarray]:
    """Group positions of ``lengths`` (int, (n,)) into batches of similar length.

    Positions are sorted by length; each batch takes as many rows as fit ``rows x longest <= token_budget``
    (at least one, at most ``max_batch``). Returns index arrays into ``lengths``.
    """
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    batches, start = [], 0
    while start < len(order):
        widths = sorted_lengths[start : start + max_batch]
        # rows x width grows with the row count, so the rows that fit form a prefix
        fits = np.arange(1, len(widths) + 1) * widths <= token_budget
        stop = start + max(1, int(fits.sum()))
        batches.append(order[start:stop])
        start = stop
    return batches


class Encoder:
    """An exported model ready to embed text.

    Example::

        encoder = Encoder("export/all-MiniLM-L6-v2")
        vectors = encoder.encode(["a haunted lighthouse", "a cozy mystery"]).vectors  # (2, 384) float32
    """

    def __init__(self, folder: str | Path, config: EncoderConfig = EncoderConfig()):
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.config = config
        self.manifest: Manifest = read_manifest(self.folder)
        if config.device not in DEVICES:
            raise EvalfastError(f"--device {config.device!r} is not one of {', '.join(DEVICES)}")
        check_precision(config.precision, config.device)
        self.model_path = variant_file(self.folder, config.precision)
        if not self.model_path.is_file():
            raise ModelError(f"{self.folder}: no {config.precision} variant ({self.model_path.name}); build it with "
                             "evalfast.precision.ensure_variant (the CLI does so on first use)")
        self.tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.manifest.max_seq_length)
        self.session = _session(self.model_path, config)
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if OUTPUT_NAME not in outputs:
            raise ModelError(
                f"{self.model_path}: no {OUTPUT_NAME!r} output (has {', '.join(outputs)}); "
                "export the model with `evalfast export`"
            )

    @property
    def fingerprint(self) -> str:
        """Identifies what this encoder computes: graph and weights, tokenizer and truncation."""
        graph_sha = self.manifest.sha256 if self.config.precision == "fp32" else file_sha256(self.model_path)
        digest = hashlib.sha256(graph_sha.encode())
        digest.update((self.folder / TOKENIZER_FILE).read_bytes())
        digest.update(f"{self.manifest.max_seq_length}:{self.manifest.do_lower_case}".encode())
        return digest.hexdigest()[:32]

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        # sentence-transformers strips each text (and lower-cases it when the model says so)
        stripped = [str(t).strip() for t in texts]
        return [t.lower() for t in stripped] if self.manifest.do_lower_case else stripped

    def _run_batch(self, encodings: list, lengths: np.ndarray) -> np.ndarray:
        """Pad one batch (lengths int64 (b,)) into id and mask matrices and run the model: float32 (b, dim)."""
        mask = np.arange(lengths.max()) < lengths[:, None]
        ids = np.zeros(mask.shape, np.int64)
        ids[mask] = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int64, int(lengths.sum()))
        feeds = {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": np.zeros_like(ids)}
        (vectors,) = self.session.run([OUTPUT_NAME], {name: feeds[name] for name in self.input_names})
        return vectors

    def _tokenize(self, texts: Sequence[str]) -> tuple[list, np.ndarray, int]:
        """Encodings, their lengths (int64 (n,)) and how many texts were truncated."""
        encodings = self.tokenizer.encode_batch(self._prepare(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        return encodings, lengths, sum(1 for e in encodings if e.overflowing)

    def token_stats(self, texts: Sequence[str]) -> tuple[int, int]:
        """(tokens after truncation, texts truncated) for ``texts``, without running the model."""
        n_tokens = n_truncated = 0
        for begin in range(0, len(texts), self.config.chunk):
            _, lengths, truncated = self._tokenize(texts[begin : begin + self.config.chunk])
            n_tokens, n_truncated = n_tokens + int(lengths.sum()), n_truncated + truncated
        return n_tokens, n_truncated

    def _tokenized_chunks(self, texts: Sequence[str], pool: ThreadPoolExecutor) -> Iterator[tuple]:
        """Yield (start, encodings, lengths, n_truncated) per chunk, tokenising the next chunk meanwhile."""
        size = self.config.chunk
        starts = range(0, len(texts), size)
        pending = pool.submit(self._tokenize, texts[:size])
        for start, following in zip(starts, [*starts[1:], None]):
            encodings, lengths, truncated = pending.result()
            if following is not None:
                pending = pool.submit(self._tokenize, texts[following : following + size])
            yield start, encodings, lengths, truncated

    def encode(self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None) -> Encoded:
        """Embed ``texts`` in input order. ``on_progress(n)`` is called after each batch of n texts.

        Texts are tokenised a chunk ahead on a worker thread (the tokenizer and onnxruntime both release
        the GIL), so the model does not wait for tokenisation.
        """
        clock = time.perf_counter()
        vectors = np.empty((len(texts), self.manifest.dimension), np.float32)
        n_tokens = n_truncated = 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            for start, encodings, lengths, truncated in self._tokenized_chunks(texts, pool):
                n_tokens, n_truncated = n_tokens + int(lengths.sum()), n_truncated + truncated
                for batch in plan_batches(lengths, self.config.token_budget, self.config.max_batch):
                    vectors[start + batch] = self._run_batch([encodings[row] for row in batch], lengths[batch])
                    if on_progress:
                        on_progress(len(batch))
        return Encoded(vectors, n_tokens, n_truncated, time.perf_counter() - clock)
