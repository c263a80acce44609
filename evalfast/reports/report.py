"""Reports of evaluations: aligned terminal tables, Markdown, and JSON for machines."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evalfast.metrics.similarity import SIMULATED_NOTE

if TYPE_CHECKING:  # annotations only: `evalfast metrics` prints through this module and needs neither at run time
    from evalfast.comparison.stats import Interval
    from evalfast.evaluate import EvalResult

SCHEMA_VERSION = 3  # 2: intervals and the RAG-style metrics; 3: the model's conventions


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = (str(c) for c in cells)
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:]))]).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def metric_grid(metrics: dict[str, float]) -> tuple[list[str], list[list[str]]]:
    """Metrics as a grid: a row per metric name, a column per cutoff ``@k``, and a ``value`` column for
    metrics without a cutoff (``r_precision``, ``mrr`` of the pairs protocol, similarity)."""
    by_name: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        name, _, k = key.partition("@")
        by_name.setdefault(name, {})[f"@{k}" if k else "value"] = value
    columns = list(dict.fromkeys(c for cells in by_name.values() for c in cells if c != "value"))
    if any("value" in cells for cells in by_name.values()):
        columns.append("value")
    rows = [[name, *(_number(cells[c]) if c in cells else "" for c in columns)] for name, cells in by_name.items()]
    return ["metric", *columns], rows


def _summary_lines(result: EvalResult) -> list[str]:
    c, t, e = result.counts, result.timings, result.embedding
    lines = [f"model   {result.model} (sha256 {result.model_sha256[:12]}), {result.precision} on {result.device}"]
    if result.conventions:
        lines.append(f"ranked  by {_conventions_line(result.conventions)}")
    split = f" (split {result.split})" if result.split else ""
    lines.append(f"golden  {result.golden}{split}: {c['queries']} queries, {c['documents']} documents, protocol {result.protocol}")
    if result.protocol == "pairs":
        lines.append(f"rows    {c['rows']} scored one by one ({c['positive_rows']} positive), the seed's row-wise protocol")
    else:
        lines.append(f"scored  {c['queries_evaluated']} queries; {c['queries_skipped_no_relevant']} skipped "
                     "(no relevant document)")
    lines.append(f"embed   {_embedding_line(c, t, e)}; search {t['search_seconds']:.3f} s; "
                 f"metrics {t['metrics_seconds']:.3f} s")
    return lines


def _embedding_line(counts: dict, timings: dict, embedding: dict) -> str:
    """"660 texts (documents and queries) in 3.65 s: 181 texts/s, 9,400 tokens/s; distinct texts: 660 encoded, ...":
    both rates over the time printed beside them, which covers the documents and the queries."""
    n_texts, seconds = counts["documents"] + counts["queries"], timings["embed_seconds"]
    if not embedding["encoded"] and embedding["cached"]:
        rates = "all from the cache, so no encoding rate was measured"
    else:
        rates = (f"{n_texts / seconds:,.0f} texts/s, {embedding['tokens'] / seconds:,.0f} tokens/s"
                 + (" (cache hits included)" if embedding["cached"] else "")) if seconds > 0 else "too fast to time"
    return (f"{n_texts} texts (documents and queries) in {seconds:.2f} s: {rates}; distinct texts: "
            f"{embedding['encoded']} encoded, {embedding['cached']} from cache, {embedding['truncated']} truncated")


def _conventions_line(conventions: dict) -> str:
    """"cosine, 384 dimensions, 256 tokens, query prompt 'query: ', no document prompt"."""
    prompts = [f"{role} prompt {conventions[f'{role}_prompt']!r}" if conventions[f"{role}_prompt"] else f"no {role} prompt"
               for role in ("query", "document")]
    return ", ".join([conventions["similarity"], f"{conventions['dimension']} dimensions",
                      f"{conventions['max_seq_length']} tokens", *prompts])


INTERVAL_KEYS = ("hit_rate@10", "precision@10", "recall@10", "mrr@10", "ndcg@10", "map@100", "r_precision")


def _interval_rows(result: EvalResult, intervals: dict[str, Interval]) -> list[list[str]]:
    """Headline metrics and the RAG-style ones with their intervals (the JSON holds every metric's)."""
    keys = [k for k in INTERVAL_KEYS if k in intervals] + [k for k in result.rag if k in intervals]
    return [[key, _number(intervals[key].mean), f"[{_number(intervals[key].low)}, {_number(intervals[key].high)}]"]
            for key in keys]


def _sections(result: EvalResult, intervals: dict[str, Interval]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of each table of a result."""
    sections = [("Retrieval metrics", *metric_grid(result.metrics))]
    rows = _interval_rows(result, intervals)
    if rows:
        sections.append(("95% bootstrap intervals over queries (RAG-style: context precision and recall from "
                         "judged relevance)", ["metric", "mean", "95% interval"], rows))
    sections.append((f"Similarity ({SIMULATED_NOTE})", *metric_grid(result.similarity)))
    return sections


def format_result(result: EvalResult, intervals: dict[str, Interval]) -> str:
    """The terminal report: what was evaluated, the metric grid, intervals, similarity, timings."""
    parts = ["\n".join(_summary_lines(result))]
    parts += [f"{title}\n{text_table(headers, rows)}" for title, headers, rows in _sections(result, intervals)]
    return "\n\n".join(parts)


def result_markdown(result: EvalResult, intervals: dict[str, Interval]) -> str:
    """The report as Markdown."""
    summary = "\n".join(f"- {line}" for line in _summary_lines(result))
    sections = "\n\n".join(f"## {title}\n\n{markdown_table(headers, rows)}"
                             for title, headers, rows in _sections(result, intervals))
    return f"# evalfast evaluation\n\n{summary}\n\n{sections}\n"


def result_json(result: EvalResult, intervals: dict[str, Interval]) -> dict:
    """Everything but per-query arrays, machine-readable."""
    return {
        "schema_version": SCHEMA_VERSION,
        "model": result.model,
        "model_sha256": result.model_sha256,
        "precision": result.precision,
        "device": result.device,
        "golden": result.golden,
        "split": result.split,
        "protocol": result.protocol,
        "conventions": result.conventions,
        "metrics": {**result.metrics, **result.rag, **result.similarity},
        "intervals": {key: {"mean": i.mean, "low": i.low, "high": i.high} for key, i in intervals.items()},
        "notes": {"simulated_*": SIMULATED_NOTE, "intervals": "95% percentile bootstrap over queries, 1000 resamples",
                  "context_*": "RAG-style: context precision and recall from judged relevance, as RAGAS defines them"},
        "counts": result.counts,
        "timings": result.timings,
        "embedding": result.embedding,
    }


def _json_safe(value):
    """NaN and infinities become null; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def dumps(document: dict) -> str:
    """Indented JSON text, NaN written as null."""
    return json.dumps(_json_safe(document), indent=2) + "\n"


def _ratio(row: dict) -> str:
    if row["ratio_median"] is None:
        return "n/a"
    return f"{row['ratio_median']:.2f}x [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]"


def _optional(value, template: str, missing: str = "n/a") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else template.format(value)


def bench_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the bench table, one row per contender ("not run" where it was never timed)."""
    headers = ["contender", "device", "sentences/s", "tokens/s", "vs ST fp32 (median [min-max])", "peak RSS MB",
               "GPU MB", "max 1-cos", "mean 1-cos", "ΔnDCG@10"]
    cells = [[r["name"] + ("*" if r.get("note") else ""), r["device"],
              *(_optional(r[key], "{:,.0f}", "not run") for key in ("sentences_per_second", "tokens_per_second")),
              _ratio(r), _optional(r["peak_rss_mb"], "{:,.0f}"), _optional(r["peak_gpu_mb"], "{:,.0f}"),
              _optional(r["max_one_minus_cos"], "{:.1e}"), _optional(r["mean_one_minus_cos"], "{:.1e}"),
              _optional(r["ndcg10_delta"], "{:+.4f}")] for r in rows]
    return headers, cells


def bench_notes(document: dict) -> list[str]:
    """The bench's notes: the run's own (peers left out, the budget), then each starred contender's."""
    return [*document.get("notes", []), *(f"{r['name']}* ({r['device']}): {r['note']}" for r in document["rows"]
                                           if r.get("note"))]


def bench_markdown(document: dict) -> str:
    """The bench report: what ran where, the table, then the notes."""
    machine = document["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    notes = "".join(f"- {note}\n" for note in bench_notes(document))
    return (f"# evalfast bench\n\n- date: {document['date']}\n- command: `{document['command']}`\n"
            f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB"
            f"{', ' + machine['gpu'] if 'gpu' in machine else ''}; Python {machine['python']}\n- versions: {versions}\n"
            f"- texts: {document['n_texts']} ({document['mean_tokens']:.1f} tokens on average), {document['repeats']} "
            f"interleaved rounds; accuracy against sentence-transformers fp32 on the same device\n"
            f"- {_status(document)}\n\n"
            f"{markdown_table(*bench_table(document['rows']))}\n" + (f"\n## Notes\n\n{notes}" if notes else ""))


def _status(document: dict) -> str:
    status, budget = document["status"], document["budget"]
    if status == "complete":
        return f"status: complete, within the time budget ({budget})"
    if status == "running":
        return f"status: running (time budget {budget}); this file is rewritten after each contender and round"
    return f"status: {status} (time budget {budget}); the rows hold what was measured until then"
