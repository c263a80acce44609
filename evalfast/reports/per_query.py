"""Per-query output: each query's metrics, its top documents with scores and judgments, and the rank of its first
relevant document, as JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from evalfast.atomic import atomic_path
from evalfast.data.golden import GoldenSet
from evalfast.errors import EvalfastError
from evalfast.evaluate import EvalResult

TOP = 10  # documents listed per query


def first_relevant_rank(result: EvalResult) -> np.ndarray:
    """int64 (n_queries,): 1-based rank of the first relevant document in the run, 0 when none is retrieved."""
    relevant = result.run_relevance > 0
    return np.where(relevant.any(axis=1), relevant.argmax(axis=1) + 1, 0)


def per_query_records(name: str, result: EvalResult, golden: GoldenSet, top: int = TOP) -> Iterator[dict]:
    """One record per query of ``golden`` (qrels protocol)."""
    ranks = first_relevant_rank(result)
    for q in range(golden.n_queries):
        hits = [{"doc_id": golden.doc_ids[d], "score": float(s), "relevance": float(r)}
                for d, s, r in zip(result.run.doc_ids[q, :top], result.run.scores[q, :top],
                                   result.run_relevance[q, :top]) if d >= 0]
        yield {"model": name, "query_id": golden.query_ids[q], "text": golden.query_texts[q],
               "scored": bool(result.evaluated[q]),
               "metrics": {key: float(values[q]) for key, values in result.per_query.items()},
               "first_relevant_rank": int(ranks[q]) or None, "top": hits}


def write_per_query(path: Path, named_results: list[tuple[str, EvalResult]], golden: GoldenSet) -> None:
    """Write every model's per-query records to ``path`` (JSON lines, atomically)."""
    if any(result.protocol != "qrels" for _, result in named_results):
        raise EvalfastError("--per-query needs the qrels protocol (the pairs protocol scores rows, not queries)")
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for name, result in named_results:
            out.writelines(json.dumps(record, ensure_ascii=False) + "\n"
                           for record in per_query_records(name, result, golden))
