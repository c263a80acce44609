"""Latency reports: the terminal table made from a latency document (evalfast.perf.latency.run_latency's, kind
``evalfast.latency``)."""

from __future__ import annotations

from evalfast.perf.latency import PERCENTILES
from evalfast.reports.report import text_table


def index_summary(index: dict) -> str:
    """What was indexed and what it cost, in one phrase."""
    parts = ", ".join(f"{n:,} {name}" for name, n in index["composition"].items() if n)
    spec, settings = index["spec"], []
    if "HNSW" in index["factory"]:
        settings += [f"efSearch {spec['ef_search']}", f"efConstruction {spec['ef_construction']}"]
    if "IVF" in index["factory"]:
        settings.append(f"nprobe {spec['nprobe']}")
    factory = f"{index['factory']} ({', '.join(settings)})" if settings else index["factory"]
    return (f"{factory} over {index['documents']:,} documents ({parts}): built in "
            f"{index['build_seconds']:.1f} s, {index['size_bytes'] / 2**20:,.1f} MiB")


def _ms(values: dict, key: str) -> str:
    return f"{values[key]:.2f}" if key in values else "-"


def latency_text(document: dict) -> str:
    """Index and quality, then the latency table (total, embedding, search, queueing) and the sweep."""
    index, quality, load, settings = document["index"], document["quality"], document["load"], document["settings"]
    k = quality["k"]
    lines = [f"index   {index_summary(index)}",
             f"quality recall@{k} {quality[f'recall@{k}']:.4f} against exact search"
             + (f"; nDCG@{k} {quality[f'ndcg@{k}_index']:.4f} (exact {quality[f'ndcg@{k}_exact']:.4f}, "
                f"change {quality[f'ndcg@{k}_change']:+.4f})" if f"ndcg@{k}_index" in quality else ""),
             f"load    {settings['arrival']} arrivals at {settings['qps']:g}/s for {settings['duration_seconds']:g} s, "
             f"{settings['concurrency']} worker(s): {load['completed']} of {load['requests']} answered, "
             f"{load['errors']} errors, {load['achieved_qps']:.1f}/s achieved"]
    columns = [f"p{p:g}" for p in PERCENTILES] + ["max", "mean"]
    rows = [[name, *(_ms(load[key], c) for c in columns)]
            for name, key in (("total (from schedule)", "latency_ms"), ("embedding", "embed_ms"),
                              ("search", "search_ms"), ("queued", "queued_ms"))]
    parts = ["\n".join(lines), text_table(["ms", *columns], rows)]
    sweep = document.get("sweep")
    if sweep:
        rows = [[f"{t['qps']:.1f}", f"{t['p99_ms']:.2f}", f"{t['summary']['achieved_qps']:.1f}",
                 "yes" if t["within_bound"] else "no"] for t in sweep["tried"]]
        best = sweep["best_qps"]
        parts.append(f"sweep for p99 <= {sweep['p99_bound_ms']:g} ms: highest rate "
                     + (f"{best:.1f}/s" if best else "none (even the first rate missed the bound)") + "\n"
                     + text_table(["qps", "p99 ms", "achieved", "within bound"], rows))
    return "\n\n".join(parts)
