"""Text to unit vectors with a Hugging Face tokenizer and onnxruntime, in length-sorted, token-budgeted batches."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import numpy as np

from evalfast.choices import DEVICES
from evalfast.errors import EvalfastError, ModelError
from evalfast.model.conventions import resolve_prompt
from evalfast.model.manifest import (MANIFEST_NAME, OUTPUT_NAME, TOKENIZER_FILE, Manifest, read_manifest,
                                     remembered_sha256)
from evalfast.model.precision import check_precision, variant_file
from evalfast.model.sessions import onnx_session


@dataclass(frozen=True)
class EncoderConfig:
    """Where the encoder runs, how it batches, and the model conventions a user may override."""

    device: str = "cpu"
    precision: str = "fp32"  # see evalfast.model.precision.PRECISIONS
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
    stop: int  # position after its last text
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
    """The model's fast tokenizer with no padding and truncation at ``max_length`` tokens; a file the tokenizers
    library cannot read is a :class:`ModelError`."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the tokenizers library raises plain Exceptions
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelError(f"{path}: not a readable tokenizer ({reason}); re-export the model with `evalfast export`"
                         ) from err
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
    # Ctrl-C reaches the whole process group: the parent stops the work; a worker stopped mid-task would print a
    # traceback and break the pool for later calls
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
                             "evalfast.model.precision.ensure_variant (the CLI does so on first use)")
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
        width = self._graph_width()
        if width != self.manifest.dimension:
            raise ModelError(f"{self.folder / MANIFEST_NAME}: dimension {self.manifest.dimension}, but "
                             f"{self.model_path.name} outputs {width} components; re-export the model with "
                             "`evalfast export`")

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

    def _tokenized_chunks(self, texts: Sequence[str], pool, bounds: Iterator[tuple[int, int]]
                          ) -> Iterator[TokenizedChunk]:
        """The chunks ``bounds`` in order, packed into batches, with as many more being tokenised meanwhile as
        ``pool`` has workers (plus one queued). Closing the generator cancels those not started."""
        if self.config.tokenizer_processes:
            tokenize, ahead = _tokenize_in_worker, self.config.tokenizer_processes + 1
        else:
            tokenize, ahead = self._tokenize, self.config.tokenizer_threads + 1

        def submit(start: int, stop: int) -> tuple[int, int, Future]:
            return start, stop, pool.submit(tokenize, list(texts[start:stop]))

        pending = deque(submit(start, stop) for start, stop in islice(bounds, ahead))
        try:
            while pending:
                start, stop, future = pending.popleft()
                following = next(bounds, None)
                if following is not None:
                    pending.append(submit(*following))
                flat_ids, lengths, n_truncated = future.result()
                batches = pack_batches(flat_ids, lengths, self.config.token_budget, self.config.max_batch)
                yield TokenizedChunk(start, stop, batches, int(lengths.sum()), n_truncated)
        finally:
            for _, _, future in pending:
                future.cancel()

    def _run_graph(self, batch: Batch) -> np.ndarray:
        """The graph's output for one batch: float32 (b, manifest.dimension)."""
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        (batch_vectors,) = self.session.run([OUTPUT_NAME], feeds)
        return batch_vectors

    def _run_into(self, vectors: np.ndarray, start: int, batch: Batch) -> int:
        """Run the model on one batch and write its vectors into ``vectors``; returns the batch's row count."""
        vectors[start + batch.rows] = self._finish(self._run_graph(batch))
        return len(batch.rows)

    def _one_text_batch(self, text: str) -> Batch:
        flat_ids, _, _ = self._tokenize([text])
        return Batch(np.zeros(1, np.int64), flat_ids[None, :], np.ones((1, len(flat_ids)), np.int64))

    def _graph_width(self) -> int:
        """Components of the graph's output: its static shape, else a probe text's."""
        (output,) = [o for o in self.session.get_outputs() if o.name == OUTPUT_NAME]
        if output.shape and isinstance(output.shape[-1], int):
            return output.shape[-1]
        return self._run_graph(self._one_text_batch("probe")).shape[-1]

    def _finish(self, graph_vectors: np.ndarray) -> np.ndarray:
        """The graph's (b, manifest.dimension) output as this encoder's (b, dimension) vectors."""
        vectors = graph_vectors[:, : self.dimension]
        if self.normalizes:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def encode_one(self, text: str) -> np.ndarray:
        """One text's unit vector (float32 (dim,)): the latency path, no chunks, threads or padding."""
        vector = np.empty((1, self.dimension), np.float32)
        self._run_into(vector, 0, self._one_text_batch(text))
        return vector[0]

    def encode(self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None,
               on_chunk: Callable[[int, np.ndarray], None] | None = None,
               bounds: Iterable[tuple[int, int]] | None = None) -> Encoded:
        """Embed ``texts`` in input order.

        ``on_progress(n)`` is called as each batch of n texts finishes, and ``on_chunk(start, vectors)`` as each
        chunk's batches have all finished, in input order, with the chunk's first position and its vectors (rows
        ``start:start + len(vectors)`` of the result). ``bounds`` are the chunks' (start, stop), consecutive and
        covering the input [default: :func:`chunk_bounds`]: a vector's last bits depend on the texts batched
        with it, so a caller encoding the rest of an interrupted input passes the chunks the whole input had.

        Chunks are tokenised ahead, on ``tokenizer_threads`` threads or ``tokenizer_processes`` worker processes,
        and their batches run on ``runners`` threads (the tokenizer and onnxruntime release the GIL), so the
        model does not wait for tokenisation and, on a GPU, one batch's host work overlaps another's kernels.
        An exception (Ctrl-C included) cancels the queued batches and tokenising; only the running ones finish.
        """
        clock = time.perf_counter()
        vectors = np.empty((len(texts), self.dimension), np.float32)
        n_tokens = n_truncated = 0
        owns_tokenizing = not self.config.tokenizer_processes
        tokenizing = ThreadPoolExecutor(self.config.tokenizer_threads) if owns_tokenizing else self._worker_pool()
        running = ThreadPoolExecutor(self.config.runners)
        bounds = chunk_bounds(len(texts), self.config.chunk) if bounds is None else bounds
        chunks = self._tokenized_chunks(texts, tokenizing, iter(bounds))
        in_flight: list[tuple[TokenizedChunk, list[Future]]] = []
        try:
            for chunk in chunks:
                n_tokens, n_truncated = n_tokens + chunk.n_tokens, n_truncated + chunk.n_truncated
                in_flight.append((chunk, [running.submit(self._run_into, vectors, chunk.start, batch)
                                          for batch in chunk.batches]))
                if len(in_flight) > 1:  # one chunk's batches queued behind the running chunk's
                    _finish_chunk(*in_flight.pop(0), vectors, on_progress, on_chunk)
            for chunk, futures in in_flight:
                _finish_chunk(chunk, futures, vectors, on_progress, on_chunk)
        except KeyboardInterrupt:
            running.shutdown(wait=False, cancel_futures=True)  # the queued batches first: the workers take a while
            if self._workers is not None:  # stop them now: a pool left to the interpreter's exit hook races it
                self._workers.shutdown(wait=True, cancel_futures=True)  # (CPython 3.11) and prints a traceback
                self._workers = None
            raise
        finally:
            chunks.close()
            running.shutdown(wait=True, cancel_futures=True)
            if owns_tokenizing:
                tokenizing.shutdown(wait=True, cancel_futures=True)
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


def _finish_chunk(chunk: TokenizedChunk, futures: list[Future], vectors: np.ndarray,
                  on_progress: Callable[[int], None] | None,
                  on_chunk: Callable[[int, np.ndarray], None] | None) -> None:
    """Wait for a chunk's batches, reporting each to ``on_progress`` and then the whole chunk to ``on_chunk``."""
    for future in futures:
        done = future.result()
        if on_progress:
            on_progress(done)
    if on_chunk:
        on_chunk(chunk.start, vectors[chunk.start : chunk.stop])
