"""The embedding path under faults: Ctrl-C and SIGKILL mid-run, exceptions mid-encode, damaged cache shards, a
cache folder that cannot be written. Each ends in the vectors an undisturbed run gives."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evalfast import atomic
from evalfast.model.cache import DAMAGED_FOLDER, KEYS_SUFFIX, VECTORS_SUFFIX, EmbeddingCache
from evalfast.model.embeddings import embed
from evalfast.model.encoder import Encoder, EncoderConfig

from conftest import REPO

WORDS = ("the a lighthouse haunted rainy day kitchen bread radio cozy story about write dragon sea night star "
         "letter winter garden train map clock river").split()


def distinct_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct texts of 2 to 30 words, so that batches mix lengths."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 30))) + f" {i}" for i in range(n)]


def shard_stems(folder: Path) -> list[str]:
    return sorted(p.name[: -len(KEYS_SUFFIX)] for p in folder.glob(f"*{KEYS_SUFFIX}"))


# --- real signals on `evalfast embed` -------------------------------------------------------------------------


def start_embed(model: Path, texts: Path, output: Path, *cache_args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evalfast", "embed", "-m", str(model), "-i", str(texts),
                             "-o", str(output), "--batch-size", "2", *cache_args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_embed(model: Path, texts: Path, output: Path, *cache_args: str) -> tuple[int, int]:
    """Run `evalfast embed` to the end; (texts encoded, texts from the cache) as it prints them."""
    process = start_embed(model, texts, output, *cache_args)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    counts = re.search(r"\((\d+) encoded, (\d+) from cache", stdout)
    assert counts, stdout
    return int(counts[1]), int(counts[2])


def wait_for_first_shard(process: subprocess.Popen, cache_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not list(cache_dir.glob(f"embeddings/*/*{KEYS_SUFFIX}")):
        if process.poll() is not None:
            pytest.fail(f"the run ended before its first checkpoint: {process.communicate()[1]}")
        assert time.monotonic() < deadline, "no checkpoint shard after 120 s"
        time.sleep(0.01)


N_TEXTS = 20_000  # a few seconds at two texts a batch, so that a signal sent after the first checkpoint lands mid-run


@pytest.fixture(scope="module")
def many_texts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(distinct_texts(N_TEXTS)) + "\n", encoding="utf-8")
    return path


def test_ctrl_c_stops_within_seconds_and_a_rerun_continues_bit_for_bit(tiny_export, many_texts, tmp_path):
    cache = ("--cache-dir", str(tmp_path / "cache"))
    process = start_embed(tiny_export, many_texts, tmp_path / "out.npy", *cache)
    wait_for_first_shard(process, tmp_path / "cache")
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - signalled < 3, f"took {time.monotonic() - signalled:.1f} s to stop"
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == [line for line in stderr.splitlines() if line.startswith("interrupted: ")], stderr
    assert "Traceback" not in stderr and "kept in the cache" in stderr
    assert not (tmp_path / "out.npy").exists()

    encoded, cached = run_embed(tiny_export, many_texts, tmp_path / "out.npy", *cache)
    assert 0 < cached and encoded + cached == N_TEXTS
    run_embed(tiny_export, many_texts, tmp_path / "clean.npy", "--no-cache")
    assert np.load(tmp_path / "out.npy").tobytes() == np.load(tmp_path / "clean.npy").tobytes()


def test_sigkill_mid_run_leaves_no_temporaries_after_the_rerun(tiny_export, many_texts, tmp_path):
    cache_dir = tmp_path / "cache"
    process = start_embed(tiny_export, many_texts, tmp_path / "out.npy", "--cache-dir", str(cache_dir))
    wait_for_first_shard(process, cache_dir)
    process.kill()
    process.communicate(timeout=60)
    (folder,) = cache_dir.glob("embeddings/*")
    # a kill that lands inside a write leaves this behind (too rare to aim a real kill at)
    left = folder / f".{'0' * 32}{VECTORS_SUFFIX}.{atomic._HOST}-{process.pid}.x1y2z3.tmp"
    left.write_bytes(b"half a shard")

    encoded, cached = run_embed(tiny_export, many_texts, tmp_path / "out.npy", "--cache-dir", str(cache_dir))
    assert 0 < cached and encoded + cached == N_TEXTS
    assert not list(folder.glob("*.tmp"))


GROUP_CTRL_C = """
import sys
from evalfast.model.encoder import Encoder, EncoderConfig
from test_faults import distinct_texts

encoder = Encoder(sys.argv[1], EncoderConfig(max_batch=2, chunk=2048, tokenizer_processes=2))
started = []

def on_progress(n):
    if not started:
        print("running", flush=True)
        started.append(n)

try:
    encoder.encode(distinct_texts(60_000), on_progress)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_in_a_terminal_stops_the_tokenizer_processes_without_tracebacks(tiny_export):
    # a terminal sends SIGINT to the whole process group: the parent and its spawned tokenising workers
    process = subprocess.Popen([sys.executable, "-c", GROUP_CTRL_C, str(tiny_export)], cwd=REPO / "tests",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline() == "running\n", process.communicate()[1]
    time.sleep(1)  # the workers now wait for chunks most of the time: the model is slower than the tokenizer
    signalled = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - signalled < 3 and process.returncode == 130 and stderr == "", stderr


# --- exceptions inside encode and embed -----------------------------------------------------------------------


class CountingSession:
    """An onnxruntime session that counts its runs, each taking at least 5 ms as a real model's batch would."""

    def __init__(self, session):
        self.inner, self.runs = session, 0

    def run(self, *args):
        self.runs += 1
        time.sleep(0.005)
        return self.inner.run(*args)


def interrupt_after(n_texts: int, on_interrupt=lambda: None):
    """An on_progress that calls ``on_interrupt`` and raises KeyboardInterrupt once ``n_texts`` texts are done."""
    done = []

    def on_progress(n: int) -> None:
        done.append(n)
        if sum(done) >= n_texts:
            on_interrupt()
            raise KeyboardInterrupt

    return on_progress


@pytest.mark.parametrize("config", [
    EncoderConfig(max_batch=1, chunk=4096),
    EncoderConfig(max_batch=1, chunk=4096, tokenizer_processes=2, runners=2),
], ids=["threads", "processes"])
def test_an_interrupt_cancels_the_queued_batches(tiny_export, config):
    encoder = Encoder(tiny_export, config)
    encoder.session = counting = CountingSession(encoder.session)
    texts = distinct_texts(2000)
    runs_before = []
    with pytest.raises(KeyboardInterrupt):
        encoder.encode(texts, interrupt_after(1, lambda: runs_before.append(counting.runs)))
    # the first chunk's 256 one-text batches and the second's 512 were queued; only the running ones may finish
    # (and those the runners start in the moment before the queue is emptied). The queue is emptied before the
    # tokenising processes are stopped, which takes a while: emptied after them, 25-60 more batches ran.
    assert counting.runs - runs_before[0] < 12, (runs_before, counting.runs)
    fresh = Encoder(tiny_export, config).encode(texts[:50]).vectors
    np.testing.assert_array_equal(encoder.encode(texts[:50]).vectors, fresh)  # and the encoder still works


def test_an_interrupted_embed_keeps_its_finished_chunks_and_resumes_bit_for_bit(tiny_export, tmp_path):
    encoder = Encoder(tiny_export, EncoderConfig(max_batch=2, chunk=512))
    texts = distinct_texts(3000)
    cache = EmbeddingCache(tmp_path, encoder.fingerprint)
    with pytest.raises(KeyboardInterrupt):
        embed(encoder, texts, cache, interrupt_after(1200))
    resumed = embed(encoder, texts, cache)
    assert 0 < resumed.n_cached < 1200 and resumed.n_encoded == 3000 - resumed.n_cached
    assert resumed.vectors.tobytes() == embed(encoder, texts).vectors.tobytes()


def test_checkpoint_shards_are_not_tiny(tiny_export, tmp_path):
    encoder = Encoder(tiny_export, EncoderConfig(chunk=256))  # chunks of 16, 32, ..., 256 texts
    cache = EmbeddingCache(tmp_path, encoder.fingerprint)
    embed(encoder, distinct_texts(5000), cache)
    sizes = sorted(len(np.load(cache.folder / f"{stem}{KEYS_SUFFIX}")) for stem in shard_stems(cache.folder))
    assert sum(sizes) == 5000 and len(sizes) > 1 and min(sizes[1:]) >= 1000  # all but the remainder


# --- damaged shards -------------------------------------------------------------------------------------------


def _garbage(n: int) -> bytes:
    return np.random.default_rng(7).bytes(n)


def _rewrite(path: Path, change) -> None:
    path.write_bytes(change(path.read_bytes()))


def _resave(path: Path, change) -> None:
    array = np.load(path)
    path.unlink()
    with path.open("wb") as handle:  # np.save(path, ...) would add a second .npy
        np.save(handle, change(array))


DAMAGE = {
    "keys truncated": (KEYS_SUFFIX, lambda p: _rewrite(p, lambda b: b[: len(b) // 2])),
    "vectors truncated": (VECTORS_SUFFIX, lambda p: _rewrite(p, lambda b: b[: len(b) - 7])),
    "keys empty": (KEYS_SUFFIX, lambda p: _rewrite(p, lambda b: b"")),
    "keys garbage": (KEYS_SUFFIX, lambda p: _rewrite(p, lambda b: _garbage(len(b)))),
    "vectors garbage": (VECTORS_SUFFIX, lambda p: _rewrite(p, lambda b: _garbage(len(b)))),
    "vectors NaN after the header": (VECTORS_SUFFIX, lambda p: _rewrite(p, lambda b: b[:128] + b"\xff" * len(b[128:]))),
    "vectors missing": (VECTORS_SUFFIX, lambda p: p.unlink()),
    "wrong dimension": (VECTORS_SUFFIX, lambda p: _resave(p, lambda a: a[:, :16])),
    "fewer vectors than keys": (VECTORS_SUFFIX, lambda p: _resave(p, lambda a: a[:-1])),
    "fewer keys than vectors": (KEYS_SUFFIX, lambda p: _resave(p, lambda a: a[:-1])),
    "vectors float64": (VECTORS_SUFFIX, lambda p: _resave(p, lambda a: a.astype(np.float64))),
    "keys not S32": (KEYS_SUFFIX, lambda p: _resave(p, lambda a: a.astype("U32"))),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_shard_is_reported_once_moved_aside_and_embedded_again(tiny_export, tmp_path, damage):
    encoder = Encoder(tiny_export)
    texts = distinct_texts(300)
    clean = embed(encoder, texts).vectors
    warnings: list[str] = []
    embed(encoder, texts, EmbeddingCache(tmp_path, encoder.fingerprint, on_warning=warnings.append))
    cache = EmbeddingCache(tmp_path, encoder.fingerprint, on_warning=warnings.append)
    (stem,) = shard_stems(cache.folder)
    suffix, spoil = DAMAGE[damage]
    spoil(cache.folder / f"{stem}{suffix}")

    again = embed(encoder, texts, cache)
    assert again.n_encoded == len(texts) and again.vectors.tobytes() == clean.tobytes()
    assert len(warnings) == 1 and stem in warnings[0] and "damaged" in warnings[0], warnings
    assert (cache.folder / DAMAGED_FOLDER / f"{stem}{KEYS_SUFFIX}").is_file()
    assert stem not in shard_stems(cache.folder)
    third = embed(encoder, texts, EmbeddingCache(tmp_path, encoder.fingerprint, on_warning=warnings.append))
    assert third.n_cached == len(texts) and third.vectors.tobytes() == clean.tobytes() and len(warnings) == 1


needs_permissions = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")


@needs_permissions
def test_a_damaged_shard_that_cannot_be_moved_is_reported_once_and_ignored(tiny_export, tmp_path):
    encoder = Encoder(tiny_export)
    texts = distinct_texts(100)
    warnings: list[str] = []
    cache = EmbeddingCache(tmp_path, encoder.fingerprint, on_warning=warnings.append)
    embed(encoder, texts, cache)
    (stem,) = shard_stems(cache.folder)
    (cache.folder / f"{stem}{VECTORS_SUFFIX}").write_bytes(b"garbage")
    cache.folder.chmod(0o555)
    try:
        for _ in range(2):
            assert embed(encoder, texts, cache).vectors.tobytes() == embed(encoder, texts).vectors.tobytes()
    finally:
        cache.folder.chmod(0o755)
    assert len(warnings) == 2 and "left in place" in warnings[0] and "cannot write" in warnings[1], warnings


# --- a cache folder that cannot be written --------------------------------------------------------------------


def test_a_full_disk_warns_once_and_the_run_goes_on_without_caching(tiny_export, tmp_path, monkeypatch):
    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("evalfast.model.embeddings.MIN_SHARD_TEXTS", 10)  # several checkpoints, each failing
    monkeypatch.setattr(np, "save", disk_full)
    encoder = Encoder(tiny_export, EncoderConfig(chunk=64))
    texts = distinct_texts(500)
    warnings: list[str] = []
    cache = EmbeddingCache(tmp_path, encoder.fingerprint, on_warning=warnings.append)
    result = embed(encoder, texts, cache)
    assert result.vectors.tobytes() == embed(encoder, texts).vectors.tobytes()
    assert len(warnings) == 1 and str(cache.folder) in warnings[0] and "No space left" in warnings[0], warnings
    assert list(cache.folder.iterdir()) == []  # no temporaries, no vectors without their keys


@needs_permissions
def test_a_read_only_cache_folder_warns_once_and_still_serves_its_vectors(tiny_export, tmp_path):
    encoder = Encoder(tiny_export)
    texts = distinct_texts(200)
    warnings: list[str] = []
    first = embed(encoder, texts[:100], EmbeddingCache(tmp_path, encoder.fingerprint))
    cache = EmbeddingCache(tmp_path, encoder.fingerprint, on_warning=warnings.append)
    cache.folder.chmod(0o555)
    try:
        result = embed(encoder, texts, cache)
        embed(encoder, texts[::-1], cache)
    finally:
        cache.folder.chmod(0o755)
    assert (result.n_cached, result.n_encoded) == (100, 100)
    assert result.vectors[:100].tobytes() == first.vectors.tobytes()
    np.testing.assert_allclose(result.vectors, embed(encoder, texts).vectors, atol=1e-6)  # batched otherwise
    assert len(warnings) == 1 and str(cache.folder) in warnings[0] and "Permission denied" in warnings[0], warnings


def test_a_cache_folder_that_cannot_be_made_warns_once(tiny_export, tmp_path):
    encoder = Encoder(tiny_export)
    (tmp_path / "not-a-folder").write_text("a file where the cache's folder would go")
    warnings: list[str] = []
    cache = EmbeddingCache(tmp_path / "not-a-folder", encoder.fingerprint, on_warning=warnings.append)
    texts = distinct_texts(50)
    for _ in range(2):
        assert embed(encoder, texts, cache).vectors.tobytes() == embed(encoder, texts).vectors.tobytes()
    assert len(warnings) == 1 and "cannot write the embedding cache" in warnings[0], warnings
