"""`evalfast latency`: the open-loop load generator, the indexes and their quality, the command and its errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from evalfast.cli import cli
from evalfast.errors import EvalfastError
from evalfast.perf.latency import (IndexSpec, arrival_times, build_index, index_quality, latency_corpus, recall_at_k,
                                   recall_by_ef_search, run_load, summarize_load, synthetic_corpus)

from conftest import HANDWRITTEN


def unit_rows(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_poisson_arrivals_have_the_rate_and_exponential_gaps():
    times = arrival_times(50, 200, "poisson", seed=1)
    assert abs(len(times) - 50 * 200) < 4 * np.sqrt(50 * 200)
    assert stats.kstest(np.diff(times), stats.expon(scale=1 / 50).cdf).pvalue > 0.01
    assert times.max() < 200 and np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(arrival_times(20, 3, "uniform", seed=0)), 0.05)


def test_latency_counts_from_the_scheduled_time_so_queueing_shows():
    def slow(_query):
        time.sleep(0.03)
        return 0.0, 0.03

    times = arrival_times(60, 1.0, "uniform", seed=0)  # one request every 16.7 ms, each taking 30 ms
    alone = summarize_load(run_load(slow, 5, times, concurrency=1))
    assert alone["completed"] == len(times) and alone["errors"] == 0
    assert alone["queued_ms"]["max"] > 200  # the backlog grows by ~13 ms a request
    assert alone["latency_ms"]["p99"] > alone["latency_ms"]["p50"] > 30
    spread = summarize_load(run_load(slow, 5, times, concurrency=4))
    assert spread["latency_ms"]["p99"] < alone["latency_ms"]["p99"] / 3


def test_failed_requests_are_counted_and_the_load_goes_on():
    def flaky(query):
        if query % 3 == 0:
            raise RuntimeError("boom")
        return 0.001, 0.001

    summary = summarize_load(run_load(flaky, 9, arrival_times(200, 0.2, "uniform", seed=0), concurrency=2))
    assert summary["errors"] == summary["requests"] // 3 + (summary["requests"] % 3 > 0)
    assert summary["completed"] + summary["errors"] == summary["requests"]


@pytest.mark.parametrize("name, floor", [("flat", 1.0), ("hnsw", 0.95), ("ivf", 0.5), ("sq8", 0.9), ("IVF16,PQ8x4", 0.2)])
def test_indexes_report_recall_against_exact_search(name, floor):
    corpus, queries = unit_rows(3000, seed=1), unit_rows(50, seed=2)
    built = build_index(corpus, IndexSpec(name, nlist=16, nprobe=4, pq_m=8))
    quality = index_quality(built.index, corpus, queries, None, 10)
    assert floor <= quality["recall@10"] <= 1.0
    assert built.size_bytes > 0 and built.build_seconds >= 0


def test_recall_by_ef_search_matches_faiss_searched_directly_and_restores_the_setting():
    import faiss

    corpus, queries = unit_rows(4000, seed=5), unit_rows(60, seed=6)
    built = build_index(corpus, IndexSpec("hnsw", hnsw_m=8, ef_search=24))
    flat = faiss.IndexFlatIP(corpus.shape[1])
    flat.add(corpus)
    exact = flat.search(queries, 10)[1]
    reference = {}
    for ef in (10, 40, 400):
        built.index.hnsw.efSearch = ef  # faiss's own setting, searched directly
        found = built.index.search(queries, 10)[1]
        reference[ef] = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    built.index.hnsw.efSearch = 24
    curve = recall_by_ef_search(built.index, queries, exact, [10, 40, 400])
    assert curve == pytest.approx(reference)
    assert curve[10] < curve[400] and curve[400] > 0.9
    assert built.index.hnsw.efSearch == 24


def test_ef_construction_reaches_the_faiss_graph_and_links_it_better():
    corpus, queries = unit_rows(4000, seed=5), unit_rows(60, seed=6)
    shallow, deep = (build_index(corpus, IndexSpec("hnsw", hnsw_m=4, ef_search=16, ef_construction=ef))
                     for ef in (8, 200))
    assert (shallow.index.hnsw.efConstruction, deep.index.hnsw.efConstruction) == (8, 200)
    shallow_recall, deep_recall = (index_quality(built.index, corpus, queries, None, 10)["recall@10"]
                                   for built in (shallow, deep))
    assert deep_recall > shallow_recall


def test_recall_is_the_share_of_exact_hits_found():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k(np.array([[4, 3, 9, 9], [5, 6, 7, 8]]), exact) == pytest.approx((0.5 + 1.0) / 2)


def test_unknown_index_is_a_clear_error():
    with pytest.raises(EvalfastError, match="--index 'graphy'"):
        build_index(unit_rows(100), IndexSpec("graphy"))


def test_synthetic_documents_are_unit_vectors_near_real_ones():
    real = unit_rows(50, seed=3)
    synthetic = synthetic_corpus(real, 1000, seed=0)
    np.testing.assert_allclose(np.linalg.norm(synthetic, axis=1), 1.0, atol=1e-5)
    assert np.median((synthetic @ real.T).max(axis=1)) > 0.5
    np.testing.assert_array_equal(synthetic, synthetic_corpus(real, 1000, seed=0))


def test_cli_measures_the_bundled_set(tiny_export, tmp_path):
    args = ["latency", "-m", str(tiny_export), "-g", str(HANDWRITTEN), "--cache-dir", str(tmp_path / "cache"),
            "--index", "hnsw", "--qps", "40", "--duration", "1s", "--json", str(tmp_path / "lat.json"),
            "--html", str(tmp_path / "lat.html")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "lat.json").read_text())
    assert report["kind"] == "evalfast.latency" and report["index"]["factory"] == "HNSW32,Flat"
    assert report["index"]["spec"]["ef_search"] == 64 and report["index"]["spec"]["ef_construction"] == 40
    assert report["quality"]["recall@10"] > 0.9 and "ndcg@10_change" in report["quality"]
    assert report["load"]["completed"] > 10 and {"p50", "p99", "p99.9", "max"} <= set(report["load"]["latency_ms"])
    assert 'data-plot="latency"' in (tmp_path / "lat.html").read_text()
    assert "p99.9" in result.output and "embedding" in result.output
    assert "HNSW32,Flat (efSearch 64, efConstruction 40) over 320 documents (320 golden)" in result.output


def test_the_corpus_keeps_the_real_documents_first_and_grows_to_the_size_asked():
    real = unit_rows(40, seed=4)
    assert latency_corpus(real, None, seed=0) is real
    grown = latency_corpus(real, 300, seed=0)
    assert grown.shape == (300, real.shape[1])
    np.testing.assert_array_equal(grown[:40], real)
    with pytest.raises(EvalfastError, match="--synthetic-docs 39: the real documents alone are 40"):
        latency_corpus(real, 39, seed=0)


def test_cli_indexes_distractors_and_synthetic_documents_beside_the_golden_corpus(tiny_export, tmp_path):
    distractors = tmp_path / "more.txt"
    distractors.write_text("A ledger of ships that never reached port.\nNotes on tuning a cello in winter.\n")
    result = CliRunner().invoke(cli, ["latency", "-m", str(tiny_export), "-g", str(HANDWRITTEN), "--cache-dir",
                                      str(tmp_path / "cache"), "--index", "flat", "--distractors", str(distractors),
                                      "--synthetic-docs", "1000", "--qps", "40", "--duration", "0.5s", "--json",
                                      str(tmp_path / "lat.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "lat.json").read_text())
    assert report["index"]["composition"] == {"golden": 320, "distractors": 2, "synthetic": 678}
    assert report["index"]["documents"] == 1000 and "320 golden, 2 distractors, 678 synthetic" in result.output
    quality = report["quality"]
    assert quality["recall@10"] == 1.0 and quality["ndcg@10_change"] == 0.0  # flat search is exact
    assert 0 < quality["ndcg@10_exact"] <= 1


def test_cli_sweep_finds_a_rate_within_the_bound(tiny_export, tmp_path):
    result = CliRunner().invoke(cli, ["latency", "-m", str(tiny_export), "-g", str(HANDWRITTEN), "--cache-dir",
                                      str(tmp_path), "--index", "flat", "--qps", "20", "--duration", "0.5s",
                                      "--sweep", "1s", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    sweep = json.loads((tmp_path / "s.json").read_text())["sweep"]
    assert sweep["best_qps"] >= 20 and sweep["tried"][0]["within_bound"]


@pytest.mark.parametrize("extra, message", [
    (["--qps", "-5"], "--qps"),
    (["--index", "NoSuchIndex"], "--index 'NoSuchIndex'"),
    (["--k", "1000"], "--k 1000: the index holds only 320 documents"),
    (["--duration", "soon"], "--duration"),
    (["--synthetic-docs", "100"], "--synthetic-docs 100: the real documents alone are 320"),
    (["--distractors", "missing.txt"], "missing.txt: no such file"),
])
def test_cli_bad_arguments_exit_2_with_one_clear_line(tiny_export, tmp_path, extra, message):
    result = CliRunner().invoke(cli, ["latency", "-m", str(tiny_export), "-g", str(HANDWRITTEN), "--cache-dir",
                                      str(tmp_path), "--duration", "0.2s", *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_run_latency_is_the_command_as_a_library_call(tiny_export):
    """run_latency: the document `evalfast latency` writes, from an encoder, a golden set and a LatencyConfig;
    its model, index, corpus and settings say what was run, and an impossible load is refused before any work."""
    from evalfast.data.golden import load_golden
    from evalfast.model.encoder import Encoder, EncoderConfig
    from evalfast.perf.latency import LatencyConfig, run_latency

    golden = load_golden(HANDWRITTEN)
    encoder = Encoder(tiny_export, EncoderConfig(threads=1))
    config = LatencyConfig(IndexSpec("flat"), qps=30, duration_seconds=0.5, k=5, synthetic_docs=400, seed=2)
    embedded, statuses = [], []
    document = run_latency(encoder, golden, config, distractors=["a distractor", "another one"],
                           golden_path="g", command="cmd", on_progress=embedded.append, on_status=statuses.append)
    assert (document["kind"], document["command"], document["golden"]) == ("evalfast.latency", "cmd", "g")
    assert document["model"] == {"path": str(tiny_export), "precision": "fp32", "device": "cpu", "threads": 1}
    assert document["index"]["factory"] == "Flat" and document["index"]["documents"] == 400
    assert document["index"]["composition"] == {"golden": golden.n_docs, "distractors": 2,
                                                "synthetic": 400 - golden.n_docs - 2}
    assert document["quality"]["recall@5"] == 1.0  # a flat index is exact
    assert document["settings"] == {"qps": 30, "duration_seconds": 0.5, "concurrency": 1, "arrival": "poisson",
                                    "k": 5, "seed": 2}
    assert document["load"]["completed"] >= 5 and document["sweep"] is None
    assert sum(embedded) == golden.n_docs + 2 and statuses == ["building flat over 400 documents ..."]
    before = len(embedded)
    with pytest.raises(EvalfastError, match="schedules"):
        run_latency(encoder, golden, LatencyConfig(qps=1e6, duration_seconds=3600), on_progress=embedded.append)
    assert len(embedded) == before  # nothing was embedded
