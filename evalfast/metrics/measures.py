"""Measures as ir-measures models them (a family, a cutoff, a relevance level), computed per query.

Each family reads the same kernels as compute(): P (trec_eval P_k), R (recall_k), Success (success_k), nDCG
(ndcg_cut_k; without a cutoff trec_eval's ndcg), AP (map_cut_k; without a cutoff map), RR (recip_rank on the run
cut to its top k, as trec_eval -M k; without a cutoff recip_rank), Rprec, and Judged (ir-measures' Judged@k: the
share of the top k that has a judgment, whatever its label).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evalfast.data.qrels import Qrels
from evalfast.metrics.counts import hit_rate, judged_rate, precision, r_precision, recall
from evalfast.metrics.judged import Judged, Prefixes, at_level, judge, prefixes
from evalfast.metrics.ndcg import ndcg
from evalfast.metrics.ranks import average_precision, reciprocal_rank


@dataclass(frozen=True)
class Family:
    """What a measure family computes and which parameters it takes (ir-measures' rules)."""

    kernel: Callable[[Judged | Prefixes, int], np.ndarray] | None  # None: Judged, which also needs the run's length
    cutoff: str  # "required", "optional" (absent: the whole run) or "none"
    takes_rel: bool  # rel=N: relevant means judgment >= N


FAMILIES: dict[str, Family] = {
    "P": Family(precision, "required", True),
    "R": Family(recall, "required", True),
    "Success": Family(hit_rate, "required", True),
    "nDCG": Family(ndcg, "optional", False),  # gains are the judgments; ir-measures' nDCG has no rel
    "AP": Family(average_precision, "optional", True),
    "RR": Family(reciprocal_rank, "optional", True),
    "Rprec": Family(r_precision, "none", True),
    "Judged": Family(None, "optional", False),
}

NO_REL = {"nDCG": "its gains are the judgments themselves: ir-measures' nDCG has no rel, and trec_eval's -l leaves "
                  "ndcg's gains as they are",
          "Judged": "it counts every judged document, whatever its judgment"}
"""Why the families without rel= take none."""


@dataclass(frozen=True)
class Measure:
    """One measure: family (a FAMILIES key), cutoff k (None: the whole run), rel (None: relevant means judgment > 0;
    N: judgment >= N). rel=1 is the default itself (judgments are integers), as in ir-measures.

    ValueError when the family does not take the parameters given.
    """

    family: str
    cutoff: int | None = None
    rel: int | None = None

    def __post_init__(self) -> None:
        """Normalise rel=1 to None and check the parameters against the family's rules."""
        if self.rel == 1:
            object.__setattr__(self, "rel", None)
        family = FAMILIES.get(self.family)
        if family is None:
            raise ValueError(f"no measure family {self.family!r}; the families are {', '.join(FAMILIES)}")
        if self.cutoff is None and family.cutoff == "required":
            raise ValueError(f"{self.family} needs a cutoff, as in {self.family}@10")
        if self.cutoff is not None and family.cutoff == "none":
            raise ValueError(f"{self.family} takes no cutoff (it reads the top R, R = the relevant documents)")
        if self.cutoff is not None and not (isinstance(self.cutoff, (int, np.integer)) and self.cutoff >= 1):
            raise ValueError(f"cutoff {self.cutoff!r}: give an integer >= 1")
        if self.rel is not None and not family.takes_rel:
            raise ValueError(f"{self.family} takes no rel= ({NO_REL[self.family]})")
        if self.rel is not None and not (isinstance(self.rel, (int, np.integer)) and self.rel >= 1):
            raise ValueError(f"rel={self.rel!r}: give an integer >= 1")

    @property
    def name(self) -> str:
        """ir-measures' name: P(rel=2)@5, nDCG@10, AP, Rprec."""
        rel = "" if self.rel is None else f"(rel={self.rel})"
        return f"{self.family}{rel}" + ("" if self.cutoff is None else f"@{self.cutoff}")


def measure_values(run_doc_ids: np.ndarray, qrels: Qrels, measures: Sequence[Measure]) -> dict[Measure, np.ndarray]:
    """Per-query float64 (n_rows,) values of each measure.

    run_doc_ids int64 (n_rows, depth), -1 = no hit, ordered as trec_eval ranks (see judge, whose row rules apply:
    row i is query i). A row without hits scores 0 on every measure, as trec_eval -c scores a missing query.
    The run is looked up once in the qrels; measures with a relevance level read that lookup; Judged looks the run
    up in qrels whose every judgment is 1.
    """
    run_doc_ids = np.asarray(run_doc_ids, np.int64)
    judged = judge(run_doc_ids, qrels)
    whole = max(judged.gains.shape[1], judged.ideal_gains.shape[1], 1)  # a cutoff past every ranked and ideal doc
    groups: dict[tuple[bool, int | None], list[Measure]] = {}  # (counts judgments, rel) -> its measures
    for measure in dict.fromkeys(measures):
        groups.setdefault((measure.family == "Judged", measure.rel), []).append(measure)
    values = {}
    for (counts_judgments, rel), group in groups.items():
        kernels = {name: family.kernel for name, family in FAMILIES.items()}
        if counts_judgments:
            marks = Qrels(qrels.query, qrels.doc, np.ones(qrels.query.size), qrels.n_queries, qrels.n_docs)
            source = judge(run_doc_ids, marks)
            kernels["Judged"] = functools.partial(judged_rate, n_retrieved=(run_doc_ids >= 0).sum(axis=1))
        else:
            source = judged if rel is None else at_level(judged, qrels, rel)
        prefix = prefixes(source, [measure.cutoff or whole for measure in group])
        values.update({measure: kernels[measure.family](prefix, measure.cutoff or whole) for measure in group})
    return {measure: values[measure] for measure in measures}
