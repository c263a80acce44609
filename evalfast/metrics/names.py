"""Measures as users name them: ir-measures' names, trec_eval's, and evalfast's own, each read as a Measure.

- ir-measures: Family(rel=N)@k, e.g. nDCG@10, P@5, P(rel=2)@5, R@100, RR, RR@10, AP, AP@100, Rprec, Success@10,
  Judged@10, with ir-measures' aliases (Precision, Recall, NDCG, MAP, MRR, RPrec) and R-Prec;
- trec_eval (-m): P.5 or P_5 (its output name), recall.100, success.10, ndcg_cut.10, map_cut.100, and ndcg, map,
  recip_rank, Rprec; P.5,10 is P.5 and P.10, as trec_eval reads it;
- evalfast: precision@k, recall@k, hit_rate@k, mrr@k, ndcg@k, map@k (map_cut_k) and r_precision, the names
  `evalfast eval` reports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evalfast.errors import EvalfastError
from evalfast.metrics.measures import Measure

IR_MEASURES = {"P": "P", "Precision": "P", "R": "R", "Recall": "R", "Success": "Success", "nDCG": "nDCG",
               "NDCG": "nDCG", "AP": "AP", "MAP": "AP", "RR": "RR", "MRR": "RR", "Rprec": "Rprec", "RPrec": "Rprec",
               "R-Prec": "Rprec", "Judged": "Judged"}
"""ir-measures' names and aliases (and R-Prec) -> family."""

TREC_EVAL_CUT = {"P": "P", "recall": "R", "success": "Success", "ndcg_cut": "nDCG", "map_cut": "AP"}
"""trec_eval's measures with cutoffs (name.k, name_k) -> family."""

TREC_EVAL_WHOLE = {"ndcg": "nDCG", "map": "AP", "recip_rank": "RR", "Rprec": "Rprec"}
"""trec_eval's measures of the whole run -> family."""

EVALFAST = {"hit_rate": "Success", "precision": "P", "recall": "R", "mrr": "RR", "ndcg": "nDCG", "map": "AP"}
"""evalfast's name@k -> family, in the order `evalfast eval` reports them (see evalfast.metrics.METRICS)."""

EVALFAST_WHOLE = {"r_precision": "Rprec"}

ACCEPTED = ("ir-measures' P@k, R@k, Success@k, nDCG, nDCG@k, AP, AP@k, RR, RR@k, Rprec (R-Prec), Judged, Judged@k, "
            "with (rel=N) on P, R, Success, AP, RR and Rprec, e.g. P(rel=2)@5; trec_eval's P.k (P_k), recall.k, "
            "success.k, ndcg_cut.k, map_cut.k, ndcg, map, recip_rank, Rprec; evalfast's precision@k, recall@k, "
            "hit_rate@k, mrr@k, ndcg@k, map@k, r_precision")

MAX_CUTOFF = 2**31 - 1

_IR_MEASURES = re.compile(r"(?P<name>[A-Za-z][\w-]*)(?:\((?P<params>[^()]*)\))?(?:@(?P<cutoff>\d+))?")
_TREC_EVAL = re.compile(r"(?P<name>\w+)[._](?P<cutoff>\d+)")
_DOTTED = re.compile(r"(?P<name>\w+)\.\d+")


def parse_measure(text: str) -> Measure:
    """The Measure a name stands for; EvalfastError naming it, what is wrong and the accepted forms."""
    try:
        measure = _measure(text)
    except ValueError as error:
        raise EvalfastError(f"--measure {text!r}: {error}; accepted: {ACCEPTED}") from None
    if measure is None:
        raise EvalfastError(f"--measure {text!r}: unknown measure; accepted: {ACCEPTED}")
    return measure


def _measure(text: str) -> Measure | None:
    """The Measure text names, None if no form matches; ValueError if a form matches with wrong parameters."""
    if text in TREC_EVAL_WHOLE or text in EVALFAST_WHOLE:
        return Measure({**TREC_EVAL_WHOLE, **EVALFAST_WHOLE}[text])
    found = _IR_MEASURES.fullmatch(text)
    if found and found["name"] in IR_MEASURES:
        return Measure(IR_MEASURES[found["name"]], _cutoff(found["cutoff"]), _rel(found["params"]))
    if found and found["name"] in EVALFAST and found["cutoff"] and found["params"] is None:
        return Measure(EVALFAST[found["name"]], _cutoff(found["cutoff"]))
    found = _TREC_EVAL.fullmatch(text)
    if found and found["name"] in TREC_EVAL_CUT:
        return Measure(TREC_EVAL_CUT[found["name"]], _cutoff(found["cutoff"]))
    return None


def _cutoff(digits: str | None) -> int | None:
    """The cutoff k of "@k", ".k" or "_k"; ValueError outside 1 .. MAX_CUTOFF."""
    if digits is None:
        return None
    if not 1 <= int(digits) <= MAX_CUTOFF:
        raise ValueError(f"cutoff {int(digits)}: give an integer from 1 to {MAX_CUTOFF:,}")
    return int(digits)


def _rel(params: str | None) -> int | None:
    """N of the parameters "rel=N" (None when there are none); ValueError for any other parameter."""
    if params is None or not params.strip():
        return None
    name, _, value = (part.strip() for part in params.partition("="))
    if name != "rel" or not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(f"the only parameter evalfast takes is rel=N (an integer), not {params.strip()!r}")
    return int(value)


def split_names(values: Sequence[str]) -> list[str]:
    """The measure names in --measure values: split at commas and spaces outside parentheses, each number
    after a trec_eval name.k read as another cutoff of that name (P.5,10 -> P.5, P.10)."""
    names: list[str] = []
    for value in values:
        for piece in re.findall(r"(?:[^,\s(]|\([^)]*\)?)+", value):
            dotted = _DOTTED.fullmatch(names[-1]) if names else None
            names.append(f"{dotted['name']}.{piece}" if piece.isdigit() and dotted else piece)
    return list(dict.fromkeys(names))


def parse_measures(values: Sequence[str]) -> list[tuple[str, Measure]]:
    """(name as given, Measure) for each name in the --measure values (see split_names); EvalfastError for none."""
    names = split_names(values)
    if not names:
        raise EvalfastError(f"--measure: no measure given; accepted: {ACCEPTED}")
    return [(name, parse_measure(name)) for name in names]


def default_measures(ks: Sequence[int]) -> list[tuple[str, Measure]]:
    """evalfast's set, by evalfast's names: each EVALFAST name at every cutoff in ks, then r_precision."""
    named = [(f"{name}@{k}", Measure(family, k)) for name, family in EVALFAST.items() for k in ks]
    return named + [(name, Measure(family)) for name, family in EVALFAST_WHOLE.items()]
