"""The real all-MiniLM-L6-v2: export parity, end-to-end metrics against independent references, the seed's figures."""

from __future__ import annotations

import numpy as np
import pytest
import pytrec_eval
from click.testing import CliRunner

from evalfast.cli import cli
from evalfast.data.golden import load_golden
from evalfast.evaluate import EvalConfig, evaluate
from evalfast.model.encoder import Encoder
from evalfast.model.parity import one_minus_cos

from conftest import HANDWRITTEN, SEED_CSV, needs_seed_csv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo():
    return load_golden(HANDWRITTEN)


def test_export_matches_sentence_transformers_on_the_demo_set(minilm_export, minilm_torch, demo):
    texts = demo.doc_texts + demo.query_texts
    gaps = one_minus_cos(minilm_torch.encode(texts, convert_to_numpy=True), Encoder(minilm_export).encode(texts).vectors)
    assert gaps.max() < 1e-5


def test_eval_matches_pytrec_eval_on_a_sentence_transformers_run(minilm_export, minilm_torch, demo):
    """Reference: sentence-transformers embeddings, numpy full ranking, pytrec_eval."""
    docs = minilm_torch.encode(demo.doc_texts, convert_to_numpy=True)
    queries = minilm_torch.encode(demo.query_texts, convert_to_numpy=True)
    scores = queries @ docs.T
    run = {demo.query_ids[q]: {demo.doc_ids[d]: float(scores[q, d]) for d in range(demo.n_docs)}
           for q in range(demo.n_queries)}
    qrels = {}
    for q, d, rel in zip(demo.qrels.query, demo.qrels.doc, demo.qrels.relevance):
        qrels.setdefault(demo.query_ids[q], {})[demo.doc_ids[d]] = int(rel)
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "P.5", "recall.10", "map_cut.100", "Rprec"})
    per_query = reference.evaluate(run)
    expected = {name: np.mean([per_query[q][measure] for q in per_query])
                for name, measure in [("ndcg@10", "ndcg_cut_10"), ("precision@5", "P_5"), ("recall@10", "recall_10"),
                                      ("map@100", "map_cut_100"), ("r_precision", "Rprec")]}

    result = evaluate(Encoder(minilm_export), demo)
    assert result.counts["queries_evaluated"] == len(per_query) == 316
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-9), name


@needs_seed_csv
def test_pairs_protocol_gives_back_the_seeds_figures(minilm_export):
    result = evaluate(Encoder(minilm_export), load_golden(SEED_CSV), EvalConfig(protocol="pairs"))
    got = [round(result.metrics[key], 3) for key in ("precision@1", "precision@3", "precision@5", "mrr", "ndcg@5")]
    assert got == [0.547, 0.483, 0.459, 0.193, 0.216]


def test_bundled_name_resolves_offline_and_exports_once(tmp_path):
    args = ["eval", "--model", "all-MiniLM-L6-v2", "--golden", str(HANDWRITTEN), "--cache-dir", str(tmp_path),
            "--k", "10"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    exports = list((tmp_path / "models").iterdir())
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert list((tmp_path / "models").iterdir()) == exports
    assert "660 from cache" in second.output
    table = {line.split()[0]: line.split()[1:] for line in second.output.splitlines() if line.startswith("ndcg")}
    assert table == {line.split()[0]: line.split()[1:] for line in first.output.splitlines() if line.startswith("ndcg")}
