"""Text to unit vectors with a Hugging Face tokenizer and onnxruntime, in length-sorted, token-budgeted batches."""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import numpy as np

from .conventions import resolve_prompt
from .errors import EvalfastError, ModelError
from .manifest import OUTPUT_NAME, TOKENIZER_FILE, Manifest, read_manifest, remembered_sha256
from .precision import check_precision, variant_file
from .sessions import onnx_session

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class EncoderConfig:
    """Where the encoder runs, how it batches, and the model conventions a user may override."""

    device: str = "cpu"
    precision: str = "fp32"  # see evalfast.precision.PRECISIONS
    query_prompt: str | None = None  # prompt name or text for queries; None: the model's (as encode_query)
    document_prompt: str | None = None  # likewise for documents (as encode_document)
    prompt: str | None = None  # likewise for plain texts (as encode)
    dim: int | None = None  # keep the first dim components (Matryoshka); None: the model's truncate_dim, else all
    max_seq_length: int | None = None  # truncate at this many tokens; None: the model's max_seq_length
    token_budget: int = 2048  # padded tokens per batch (rows x longest row)
    max_batch: int = 64  # rows per batch, whatever the budget allows
    chunk: int = 8192  # texts tokenised, sorted and packed together
    threads: int | None = None  # onnxruntime intra-op threads; None = one per CPU core
    tokenizer_threads: int = 1  # chunks tokenised at once in this process, ahead of the model
    tokenizer_processes: int = 0  # > 0: tokenise in this many worker processes instead (past the GIL)
    runners: int = 1  # batches run at once: on a GPU one batch's host work overlaps another's kernels

    @classmethod
    def for_device(cls, device: str, precision: str = "fp32") -> EncoderConfig:
        """Batching that suits the device: small batches keep a CPU's caches warm, a GPU wants large ones
        and more tokenising than one thread does."""
        if device == "cuda":
            return cls(device, precision, token_budget=65536, max_batch=1024, chunk=16384,
                       tokenizer_processes=min(4, os.cpu_count() or 1), runners=2)
        return cls(device, precision)


@dataclass(frozen=True)
class Batch:
    """Padded model inputs for some of a chunk's texts."""

    rows: np.ndarray  # int64 (b,): positions of the texts within their chunk
    input_ids: np.ndarray  # int64 (b, width), zero past each text's length
    attention_mask: np.ndarray  # int64 (b, width)


@dataclass(frozen=True)
class TokenizedChunk:
    """One chunk of texts, tokenised and packed into batches."""

    start: int  # position of the chunk's first text in the input
    batches: list[Batch]
    n_tokens: int
    n_truncated: int


@dataclass(frozen=True)
class Encoded:
    """Vectors for a list of texts, in input order, with what it took to make them."""

    vectors: np.ndarray  # float32 (n, dim), unit length
    n_tokens: int  # real (unpadded) tokens after truncation
    n_truncated: int  # texts longer than the model's max sequence length
    seconds: float


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


def pack_batches(flat_ids: np.ndarray, lengths: np.ndarray, token_budget: int, max_batch: int) -> list[Batch]:
    """Pack texts' token ids (``flat_ids`` int64, all texts' ids one after another; ``lengths`` int64 (n,)) into
    padded batches planned by :func:`plan_batches`, gathering each batch with array indexing."""
    starts = np.cumsum(lengths) - lengths
    batches = []
    for rows in plan_batches(lengths, token_budget, max_batch):
        row_lengths = lengths[rows]
        columns = np.arange(row_lengths.max())
        mask = columns < row_lengths[:, None]
        input_ids = np.zeros(mask.shape, np.int64)
        input_ids[mask] = flat_ids[(starts[rows][:, None] + columns)[mask]]
        batches.append(Batch(rows, input_ids, mask.astype(np.int64)))
    return batches


def chunk_bounds(n_texts: int, chunk: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks: the first ones small, doubling up to ``chunk``, so the model gets
    its first batch while the bulk is still being tokenised."""
    start, size = 0, max(1, chunk // 16)
    while start < n_texts:
        yield start, min(n_texts, start + size)
        start, size = start + size, min(chunk, size * 2)


def load_tokenizer(path: Path, max_length: int):
    """The model's fast tokenizer with no padding and truncation at ``max_length`` tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def tokenize_flat(tokenizer, texts: Sequence[str], lower: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(all texts' token ids one after another, int64; ids per text, int64 (n,); texts truncated).

    Texts are tokenised as given (lower-cased when ``lower``), as sentence-transformers does: no stripping, since
    SentencePiece and byte-level tokenizers turn whitespace into tokens.
    """
    encodings = tokenizer.encode_batch_fast([t.lower() for t in texts] if lower else list(texts))
    token_ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, token_ids), np.int64, len(token_ids))
    flat_ids = np.fromiter(chain.from_iterable(token_ids), np.int64, int(lengths.sum()))
    return flat_ids, lengths, sum(1 for e in encodings if e.overflowing)


_WORKER: dict = {}  # a tokenising worker process's tokenizer, set once by _start_worker


def _start_worker(tokenizer_file: Path, max_length: int, lower: bool, rayon_threads: int) -> None:
    os.environ["RAYON_NUM_THREADS"] = str(rayon_threads)  # the workers share the cores
    _WORKER.update(tokenizer=load_tokenizer(tokenizer_file, max_length), lower=lower)


def _tokenize_in_worker(texts: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    return tokenize_flat(_WORKER["tokenizer"], texts, _WORKER["lower"])


class Encoder:
    """An exported model ready to embed text, with its conventions applied.

    ``encode`` embeds texts as given; :meth:`prompted` prepends the query, document or plain prompt first (the
    model's own, or the config's choice). Vectors are the graph's output cut to ``config.dim`` components and,
    where the model's similarity is cosine, scaled to unit length, so that the inner product of two vectors is
    always the model's similarity.

    Example::

        encoder = Encoder("export/all-MiniLM-L6-v2")
        vectors = encoder.encode(encoder.prompted(["a haunted lighthouse"], "query")).vectors  # (1, 384) float32
    """

    def __init__(self, folder: str | Path, config: EncoderConfig = EncoderConfig()):
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
        self.dimension = _checked_dim(self.manifest.truncate_dim if config.dim is None else config.dim,
                                      self.manifest.dimension)
        self.max_seq_length = _checked_max_seq_length(config.max_seq_length, self.manifest)
        self.normalizes = self.manifest.similarity == "cosine" and (
            not self.manifest.normalize or self.dimension < self.manifest.dimension)  # else the graph's are final
        self.prompts = {role: resolve_prompt(self.manifest, role, choice) for role, choice in
                        (("query", config.query_prompt), ("document", config.document_prompt), ("plain", config.prompt))}
        self.tokenizer = load_tokenizer(self.folder / TOKENIZER_FILE, self.max_seq_length)
        self._workers: ProcessPoolExecutor | None = None  # started on first use, kept for later calls
        self.session = onnx_session(self.model_path, config.device, config.threads)
        # of the bytes that run, not the manifest's record: a graph replaced in place never reuses stale vectors
        self.graph_sha256 = remembered_sha256(self.model_path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if OUTPUT_NAME not in outputs:
            raise ModelError(
                f"{self.model_path}: no {OUTPUT_NAME!r} output (has {', '.join(outputs)}); "
                "export the model with `evalfast export`"
            )

    @property
    def fingerprint(self) -> str:
        """Identifies what this encoder computes from a text: graph and weights, tokenizer, truncation, dimension
        and normalisation. Prompts are part of the texts themselves (see :meth:`prompted`)."""
        digest = hashlib.sha256(self.graph_sha256.encode())
        digest.update((self.folder / TOKENIZER_FILE).read_bytes())
        digest.update(f"{self.max_seq_length}:{self.manifest.do_lower_case}:{self.dimension}:{self.normalizes}".encode())
        return digest.hexdigest()[:32]

    def prompted(self, texts: Sequence[str], role: str) -> list[str]:
        """``texts`` with the ``role`` prompt ("query", "document" or "plain") prepended, as sentence-transformers
        prepends it."""
        prompt = self.prompts[role]
        return [prompt + text for text in texts] if prompt else list(texts)

    def _tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
        return tokenize_flat(self.tokenizer, texts, self.manifest.do_lower_case)

    def token_stats(self, texts: Sequence[str]) -> tuple[int, int]:
        """(tokens after truncation, texts truncated) for ``texts``, without running the model."""
        n_tokens = n_truncated = 0
        for start, stop in chunk_bounds(len(texts), self.config.chunk):
            _, lengths, truncated = self._tokenize(texts[start:stop])
            n_tokens, n_truncated = n_tokens + int(lengths.sum()), n_truncated + truncated
        return n_tokens, n_truncated

    def _worker_pool(self) -> ProcessPoolExecutor:
        """The tokenising worker processes (spawned, so they share nothing with onnxruntime's threads)."""
        if self._workers is None:
            processes = self.config.tokenizer_processes
            self._workers = ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                initargs=(self.folder / TOKENIZER_FILE, self.max_seq_length, self.manifest.do_lower_case,
                          max(1, (os.cpu_count() or 1) // processes)))
            weakref.finalize(self, self._workers.shutdown, wait=False, cancel_futures=True)
        return self._workers

    def _tokenized_chunks(self, texts: Sequence[str], pool) -> Iterator[TokenizedChunk]:
        """Chunks in input order, packed into batches, with as many more being tokenised meanwhile as ``pool``
        has workers (plus one queued)."""
        if self.config.tokenizer_processes:
            tokenize, ahead = _tokenize_in_worker, self.config.tokenizer_processes + 1
        else:
            tokenize, ahead = self._tokenize, self.config.tokenizer_threads + 1
        bounds = chunk_bounds(len(texts), self.config.chunk)
        pending = deque((start, pool.submit(tokenize, list(texts[start:stop]))) for start, stop in islice(bounds, ahead))
        while pending:
            start, future = pending.popleft()
            following = next(bounds, None)
            if following is not None:
                pending.append((following[0], pool.submit(tokenize, list(texts[following[0] : following[1]]))))
            flat_ids, lengths, n_truncated = future.result()
            batches = pack_batches(flat_ids, lengths, self.config.token_budget, self.config.max_batch)
            yield TokenizedChunk(start, batches, int(lengths.sum()), n_truncated)

    def _run_into(self, vectors: np.ndarray, start: int, batch: Batch) -> int:
        """Run the model on one batch and write its vectors into ``vectors``; returns the batch's row count."""
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        (batch_vectors,) = self.session.run([OUTPUT_NAME], feeds)
        vectors[start + batch.rows] = self._finish(batch_vectors)
        return len(batch.rows)

    def _finish(self, graph_vectors: np.ndarray) -> np.ndarray:
        """The graph's (b, manifest.dimension) output as this encoder's (b, dimension) vectors."""
        vectors = graph_vectors[:, : self.dimension]
        if self.normalizes:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def encode_one(self, text: str) -> np.ndarray:
        """One text's unit vector (float32 (dim,)): the latency path, no chunks, threads or padding."""
        flat_ids, _, _ = self._tokenize([text])
        batch = Batch(np.zeros(1, np.int64), flat_ids[None, :], np.ones((1, len(flat_ids)), np.int64))
        vector = np.empty((1, self.dimension), np.float32)
        self._run_into(vector, 0, batch)
        return vector[0]

    def encode(self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None) -> Encoded:
        """Embed ``texts`` in input order. ``on_progress(n)`` is called as each batch of n texts finishes.

        Chunks are tokenised ahead, on ``tokenizer_threads`` threads or ``tokenizer_processes`` worker processes,
        and their batches run on ``runners`` threads (the tokenizer and onnxruntime release the GIL), so the
        model does not wait for tokenisation and, on a GPU, one batch's host work overlaps another's kernels.
        """
        clock = time.perf_counter()
        vectors = np.empty((len(texts), self.dimension), np.float32)
        n_tokens = n_truncated = 0
        tokenizing = (contextlib.nullcontext(self._worker_pool()) if self.config.tokenizer_processes
                      else ThreadPoolExecutor(self.config.tokenizer_threads))
        with tokenizing as tokenizing, ThreadPoolExecutor(self.config.runners) as running:
            in_flight: list = []
            for chunk in self._tokenized_chunks(texts, tokenizing):
                n_tokens, n_truncated = n_tokens + chunk.n_tokens, n_truncated + chunk.n_truncated
                previous, in_flight = in_flight, [running.submit(self._run_into, vectors, chunk.start, batch)
                                                  for batch in chunk.batches]
                _wait(previous, on_progress)
            _wait(in_flight, on_progress)
        return Encoded(vectors, n_tokens, n_truncated, time.perf_counter() - clock)


def _checked_dim(dim: int | None, full: int) -> int:
    if dim is None:
        return full
    if not 1 <= dim <= full:
        raise EvalfastError(f"--dim {dim}: the model's vectors have {full} components; give 1 to {full}")
    return dim


def _checked_max_seq_length(max_seq_length: int | None, manifest: Manifest) -> int:
    if max_seq_length is None:
        return manifest.max_seq_length
    limit = manifest.max_positions or manifest.max_seq_length
    if not 1 <= max_seq_length <= limit:
        raise EvalfastError(f"--max-seq-length {max_seq_length}: the model takes 1 to {limit} tokens "
                            f"(its default is {manifest.max_seq_length})")
    return max_seq_length


def _wait(futures: list, on_progress: Callable[[int], None] | None) -> None:
    for future in futures:
        done = future.result()
        if on_progress:
            on_progress(done)
