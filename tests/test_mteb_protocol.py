"""MTEB's retrieval protocol: judged queries only, cutoffs to 1000, identical ids dropped, judged documents missing
from the corpus counted as pytrec_eval counts them, MTEB's result layout; and, where ../shared holds BEIR SciFact,
MTEB's published scores reproduced with the real models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from evalfast.cli import cli
from evalfast.data.golden import load_golden
from evalfast.evaluate import MTEB_KS, EvalConfig, evaluate, for_protocol, score_vectors
from evalfast.model.encoder import Encoder
from evalfast.reports.mteb_results import mteb_document

from conftest import REPO, write_file

SCIFACT = REPO.parent / "shared" / "data" / "beir" / "scifact"
needs_scifact = pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(),
                                   reason="BEIR SciFact lives in ../shared, outside this repository")
# MTEB's published test-split scores (../shared/data/beir/README.md, mteb 1.12.75)
PUBLISHED = {
    "all-MiniLM-L6-v2": {"ndcg_at_10": 0.64508, "map_at_10": 0.59593, "recall_at_100": 0.92500, "mrr_at_10": 0.60472},
    "all-mpnet-base-v2": {"ndcg_at_10": 0.65570, "map_at_10": 0.60827, "recall_at_100": 0.94167, "mrr_at_10": 0.61774},
}
PYTREC_MEASURES = {"ndcg_cut.10", "map_cut.10", "recall.10", "P.5", "recip_rank"}
OURS = {"ndcg_cut_10": "ndcg@10", "map_cut_10": "map@10", "recall_10": "recall@10", "P_5": "precision@5"}


def write_beir(folder: Path, docs: dict[str, str], queries: dict[str, str], qrels: list[tuple[str, str, int]]) -> Path:
    write_file(folder / "corpus.jsonl", "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                                for i, t in docs.items()))
    write_file(folder / "queries.jsonl", "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items()))
    write_file(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n"
                                                                                      for q, d, r in qrels))
    return folder


DOCS = {f"d{i}": text for i, text in enumerate([
    "a lighthouse keeper hears a voice in the fog", "dragons hoard tax returns", "a cozy bakery mystery",
    "robots learn to paint sunsets", "a detective story with a twist", "letters from a lost sailor",
    "the last library on the moon", "a garden that grows memories", "two rivals share one umbrella",
    "a haunted train that never stops", "a chef cooks for ghosts", "a map that redraws itself"])}
QUERIES = {"q1": "haunted lighthouse", "q2": "dragon story", "q3": "bakery", "q4": "unjudged query"}


def as_pytrec(golden, run) -> dict[str, dict[str, float]]:
    """The run as pytrec_eval's {query: {doc: score}} (float64 scores, as trec_eval ranks them)."""
    return {golden.query_ids[q]: {golden.doc_ids[d]: float(s) for d, s in zip(run.doc_ids[q], run.scores[q]) if d >= 0}
            for q in range(golden.n_queries)}


def pytrec_means(qrels: dict, run: dict) -> dict[str, float]:
    per_query = pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES).evaluate(run)
    return {name: float(np.mean([values[name] for values in per_query.values()]))
            for name in ("ndcg_cut_10", "map_cut_10", "recall_10", "P_5", "recip_rank")}


def test_missing_documents_are_relevant_but_unretrievable_as_in_pytrec_eval(tmp_path, tiny_export):
    judged = [("q1", "d0", 2), ("q1", "gone-1", 1), ("q2", "d1", 1), ("q2", "gone-2", 2), ("q3", "d2", 1),
              ("q3", "d5", 0)]
    golden = load_golden(write_beir(tmp_path / "beir", DOCS, QUERIES, judged))
    assert golden.missing_doc_ids == ("gone-1", "gone-2") and len(golden.warnings) == 1
    result = evaluate(Encoder(tiny_export), golden, EvalConfig.for_protocol("mteb"))
    qrels: dict[str, dict[str, int]] = {}
    for q, d, r in judged:
        qrels.setdefault(q, {})[d] = r
    reference = pytrec_means(qrels, as_pytrec(for_protocol(golden, "mteb"), result.run))
    for theirs, ours in OURS.items():
        assert result.metrics[ours] == pytest.approx(reference[theirs], abs=1e-12), ours
    assert result.metrics["mrr@1000"] == pytest.approx(reference["recip_rank"], abs=1e-12)
    # were the missing documents dropped instead, q1 and q2 could reach full recall; here they cannot
    assert result.metrics["recall@1000"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_mteb_protocol_scores_judged_queries_at_mtebs_cutoffs(tmp_path, tiny_export):
    golden = load_golden(write_beir(tmp_path / "beir", DOCS, QUERIES, [("q1", "d0", 1), ("q3", "d2", 1),
                                                                        ("q2", "d1", 0)]))
    config = EvalConfig.for_protocol("mteb")
    assert config.ks == MTEB_KS == (1, 3, 5, 10, 20, 100, 1000)
    judged = for_protocol(golden, "mteb")
    assert judged.query_ids == ["q1", "q2", "q3"]  # q4 has no qrels line; q2 has one, judged not relevant
    result = evaluate(Encoder(tiny_export), golden, config)
    assert result.run.doc_ids.shape == (3, len(DOCS)) and result.counts["queries"] == 3
    assert {f"ndcg@{k}" for k in MTEB_KS} <= result.metrics.keys()
    # pytrec_eval (and so MTEB) averages every judged query: q2 counts, with 0 everywhere
    reference = pytrec_means({"q1": {"d0": 1}, "q2": {"d1": 0}, "q3": {"d2": 1}}, as_pytrec(judged, result.run))
    for theirs, ours in OURS.items():
        assert result.metrics[ours] == pytest.approx(reference[theirs], abs=1e-12), ours
    assert result.counts["queries_evaluated"] == 3 and result.metrics["mrr@1000"] == pytest.approx(
        reference["recip_rank"], abs=1e-12)


def test_identical_ids_are_dropped_after_the_search_as_mteb_drops_them(tmp_path):
    # each query is also a document of the corpus (ArguAna): its own vector, so it would rank first
    docs = {"a": "x", "b": "x", "c": "x", "d": "x", "e": "x"}
    golden = load_golden(write_beir(tmp_path / "beir", docs, {"a": "x", "c": "x"}, [("a", "b", 1), ("c", "a", 1)]))
    rng = np.random.default_rng(0)
    doc_vectors = rng.normal(size=(5, 8)).astype(np.float32)
    doc_vectors /= np.linalg.norm(doc_vectors, axis=1, keepdims=True)
    query_vectors = doc_vectors[[0, 2]].copy()
    plain = score_vectors(golden, doc_vectors, query_vectors, EvalConfig(ks=(3,)))
    dropped = score_vectors(golden, doc_vectors, query_vectors, EvalConfig(ks=(3,), ignore_identical_ids=True))
    assert plain.run.doc_ids[:, 0].tolist() == [0, 2]
    own = np.array([[0], [2]])
    # MTEB pops the query's own document from its top k and fetches no other: k - 1 documents remain
    expected = [[d for d in row if d != own[i, 0]] + [-1] for i, row in enumerate(plain.run.doc_ids.tolist())]
    assert dropped.run.doc_ids.tolist() == expected
    qrels = {"a": {"b": 1}, "c": {"a": 1}}
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.3"}).evaluate(as_pytrec(golden, dropped.run))
    assert dropped.metrics["ndcg@3"] == pytest.approx(np.mean([v["ndcg_cut_3"] for v in reference.values()]))


def test_mteb_document_has_mtebs_layout(tmp_path, tiny_export):
    golden = load_golden(write_beir(tmp_path / "beir", DOCS, QUERIES, [("q1", "d0", 1), ("q2", "d1", 1)]))
    result = evaluate(Encoder(tiny_export), golden, EvalConfig.for_protocol("mteb"))
    document = mteb_document(result, "Tiny", "test", 1.5, ("eng-Latn",))
    assert document["task_name"] == "Tiny" and document["evaluation_time"] == 1.5
    (scores,) = document["scores"]["test"]
    assert scores["hf_subset"] == "default" and scores["languages"] == ["eng-Latn"]
    assert scores["main_score"] == scores["ndcg_at_10"] == result.metrics["ndcg@10"]
    for family in ("ndcg", "map", "recall", "precision", "mrr", "hit_rate"):
        assert {f"{family}_at_{k}" for k in MTEB_KS} <= scores.keys()
    assert scores["hit_rate_at_5"] == result.metrics["hit_rate@5"] and "r_precision" not in str(scores)


def test_cli_writes_mteb_json_and_refuses_it_without_ndcg_at_10(tmp_path, tiny_export):
    from click.testing import CliRunner

    folder = write_beir(tmp_path / "beir", DOCS, QUERIES, [("q1", "d0", 1), ("q2", "gone", 1)])
    out = tmp_path / "Tiny.json"
    args = ["eval", "-m", str(tiny_export), "-g", str(folder), "--protocol", "mteb", "--cache-dir",
            str(tmp_path / "cache")]
    result = CliRunner().invoke(cli, [*args, "--mteb-json", str(out), "--task-name", "Tiny"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "1 judged document(s) not in corpus.jsonl ('gone')" in result.output
    document = json.loads(out.read_text())
    assert document["task_name"] == "Tiny" and document["scores"]["test"][0]["main_score"] >= 0
    refused = CliRunner().invoke(cli, [*args, "--k", "5", "--mteb-json", str(tmp_path / "no.json")])
    assert refused.exit_code == 2 and "nDCG@10" in refused.output and not (tmp_path / "no.json").exists()


@pytest.fixture(scope="session")
def real_model_cache(tmp_path_factory) -> Path:
    """One cache for the real models' exports in a test session ($EVALFAST_TEST_CACHE to keep it across runs)."""
    return Path(os.environ.get("EVALFAST_TEST_CACHE") or tmp_path_factory.mktemp("real-models"))


def scifact_subset(folder: Path, n_queries: int, n_others: int) -> Path:
    """A BEIR folder of SciFact's first ``n_queries`` test queries, their judged documents and ``n_others`` more."""
    golden = load_golden(SCIFACT)
    keep = np.zeros(golden.n_queries, bool)
    keep[np.unique(golden.qrels.query)[:n_queries]] = True
    judged = golden.qrels.query < 0
    for q in np.flatnonzero(keep):
        judged |= golden.qrels.query == q
    docs = sorted(set(golden.qrels.doc[judged].tolist()) | set(range(n_others)))
    qrels = [(golden.query_ids[q], golden.doc_ids[d], int(r))
             for q, d, r in zip(golden.qrels.query[judged], golden.qrels.doc[judged], golden.qrels.relevance[judged])]
    return write_beir(folder, {golden.doc_ids[d]: golden.doc_texts[d] for d in docs},
                      {golden.query_ids[q]: golden.query_texts[q] for q in np.flatnonzero(keep)}, qrels)


@needs_scifact
@pytest.mark.slow
@pytest.mark.parametrize("model", ["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
def test_real_models_on_scifact_match_sentence_transformers_and_pytrec_eval(model, tmp_path, real_model_cache):
    from sentence_transformers import SentenceTransformer

    from evalfast.model.opening import open_model
    from evalfast.model.registry import find_model, local_folder

    golden = load_golden(scifact_subset(tmp_path / "subset", n_queries=30, n_others=120))
    encoder = open_model(model, cache_dir=real_model_cache)
    assert encoder.manifest.parity.max_one_minus_cos < 1e-6
    result = evaluate(encoder, golden, EvalConfig(ks=(5, 10, 1000)))
    st_model = SentenceTransformer(str(local_folder(find_model(model), real_model_cache)), device="cpu")
    scores = st_model.similarity(st_model.encode_query(golden.query_texts, convert_to_tensor=True),
                                 st_model.encode_document(golden.doc_texts, convert_to_tensor=True)).numpy()
    run = {q: {d: float(s) for d, s in zip(golden.doc_ids, row)} for q, row in zip(golden.query_ids, scores)}
    qrels: dict[str, dict[str, int]] = {}
    for q, d, r in zip(golden.qrels.query, golden.qrels.doc, golden.qrels.relevance):
        qrels.setdefault(golden.query_ids[q], {})[golden.doc_ids[d]] = int(r)
    reference = pytrec_means(qrels, run)
    for theirs, ours in OURS.items():
        assert result.metrics[ours] == pytest.approx(reference[theirs], abs=1e-6), ours
    assert result.metrics["mrr@1000"] == pytest.approx(reference["recip_rank"], abs=1e-6)


def _scifact_scores(model: str, cache_dir: Path) -> dict[str, float]:
    from evalfast.model.opening import open_model

    result = evaluate(open_model(model, cache_dir=cache_dir), load_golden(SCIFACT), EvalConfig.for_protocol("mteb"))
    return mteb_document(result, "SciFact", "test", result.timings["total_seconds"])["scores"]["test"][0]


@needs_scifact
@pytest.mark.parametrize("model", [pytest.param("all-MiniLM-L6-v2", marks=pytest.mark.slow),
                                   pytest.param("all-mpnet-base-v2", marks=pytest.mark.benchmark)])
def test_reproduces_mtebs_published_scifact_scores(model, real_model_cache):
    scores = _scifact_scores(model, real_model_cache)
    for key, published in PUBLISHED[model].items():
        assert abs(scores[key] - published) <= 5e-4, (key, scores[key], published)
