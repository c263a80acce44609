"""What a user writes to score a TREC run with pytrec_eval or ranx: the peers of `evalfast metrics` in
``bench_metrics.py --whole-process``. Each reads the two files, scores P@10, R@100, nDCG@10, AP and RR, averages
them over the queries it scored and writes the means as JSON, keyed by ir-measures' names.

    python benchmarks/metrics_peers.py pytrec_eval qrels.txt run.txt means.json
    python benchmarks/metrics_peers.py ranx qrels.txt run.txt means.json

Nothing else is imported at the top, so each process's time is its library's, from start to written file.
"""

from __future__ import annotations

import json
import sys

# ir-measures' name -> (pytrec_eval's measure, its output key, ranx's name)
MEASURES = {
    "P@10": ("P.10", "P_10", "precision@10"),
    "R@100": ("recall.100", "recall_100", "recall@100"),
    "nDCG@10": ("ndcg_cut.10", "ndcg_cut_10", "ndcg@10"),
    "AP": ("map", "map", "map"),
    "RR": ("recip_rank", "recip_rank", "mrr"),
}


def pytrec_eval_means(qrels_path: str, run_path: str) -> dict[str, float]:
    """Parse both files line by line into dicts, evaluate with pytrec_eval, average over the scored queries."""
    import pytrec_eval

    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path) as lines:
        for line in lines:
            query, _, doc, relevance = line.split()
            qrels.setdefault(query, {})[doc] = int(relevance)
    run: dict[str, dict[str, float]] = {}
    with open(run_path) as lines:
        for line in lines:
            query, _, doc, _, score, _ = line.split()
            run.setdefault(query, {})[doc] = float(score)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {measure for measure, _, _ in MEASURES.values()})
    per_query = evaluator.evaluate(run)
    return {name: sum(values[key] for values in per_query.values()) / len(per_query)
            for name, (_, key, _) in MEASURES.items()}


def ranx_means(qrels_path: str, run_path: str) -> dict[str, float]:
    """ranx's own readers and evaluate (numba, every thread); its means."""
    from ranx import Qrels, Run, evaluate

    qrels = Qrels.from_file(qrels_path, kind="trec")
    run = Run.from_file(run_path, kind="trec")
    means = evaluate(qrels, run, [ranx_name for _, _, ranx_name in MEASURES.values()], threads=0)
    return {name: float(means[ranx_name]) for name, (_, _, ranx_name) in MEASURES.items()}


PEERS = {"pytrec_eval": pytrec_eval_means, "ranx": ranx_means}


def main(argv: list[str]) -> None:
    if len(argv) != 4 or argv[0] not in PEERS:
        sys.exit(f"usage: metrics_peers.py {{{','.join(PEERS)}}} QRELS RUN OUT.json")
    peer, qrels_path, run_path, out_path = argv
    means = PEERS[peer](qrels_path, run_path)
    with open(out_path, "w") as out:
        json.dump({"metrics": means}, out, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
