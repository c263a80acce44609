"""Comparison reports: one JSON document (schema ``evalfast.compare``), and the terminal table, Markdown and HTML
made from it, so every format says the same thing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from evalfast.comparison.compare import Comparison, PairComparison, StatSettings, compare_results, relative_change
from evalfast.comparison.stats import Interval, format_difference
from evalfast.data.golden import GoldenSet
from evalfast.evaluate import EvalConfig, EvalResult
from evalfast.metrics.similarity import SIMULATED_NOTE
from evalfast.reports.per_query import first_relevant_rank
from evalfast.reports.report import markdown_table, text_table

SCHEMA_VERSION = 1
HEADLINE = "ndcg@10"
LISTED_QUERIES = 10  # queries listed as worse, better and hardest
HISTOGRAM_BINS = 40


def headline_metric(comparison: Comparison) -> str:
    return HEADLINE if HEADLINE in comparison.metric_names else comparison.metric_names[0]


def _interval(interval: Interval) -> dict:
    return {"mean": interval.mean, "low": interval.low, "high": interval.high}


def _histogram_edges(results: list[EvalResult]) -> np.ndarray:
    scores = np.concatenate([r.run.scores[np.isfinite(r.run.scores)] for r in results])
    low, high = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 1.0)
    return np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)


def _score_histogram(result: EvalResult, edges: np.ndarray) -> dict:
    """Scores of the retrieved documents of the evaluated queries, split by judged relevance."""
    rows = result.evaluated
    scores, relevance = result.run.scores[rows], result.run_relevance[rows]
    retrieved = np.isfinite(scores)
    return {"edges": edges.tolist(),
            "relevant": np.histogram(scores[retrieved & (relevance > 0)], edges)[0].tolist(),
            "non_relevant": np.histogram(scores[retrieved & (relevance <= 0)], edges)[0].tolist()}


def _model_entry(comparison: Comparison, index: int, edges: np.ndarray | None) -> dict:
    result, intervals = comparison.results[index], comparison.intervals[index]
    encoded, seconds = result.embedding.get("encoded", 0), result.timings.get("embed_seconds", 0.0)
    cached = result.embedding.get("cached", 0)
    entry = {
        "name": comparison.names[index], "model": result.model, "sha256": result.model_sha256,
        "precision": result.precision, "device": result.device,
        "metrics": {name: _interval(intervals[name]) for name in comparison.metric_names if name not in result.rag},
        "rag": {name: _interval(intervals[name]) for name in comparison.metric_names if name in result.rag},
        "similarity": result.similarity,
        # the rate of the texts encoded now; None when every embedding came from the cache (nothing was timed)
        "throughput": {"texts_per_second": encoded / seconds if encoded and seconds > 0 else None,
                       "texts_embedded": encoded, "texts_from_cache": cached,
                       "all_from_cache": not encoded and cached > 0,
                       "embed_seconds": seconds, "search_seconds": result.timings.get("search_seconds")},
    }
    if edges is not None:
        entry["score_histogram"] = _score_histogram(result, edges)
    return entry


def _query_rows(comparison: Comparison, golden: GoldenSet, order: np.ndarray, values: dict[str, np.ndarray]) -> list:
    query_index = np.flatnonzero(comparison.evaluated)
    return [{"query_id": golden.query_ids[query_index[i]], "text": golden.query_texts[query_index[i]],
             **{key: float(v[i]) for key, v in values.items()}} for i in order]


def _pair_entry(comparison: Comparison, pair: PairComparison, golden: GoldenSet | None, headline: str) -> dict:
    baseline, candidate = comparison.intervals[pair.baseline], comparison.intervals[pair.candidate]
    entry = {
        "baseline": comparison.names[pair.baseline], "candidate": comparison.names[pair.candidate],
        "metrics": {t.metric: {"baseline": baseline[t.metric].mean, "candidate": candidate[t.metric].mean,
                               "difference": t.test.difference, "low": t.test.low, "high": t.test.high,
                               "relative": relative_change(baseline[t.metric].mean, candidate[t.metric].mean),
                               "p_randomization": t.test.p_randomization, "p_t_test": t.test.p_t_test,
                               "p_randomization_holm": t.p_randomization_holm, "p_t_test_holm": t.p_t_test_holm,
                               "significant": t.significant,
                               "summary": format_difference(t.test, comparison.settings.alpha, t.p_randomization_holm)}
                    for t in pair.tests},
        "per_query_differences": {"metric": headline, "values": pair.differences[headline].tolist()},
    }
    if golden is not None and comparison.results[0].protocol == "qrels":
        evaluated = comparison.evaluated
        values = {"baseline": comparison.results[pair.baseline].per_query[headline][evaluated],
                  "candidate": comparison.results[pair.candidate].per_query[headline][evaluated]}
        order = np.argsort(pair.differences[headline], kind="stable")
        changed = pair.differences[headline][order] != 0
        entry["worse"] = _query_rows(comparison, golden, order[changed][:LISTED_QUERIES], values)
        better = order[::-1][pair.differences[headline][order[::-1]] != 0]
        entry["better"] = _query_rows(comparison, golden, better[:LISTED_QUERIES], values)
    return entry


def _hardest(comparison: Comparison, golden: GoldenSet, headline: str) -> list[dict]:
    """The queries with the lowest headline metric averaged over the models, with each model's first relevant rank."""
    evaluated = comparison.evaluated
    mean = np.mean([r.per_query[headline][evaluated] for r in comparison.results], axis=0)
    ranks = {name: first_relevant_rank(r)[evaluated] for name, r in zip(comparison.names, comparison.results)}
    hardest = np.argsort(mean, kind="stable")[:LISTED_QUERIES]
    rows = _query_rows(comparison, golden, hardest, {"mean": mean})
    for row, i in zip(rows, hardest):
        row["first_relevant_rank"] = {name: int(r[i]) or None for name, r in ranks.items()}
    return rows


def compare(results: Sequence[EvalResult], names: Sequence[str], golden: GoldenSet, split: str, config: EvalConfig,
            settings: StatSettings, command: str) -> dict:
    """Compare evaluations of ``golden`` (the first the baseline) and return the comparison's document, dated now:
    what ``evalfast compare`` and ``evalfast finetune`` report. ``config`` is the evaluations' (its cutoffs and RAG
    settings are recorded); ``command`` is recorded as given."""
    comparison = compare_results(list(results), list(names), settings)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return comparison_document(comparison, golden, split, command, date, config.ks, config.rag_k, config.rag_threshold)


def comparison_document(comparison: Comparison, golden: GoldenSet, split: str, command: str, date: str,
                        ks: tuple[int, ...], rag_k: int, rag_threshold: float) -> dict:
    """Everything about the comparison, machine-readable (``schema_version``, ``kind`` "evalfast.compare")."""
    qrels = comparison.results[0].protocol == "qrels"
    edges = _histogram_edges(comparison.results) if qrels else None
    headline = headline_metric(comparison)
    settings = comparison.settings
    return {
        "schema_version": SCHEMA_VERSION, "kind": "evalfast.compare", "date": date, "command": command,
        "golden": {"path": str(golden.source), "split": split, "queries": golden.n_queries, "documents": golden.n_docs,
                   "queries_scored": int(comparison.evaluated.sum()), "protocol": comparison.results[0].protocol},
        "settings": {"confidence": settings.confidence, "resamples": settings.resamples,
                     "permutations": settings.permutations, "seed": settings.seed, "alpha": settings.alpha,
                     "correction": "holm", "correction_across": "candidates", "ks": list(ks), "headline": headline,
                     "rag_k": rag_k,
                     "rag_threshold": rag_threshold},
        "notes": {"simulated": SIMULATED_NOTE,
                  "rag": "context precision and recall from judged relevance, as RAGAS defines them; the "
                         f"'(cosine >= {rag_threshold:g})' variants match documents by the evaluated model's own "
                         "embeddings, so they partly grade the model by itself"},
        "models": [_model_entry(comparison, i, edges) for i in range(len(comparison.results))],
        "comparisons": [_pair_entry(comparison, pair, golden, headline) for pair in comparison.pairs],
        "hardest": _hardest(comparison, golden, headline) if qrels else [],
    }


def _cell(interval: dict) -> str:
    return f"{interval['mean']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def _p(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else "< 0.001" if value < 0.001 else f"{value:.3f}"


def _tables(document: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of every table in the report."""
    models = document["models"]
    names = [m["name"] for m in models]
    tables = [("Metrics (mean [95% bootstrap interval])", ["metric", *names],
               [[metric, *(_cell(m["metrics"][metric]) for m in models)] for metric in models[0]["metrics"]])]
    if models[0]["rag"]:
        tables.append(("RAG-style retrieval metrics (" + document["notes"]["rag"] + ")", ["metric", *names],
                       [[metric, *(_cell(m["rag"][metric]) for m in models)] for metric in models[0]["rag"]]))
    for pair in document["comparisons"]:
        rows = [[metric, f"{t['baseline']:.3f}", f"{t['candidate']:.3f}",
                 f"{t['difference']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}]",
                 "n/a" if t["relative"] is None or not math.isfinite(t["relative"]) else f"{t['relative']:+.1%}",
                 _p(t["p_randomization_holm"]), _p(t["p_t_test_holm"]),
                 "significant" if t["significant"] else "not significant"]
                for metric, t in pair["metrics"].items()]
        tables.append((f"{pair['candidate']} against {pair['baseline']} (paired, Holm-corrected p)",
                       ["metric", pair["baseline"], pair["candidate"], "difference [95% CI]", "relative",
                        "p randomization", "p t-test", "verdict"], rows))
    tables.append((f"Simulated metrics ({document['notes']['simulated']})", ["metric", *names],
                   [[metric, *(f"{m['similarity'][metric]:.3f}" for m in models)] for metric in models[0]["similarity"]]))
    return tables


def _query_tables(document: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    headline = document["settings"]["headline"]
    tables = []
    for pair in document["comparisons"]:
        for key in ("worse", "better"):
            rows = [[q["query_id"], q["text"], f"{q['baseline']:.3f}", f"{q['candidate']:.3f}"] for q in pair.get(key, [])]
            if rows:
                tables.append((f"Queries where {pair['candidate']} is {key} than {pair['baseline']} ({headline})",
                               ["query", "text", pair["baseline"], pair["candidate"]], rows))
    if document["hardest"]:
        names = [m["name"] for m in document["models"]]
        tables.append((f"Hardest queries (lowest mean {headline}; first relevant rank per model, - for none)",
                       ["query", "text", "mean", *names],
                       [[q["query_id"], q["text"], f"{q['mean']:.3f}",
                         *(str(q["first_relevant_rank"][n] or "-") for n in names)] for q in document["hardest"]]))
    return tables


def correction_note(document: dict) -> str:
    """What the Holm correction covers (what :func:`evalfast.comparison.compare.compare_results` corrects), for
    every format."""
    n = len(document["comparisons"])
    across = ("the candidates compared with the baseline, metric by metric (with one candidate it leaves each "
              "p-value as it is)" if n == 1 else f"the {n} candidates compared with the baseline, metric by metric")
    return (f"p-values Holm-corrected across {across}; not across metrics, so among many metrics expect some false "
            "positives at this level")


def _value(value, spec: str) -> str:
    """``value`` formatted by ``spec``, "n/a" when missing or not finite (a document read back from JSON has None)."""
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def _headline_sentence(pair: dict, headline: str, level: str, alpha: float) -> str:
    """"B is better than A on ndcg@10: 0.719 against 0.643, a difference of +0.076 (+11.8%), 95% interval [...]"."""
    test = pair["metrics"][headline]
    difference = _value(test.get("difference"), "+.3f")
    if test.get("significant") is True and difference != "n/a":
        relation = "better than" if test["difference"] > 0 else "worse than"
    else:
        relation = "not significantly different from"
    relative = _value(test.get("relative"), "+.1%")
    p = _p(test.get("p_randomization_holm"))
    others = [t for metric, t in pair["metrics"].items() if metric != headline]
    return (f"{pair['candidate']} is {relation} {pair['baseline']} on {headline}: "
            f"{_value(test.get('candidate'), '.3f')} against {_value(test.get('baseline'), '.3f')}, a difference of "
            f"{difference}{'' if relative == 'n/a' else f' ({relative})'}, {level} interval "
            f"[{_value(test.get('low'), '+.3f')}, {_value(test.get('high'), '+.3f')}], Holm-corrected randomization "
            f"p {p if p.startswith('<') else f'= {p}'} (significant below {alpha:g}); "
            f"{sum(t.get('significant') is True for t in others)} of the other {len(others)} metrics differ "
            "significantly.")


def verdict_paragraph(document: dict) -> str:
    """The comparison in words: each candidate better, worse or not different on the headline metric, by how
    much, with its interval and corrected p-value; empty when nothing was compared."""
    settings, golden = document["settings"], document["golden"]
    headline = settings["headline"]
    pairs = [pair for pair in document["comparisons"] if headline in pair["metrics"]]
    if not pairs:
        return ""
    level = f"{settings['confidence']:.0%}"
    sentences = " ".join(_headline_sentence(pair, headline, level, settings["alpha"]) for pair in pairs)
    return (f"Verdict on {golden['queries_scored']} queries of {golden['path']} (split {golden['split']}), "
            f"higher {headline} being better: {sentences}")


def _header_lines(document: dict) -> list[str]:
    golden, settings = document["golden"], document["settings"]
    return [f"golden set: {golden['path']} (split {golden['split']}): {golden['queries_scored']} of "
            f"{golden['queries']} queries scored, {golden['documents']} documents",
            f"intervals: {settings['confidence']:.0%} percentile bootstrap over queries, {settings['resamples']} "
            f"resamples; tests: paired randomization ({settings['permutations']} sign flips) and paired t-test, "
            f"significant when the corrected randomization p < {settings['alpha']:g}; seed {settings['seed']}; "
            f"{correction_note(document)}",
            *(f"model {m['name']}: {m['model']} ({m['precision']} on {m['device']}, sha256 {m['sha256'][:12]})"
              for m in document["models"])]


def comparison_text(document: dict) -> str:
    """The terminal report: the verdict, header lines, then each table."""
    parts = [part for part in (verdict_paragraph(document), "\n".join(_header_lines(document))) if part]
    parts += [f"{title}\n{text_table(headers, rows)}" for title, headers, rows in _tables(document)]
    return "\n\n".join(parts)


def comparison_markdown(document: dict) -> str:
    """The report as Markdown, the per-query lists included."""
    header = "\n".join(f"- {line}" for line in _header_lines(document))
    sections = [f"## {title}\n\n{markdown_table(headers, rows)}"
                for title, headers, rows in _tables(document) + _query_tables(document)]
    verdict = verdict_paragraph(document)
    opening = f"{verdict}\n\n" if verdict else ""
    return f"# evalfast comparison\n\n{opening}{header}\n\n" + "\n\n".join(sections) + "\n"
