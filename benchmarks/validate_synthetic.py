"""Does HNSW find the nearest documents of a synthetic corpus as well (or as badly) as those of a real one?

    python benchmarks/harvest_passages.py -o passages.txt
    python benchmarks/validate_synthetic.py --passages passages.txt --sizes 100000,480000

`evalfast latency --synthetic-docs` grows an index beyond what can be embedded by drawing documents around real
ones (evalfast.perf.latency.synthetic_corpus). Its recall@10 is only evidence about a real corpus of that size if the
generator makes neighbourhoods like real ones. This script checks that on real passages (their embeddings are
cached after the first run): for each size N it indexes N real passages, and N synthetic documents drawn around
a tenth of them (``--anchor-share``), builds HNSW32 over each, and reports recall@10 against exact search at
several efSearch values, for two query sets: held-out real passages (not indexed) and the golden set's queries.
Writes JSON to benchmarks/results/synthetic-<date>-<time>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import numpy as np

from evalfast.atomic import write_text
from evalfast.data.golden import load_golden
from evalfast.model.cache import EmbeddingCache, default_cache_dir
from evalfast.model.embeddings import embed
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.variants import ensure_variant
from evalfast.perf.latency import IndexSpec, build_index, recall_by_ef_search, synthetic_corpus
from evalfast.progress import progress_bar
from evalfast.reports.report import dumps
from evalfast.search.index import search

from bench_embed import DEFAULT_EXPORT, GOLDEN, RESULTS_DIR, load_average, report_header

PACKAGES = ("numpy", "onnxruntime", "faiss-cpu", "evalfast")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="validate_synthetic.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=Path, required=True, help="one real passage per line")
    parser.add_argument("--export", type=Path, default=DEFAULT_EXPORT)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--sizes", default="100000", help="corpus sizes, comma-separated (default: 100000)")
    parser.add_argument("--anchor-share", type=float, default=0.1, help="real documents the synthetic are drawn around")
    parser.add_argument("--ef-search", default="16,32,64,128,256")
    parser.add_argument("--held-out", type=int, default=1000, help="real passages kept out of the index as queries")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def neighbourhood_profile(corpus: np.ndarray, query_sets: dict[str, np.ndarray], ef_values: list[int],
                          seed: int) -> dict:
    """HNSW32 over ``corpus``: build cost, and per query set the exact top-10's cosines and recall@10 by efSearch."""
    built = build_index(corpus, IndexSpec("hnsw"), seed)
    profile = {"documents": len(corpus), "build_seconds": built.build_seconds}
    for name, queries in query_sets.items():
        exact = search(corpus, queries, 10, np.arange(len(corpus)))
        recall = recall_by_ef_search(built.index, queries, exact.doc_ids, ef_values)
        profile[name] = {"top1_cosine_median": float(np.median(exact.scores[:, 0])),
                         "top1_minus_top10_median": float(np.median(exact.scores[:, 0] - exact.scores[:, 9])),
                         "recall@10_by_ef_search": recall}
    return profile


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = dt.datetime.now(dt.timezone.utc), load_average()
    sizes, ef_values = [int(s) for s in args.sizes.split(",")], [int(e) for e in args.ef_search.split(",")]
    ensure_variant(args.export, args.precision)
    encoder = Encoder(args.export, EncoderConfig(precision=args.precision))
    cache = EmbeddingCache(default_cache_dir(), encoder.fingerprint)
    texts = args.passages.read_text(encoding="utf-8").splitlines()
    with progress_bar(len(texts), "embedding passages") as bar:
        passages = embed(encoder, texts, cache, bar.update).vectors
    order = np.random.default_rng(args.seed).permutation(len(passages))
    held_out, pool = passages[np.sort(order[: args.held_out])], order[args.held_out:]
    if max(sizes) > len(pool):
        print(f"--sizes: only {len(pool):,} passages are left to index after the held-out queries", file=sys.stderr)
        return 2
    query_sets = {"held_out_passages": held_out,
                  "golden_queries": embed(encoder, load_golden(GOLDEN).query_texts, cache).vectors}
    results, rng = [], np.random.default_rng(args.seed)
    for n in sizes:
        real = passages[np.sort(pool[:n])]
        anchors = real[np.sort(rng.permutation(n)[: max(1, int(n * args.anchor_share))])]
        for corpus_kind, corpus in (("real", real), ("synthetic", synthetic_corpus(anchors, n, args.seed))):
            print(f"  {corpus_kind} {n:,} ...", file=sys.stderr, flush=True)
            results.append({"corpus": corpus_kind, "anchors": len(anchors) if corpus_kind == "synthetic" else None,
                            **neighbourhood_profile(corpus, query_sets, ef_values, args.seed)})

    command = shlex.join(["python", "benchmarks/validate_synthetic.py", *(sys.argv[1:] if argv is None else argv)])
    doc = report_header("synthetic", started, command, load_before, load_average(), PACKAGES) | {
        "passages": len(passages), "held_out": args.held_out, "anchor_share": args.anchor_share,
        "precision": args.precision, "results": results}
    print("| corpus | documents | queries | top-1 cos | top-1 - top-10 | "
          + " | ".join(f"ef {ef}" for ef in ef_values) + " |")
    print("|---|---:|---|---:|---:|" + "---:|" * len(ef_values))
    for result in results:
        for name in query_sets:
            profile = result[name]
            print(f"| {result['corpus']} | {result['documents']:,} | {name} | {profile['top1_cosine_median']:.3f} | "
                  f"{profile['top1_minus_top10_median']:.3f} | "
                  + " | ".join(f"{r:.3f}" for r in profile["recall@10_by_ef_search"].values()) + " |")
    out = RESULTS_DIR / f"synthetic-{started:%Y%m%d-%H%M%S}.json"
    write_text(out, dumps(doc))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
