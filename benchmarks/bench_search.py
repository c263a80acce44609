"""Exact search at scale: evalfast's blocked search over a memory-mapped corpus, against one in-memory FAISS
IndexFlatIP and against the machine's raw float32 GEMM.

    python benchmarks/bench_search.py                                # 1,000,000 docs x 10,000 queries, 384 dims, k=100
    python benchmarks/bench_search.py --docs 200000 --queries 2000   # a quicker look

Data: seeded standard-normal vectors scaled to unit length. The corpus is written in chunks to a .npy file in a
temporary folder (``--tmp``) and every peer opens it read-only with ``mmap_mode="r"``; it is in the page cache when
the peers run (warm cache). Queries are held in memory.

Each peer runs in its own subprocess, so that its peak RSS is its own:
  * evalfast: ``evalfast.search.index.search(corpus_memmap, queries, k, tie_rank)``: FAISS brute-force knn per block of
    ``--block`` rows, heap merge, exact rescoring of k + margin candidates, trec_eval tie order;
  * faiss: the whole corpus added to one ``faiss.IndexFlatIP`` in memory (add timed on its own), then
    ``index.search(queries, k)``, the natural peer;
  * gemm: numpy float32 ``queries @ tile.T`` over the corpus in tiles of ``--gemm-tile`` rows into one reused
    buffer: the multiply no exact search avoids (2 x queries x docs x dim flops), without any top-k.
Rounds alternate the order of the peers; ratios are taken within a round, since the machine may be shared.

Peak RSS is reported twice: ``ru_maxrss`` (counts the corpus pages a peer touched through the memory map, which
are the kernel's reclaimable page cache) and the peak ``RssAnon`` sampled every 20 ms (memory the peer owns).

evalfast's top k is checked against IndexFlatIP's: the score lists must agree to 1e-5, and a document may be in one
list only if its score is within 1e-5 of the other list's k-th score (ties and 1-ulp rounding at the cutoff).

Prints a Markdown table and writes JSON to benchmarks/results/search-<date>-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from evalfast.atomic import write_text
from evalfast.reports.report import dumps

from bench_embed import load_average, machine_info, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PEERS = ("evalfast", "faiss", "gemm")
TOLERANCE = 1e-5  # scores of the two runs may differ by BLAS rounding
WRITE_CHUNK = 1 << 16  # corpus rows generated at once


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_search.py",
        description="Time evalfast's exact blocked search over a memory-mapped corpus against one in-memory "
                    "faiss.IndexFlatIP and the raw float32 GEMM of the same shapes.",
        epilog="Only ratios within one round are comparable on a shared machine.")
    parser.add_argument("--docs", type=positive_int, default=1_000_000, help="corpus rows (default: 1000000)")
    parser.add_argument("--queries", type=positive_int, default=10_000, help="queries (default: 10000)")
    parser.add_argument("--dim", type=positive_int, default=384, help="dimensions (default: 384)")
    parser.add_argument("--k", type=positive_int, default=100, help="hits per query (default: 100)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where evalfast finds its candidates (default: cpu; cuda needs onnxruntime-gpu)")
    parser.add_argument("--block", type=positive_int, default=None,
                        help="evalfast.search.index.DOC_BLOCK, corpus rows per FAISS call (default: evalfast's)")
    parser.add_argument("--gemm-tile", type=positive_int, default=8192,
                        help="corpus rows per matmul of the gemm peer (default: 8192)")
    parser.add_argument("--repeats", type=positive_int, default=1, help="rounds of all peers (default: 1)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help=f"comma-separated subset of {','.join(PEERS)} (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="folder for the temporary corpus file, docs x dim x 4 bytes (default: the system's)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where to write the JSON (default: benchmarks/results)")
    parser.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)  # internal: run one peer, print JSON
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.k > args.docs:
        parser.error(f"--k {args.k}: at most --docs ({args.docs})")
    args.peers = args.peers.split(",")
    if unknown := set(args.peers) - set(PEERS):
        parser.error(f"--peers: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PEERS)}")
    return args


# ---------------------------------------------------------------------------------------------- data

def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """float32 (n, dim) standard-normal rows scaled to unit length."""
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def write_data(folder: Path, n_docs: int, n_queries: int, dim: int, seed: int) -> None:
    """corpus.npy float32 (n_docs, dim), written WRITE_CHUNK rows at a time through a memmap, and queries.npy."""
    corpus_rng, query_rng = (np.random.default_rng([seed, stream]) for stream in (0, 1))
    corpus = np.lib.format.open_memmap(folder / "corpus.npy", mode="w+", dtype=np.float32, shape=(n_docs, dim))
    for start in range(0, n_docs, WRITE_CHUNK):
        corpus[start : start + WRITE_CHUNK] = unit_rows(corpus_rng, min(WRITE_CHUNK, n_docs - start), dim)
    corpus.flush()
    del corpus
    np.save(folder / "queries.npy", unit_rows(query_rng, n_queries, dim))


# ---------------------------------------------------------------------------------------------- peers (workers)

class AnonPeak(threading.Thread):
    """Samples this process's RssAnon every 20 ms; ``peak_bytes`` is the largest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_bytes = 0

    def run(self) -> None:
        status = Path("/proc/self/status")
        while True:
            for line in status.read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak_bytes = max(self.peak_bytes, int(line.split()[1]) * 1024)
            time.sleep(0.02)


def run_worker(args: argparse.Namespace) -> dict:
    """Run one peer on the data in ``args.data``; save its hits there; return its timings and memory."""
    import resource

    import faiss

    corpus = np.load(args.data / "corpus.npy", mmap_mode="r")
    queries = np.load(args.data / "queries.npy")
    sampler = AnonPeak()
    sampler.start()
    result: dict = {"peer": args.worker}
    if args.worker == "evalfast":
        import evalfast.search.index

        if args.block:
            evalfast.search.index.DOC_BLOCK = args.block
        result["doc_block"] = getattr(evalfast.search.index, "DOC_BLOCK", None)  # None: a version that did not block
        started = time.perf_counter()
        run = evalfast.search.index.search(corpus, queries, args.k, np.arange(len(corpus)), args.device)
        result["seconds"] = time.perf_counter() - started
        scores, ids = run.scores, run.doc_ids
    elif args.worker == "faiss":
        index = faiss.IndexFlatIP(corpus.shape[1])
        started = time.perf_counter()
        index.add(corpus)
        added = time.perf_counter()
        scores, ids = index.search(queries, args.k)
        result["add_seconds"], result["seconds"] = added - started, time.perf_counter() - added
    else:
        out = np.empty((len(queries), args.gemm_tile), np.float32)
        started = time.perf_counter()
        for start in range(0, len(corpus), args.gemm_tile):
            tile = corpus[start : start + args.gemm_tile]
            np.matmul(queries, tile.T, out=out[:, : len(tile)])
        result["seconds"] = time.perf_counter() - started
        scores = ids = None
    if ids is not None:
        np.save(args.data / f"{args.worker}-ids.npy", ids)
        np.save(args.data / f"{args.worker}-scores.npy", scores)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["peak_anon_rss_bytes"] = sampler.peak_bytes
    result["faiss_omp_threads"] = faiss.omp_get_max_threads()
    return result


def run_peer(args: argparse.Namespace, peer: str, data: Path) -> dict:
    """Run ``peer`` in a fresh subprocess of this script; its JSON result."""
    command = [sys.executable, __file__, "--worker", peer, "--data", str(data), "--k", str(args.k),
               "--gemm-tile", str(args.gemm_tile), "--device", args.device,
               *(["--block", str(args.block)] if args.block else [])]
    print(f"  {peer} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: the {peer} peer failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


# ---------------------------------------------------------------------------------------------- checks, report

def compare_runs(data: Path, k: int) -> dict:
    """evalfast's top k against IndexFlatIP's, allowing ties and rounding at the cutoff (see the module doc)."""
    ids = {peer: np.load(data / f"{peer}-ids.npy") for peer in ("evalfast", "faiss")}
    scores = {peer: np.load(data / f"{peer}-scores.npy") for peer in ("evalfast", "faiss")}
    score_diff = np.abs(scores["evalfast"].astype(np.float64) - scores["faiss"])
    only_in_one, unexplained = 0, 0
    for row in range(len(ids["evalfast"])):
        for this, other in (("evalfast", "faiss"), ("faiss", "evalfast")):
            alone = ~np.isin(ids[this][row], ids[other][row])
            only_in_one += int(alone.sum())
            unexplained += int((scores[this][row, alone] > scores[other][row, k - 1] + TOLERANCE).sum())
    return {"max_abs_score_diff": float(score_diff.max(initial=0.0)),
            "queries_with_identical_ids": int((ids["evalfast"] == ids["faiss"]).all(axis=1).sum()),
            "positions_with_different_ids": int((ids["evalfast"] != ids["faiss"]).sum()),
            "ids_in_one_top_k_only": only_in_one // 2,
            "ids_in_one_top_k_only_not_a_tie": unexplained,
            "ok": bool(score_diff.max(initial=0.0) <= TOLERANCE and unexplained == 0)}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def peer_summary(runs: list[dict], flops: float, n_queries: int, gemm_runs: list[dict] | None) -> dict:
    """Timings and memory of one peer over the rounds; the fraction of GEMM speed within each round."""
    seconds = [r["seconds"] for r in runs]
    out = {"seconds": summary(seconds), "queries_per_second": summary([n_queries / s for s in seconds]),
           "gflops": summary([flops / s / 1e9 for s in seconds]),
           "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
           "peak_anon_rss_bytes": max(r["peak_anon_rss_bytes"] for r in runs), "runs": runs}
    if gemm_runs:
        out["fraction_of_gemm"] = summary([g["seconds"] / s for g, s in zip(gemm_runs, seconds)])
    return out


def markdown(doc: dict) -> str:
    size = doc["size"]
    lines = [f"{size['docs']:,} docs x {size['queries']:,} queries, {size['dim']} dims, k={size['k']}; "
             f"{doc['gflop']:,.0f} GFLOP per search; {doc['repeats']} round(s), medians", "",
             "| Peer | seconds | queries/s | GFLOP/s | fraction of GEMM speed | peak RSS (GiB) | peak anon RSS (GiB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    labels = {"evalfast": f"evalfast search (memmap corpus, DOC_BLOCK {doc['evalfast_doc_block']})",
              "faiss": "faiss IndexFlatIP search", "gemm": "numpy float32 GEMM, no top-k"}
    for peer, label in labels.items():
        if peer not in doc["peers"]:
            continue
        p = doc["peers"][peer]
        fraction = f"{p['fraction_of_gemm']['median']:.2f}" if "fraction_of_gemm" in p else ""
        lines.append(f"| {label} | {p['seconds']['median']:.1f} | {p['queries_per_second']['median']:,.0f} | "
                     f"{p['gflops']['median']:.1f} | {fraction} | {p['peak_rss_bytes'] / 2**30:.2f} | "
                     f"{p['peak_anon_rss_bytes'] / 2**30:.2f} |")
    if "faiss" in doc["peers"]:
        add = statistics.median(r["add_seconds"] for r in doc["peers"]["faiss"]["runs"])
        lines += ["", f"IndexFlatIP.add (copying the corpus into the index, not in its seconds above): {add:.1f} s"]
    if speed := doc["evalfast_speed_vs_faiss"]:
        lines += ["", f"IndexFlatIP search time / evalfast search time, within each round: median "
                      f"{speed['median']:.2f}x (rounds: {', '.join(f'{v:.2f}' for v in speed['values'])})"]
    if doc.get("check"):
        c = doc["check"]
        lines += ["", f"Check against IndexFlatIP: {'OK' if c['ok'] else 'FAILED'}; max |score diff| "
                      f"{c['max_abs_score_diff']:.1e}; {c['queries_with_identical_ids']:,} of {size['queries']:,} "
                      f"queries with identical id lists; {c['ids_in_one_top_k_only']} ids in one top k only, "
                      f"{c['ids_in_one_top_k_only_not_a_tie']} of them not a near-tie at the cutoff"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main

def versions() -> dict:
    import faiss

    import evalfast

    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {"python": platform.python_version(), "numpy": np.__version__,
            "numpy_blas": f"{blas.get('name')} {blas.get('version')}", "faiss": faiss.__version__,
            "faiss_compile_options": faiss.get_compile_options().strip(),
            "evalfast": evalfast.__version__}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    started = dt.datetime.now(dt.timezone.utc)
    command_line = shlex.join(["python", "benchmarks/bench_search.py", *(sys.argv[1:] if argv is None else argv)])
    flops = 2.0 * args.queries * args.docs * args.dim
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-search-", dir=args.tmp) as tmp:
        data = Path(tmp)
        print(f"writing {args.docs:,} x {args.dim} corpus to {data} ...", file=sys.stderr, flush=True)
        generated = time.perf_counter()
        write_data(data, args.docs, args.queries, args.dim, args.seed)
        generate_seconds = time.perf_counter() - generated
        runs: dict[str, list[dict]] = {peer: [] for peer in args.peers}
        for round_index in range(args.repeats):
            print(f"round {round_index + 1}/{args.repeats}", file=sys.stderr, flush=True)
            for peer in args.peers if round_index % 2 == 0 else args.peers[::-1]:
                runs[peer].append(run_peer(args, peer, data))
        check = compare_runs(data, args.k) if {"evalfast", "faiss"} <= set(args.peers) else None
    peers = {peer: peer_summary(peer_runs, flops, args.queries, runs.get("gemm")) for peer, peer_runs in runs.items()}
    speed_vs = None
    if {"evalfast", "faiss"} <= set(runs):
        speed_vs = summary([f["seconds"] / e["seconds"] for e, f in zip(runs["evalfast"], runs["faiss"])])
    document = {
        "benchmark": "search",
        "started_utc": started.isoformat(timespec="seconds"),
        "command": command_line,
        "size": {"docs": args.docs, "queries": args.queries, "dim": args.dim, "k": args.k, "seed": args.seed},
        "evalfast_device": args.device,
        "gflop": flops / 1e9,
        "corpus_bytes": args.docs * args.dim * 4,
        "generate_seconds": generate_seconds,
        "repeats": args.repeats,
        "machine": machine_info() | {"load_average_before": load_before, "load_average_after": load_average()},
        "versions": versions(),
        "peers": peers,
        "evalfast_speed_vs_faiss": speed_vs,
        "evalfast_doc_block": runs["evalfast"][0]["doc_block"] if "evalfast" in runs else None,
        "check": check,
    }
    table = markdown(document)
    print(table)
    out = args.results_dir / f"search-{started.strftime('%Y%m%d-%H%M%S')}.json"
    write_text(out, dumps(document | {"markdown": table}))
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", file=sys.stderr)
    return 0 if check is None or check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
