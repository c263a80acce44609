"""Which queries a mean is over: trec_eval's rules (with and without -c) and evalfast's judged-only rule.

trec_eval evaluates the queries of the qrels: a run query absent from the qrels is ignored; a query whose every
judgment is non-relevant is scored like any other (its P, recall, nDCG ... are 0). Without -c it averages the
queries in both files; with -c, every qrels query, a query absent from the run contributing 0 to every measure
(trec_eval's help for -c; trec_eval 10 scores it on a ranking of one unjudged document). BEIR and MTEB average
pytrec_eval's per-query values, which are those of the queries in both files; they retrieve every qrels query,
so their mean is also the -c one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

AVERAGES: dict[str, str] = {
    "all": "every query in the qrels, as trec_eval -c (a query absent from the run scores 0)",
    "both": "the queries in both the qrels and the run, as trec_eval without -c",
    "judged": "the qrels queries with a relevant document, as evalfast eval's qrels protocol (a query absent from "
              "the run scores 0)",
}
"""--average rule -> the queries it averages."""

Key = TypeVar("Key")


@dataclass(frozen=True)
class QueryCounts:
    """How a mean was taken: the rule (an AVERAGES key) and the counts of queries it concerns."""

    rule: str
    queries_averaged: int
    qrels_queries: int
    judged_without_relevant: int  # qrels queries whose every judgment is <= 0
    qrels_queries_absent_from_run: int
    run_queries_absent_from_qrels: int  # ignored by every rule

    def as_dict(self) -> dict[str, str | int]:
        """The fields by name and the rule's meaning (means_over), for JSON reports."""
        return {"rule": self.rule, "means_over": AVERAGES[self.rule], **asdict(self)}

    def summary(self) -> str:
        """Two lines for people: the rule and what it averaged, then the counts of both files' queries."""
        return (f"average {self.rule}: {_queries(self.queries_averaged)}, {AVERAGES[self.rule]}\n"
                f"qrels: {_queries(self.qrels_queries)}, {self.judged_without_relevant} without a relevant document, "
                f"{self.qrels_queries_absent_from_run} absent from the run; "
                f"run: {_queries(self.run_queries_absent_from_qrels)} absent from the qrels (ignored)")


def _queries(n: int) -> str:
    return f"{n} quer{'y' if n == 1 else 'ies'}"


def averaged_queries(rule: str, n_relevant: np.ndarray, in_run: np.ndarray) -> tuple[np.ndarray, QueryCounts]:
    """(bool (n_rows,) mask of the queries rule averages, their QueryCounts).

    Rows as the TREC readers number queries: the qrels queries first, then the run's others.
    n_relevant int64 (n_qrels_queries,): each qrels query's relevant (judgment > 0) documents (Qrels.relevant_counts);
    in_run bool (n_rows,): the run ranks something for the query.
    """
    if rule not in AVERAGES:
        raise ValueError(f"averaged_queries: rule {rule!r} is not one of {', '.join(AVERAGES)}")
    in_run = np.asarray(in_run, bool)
    n_qrels_queries = len(n_relevant)
    in_qrels = np.arange(in_run.size) < n_qrels_queries
    with_relevant = np.zeros(in_run.size, bool)
    with_relevant[:n_qrels_queries] = np.asarray(n_relevant) > 0
    mask = {"all": in_qrels, "both": in_qrels & in_run, "judged": with_relevant}[rule]
    counts = QueryCounts(rule, int(mask.sum()), n_qrels_queries, int((in_qrels & ~with_relevant).sum()),
                         int((in_qrels & ~in_run).sum()), int((~in_qrels & in_run).sum()))
    return mask, counts


def means(per_query: Mapping[Key, np.ndarray], mask: np.ndarray) -> dict[Key, float]:
    """Each per-query float64 (n_rows,) array's mean over the masked rows; NaN when the mask is empty."""
    rows = np.flatnonzero(mask)
    return {key: float(values.take(rows).sum() / rows.size) if rows.size else float("nan")
            for key, values in per_query.items()}
