"""Ranking metrics at scale: evalfast's metric engine against pytrec_eval, on CPU, in one process.

A seeded synthetic collection: ``--queries`` queries, each with 1-20 judged documents graded 0/1/2 drawn from a
corpus of ``--corpus`` doc ids, and a run of ``--depth`` distinct documents per query in which about 60% of each
query's judgments are retrieved, mostly near the top (sampled without replacement with weight 1 / (rank + 3)).
Retrieved judged documents are more often relevant than unretrieved ones.

Peers, timed in ``--repeats`` interleaved rounds whose order alternates, after one warm-up each:
  * evalfast: ``judge(run_doc_ids, qrels)`` + ``compute(judged, all METRICS, k = 1, 3, 5, 10, 100)`` +
    ``summarize(...)``, from int64 (n_queries, depth) run doc ids and a built ``Qrels``;
  * pytrec_eval: ``RelevanceEvaluator(qrels_dict, {P.10, recall.100, ndcg_cut.10, map_cut.100, recip_rank})`` +
    ``evaluate(run_dict)``. Building the two dicts from the arrays is timed once, on its own.

evalfast's judge() works on one thread per usable CPU (evalfast.metrics.judged.THREADS), pytrec_eval on one, so
the CPU seconds of each peer are reported next to its wall seconds. The ratio pytrec_eval / evalfast is computed
within each round. Per-query values of the shared measures must
agree to 1e-9 (P_10 = precision@10, recall_100 = recall@100, ndcg_cut_10 = ndcg@10, map_cut_100 = map@100,
recip_rank = mrr@depth).

    python benchmarks/bench_metrics.py                       # 100,000 queries x 100, 5 rounds
    python benchmarks/bench_metrics.py --queries 10000 --repeats 3

Prints a Markdown table and writes JSON to benchmarks/results/metrics-<date>-<time>.json.

With ``--whole-process``, whole processes from start to written file instead, on TREC files written by
``trec_files.py`` (``--queries`` x ``--depth`` run lines, ``--judged`` graded judgments per query; kept in
``--files-dir`` and reused; evalfast's bytecode compiled first, as installing it writes it): ``evalfast metrics --measure P@10,R@100,nDCG@10,AP,RR --json OUT`` against the
scripts of ``metrics_peers.py`` (a pytrec_eval script that parses the lines into dicts as a user would, and ranx's
``Qrels.from_file`` / ``Run.from_file`` / ``evaluate`` on every thread). One untimed warm-up round (the page cache,
ranx's numba cache), then ``--repeats`` rounds, each running the contenders in the same order (A, B, C, A, B, C,
...). Each process's wall seconds, CPU seconds and peak RSS come from ``os.wait4``; every run's means must equal
the pytrec_eval script's to 1e-9. trec_eval itself is not a contender: it is C source on GitHub, not on any
package registry this machine reaches, so it cannot be built here.

    python benchmarks/bench_metrics.py --whole-process --queries 20000 --repeats 5

Prints a Markdown table and writes JSON and Markdown to benchmarks/results/metrics-whole-<size>-<date>-<time>.*.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import importlib.util
import json
import os
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
from evalfast.data.qrels import Qrels, pair_keys
from evalfast.metrics import METRICS, compute, judge, summarize
from evalfast.reports.report import dumps

from bench_embed import load_average, positive_int, report_header
from metrics_peers import MEASURES
from trec_files import write_trec_files

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PEERS_SCRIPT = ROOT / "benchmarks" / "metrics_peers.py"
DEFAULT_FILES_DIR = Path(tempfile.gettempdir()) / "evalfast-bench-trec"
WHOLE_PACKAGES = ("numpy", "click", "pyarrow", "pytrec-eval-terrier", "ranx", "numba", "evalfast")
CONTENDERS = ("evalfast", "pytrec_eval", "ranx")
CONTENDER_LABELS = {"evalfast": "`evalfast metrics`", "pytrec_eval": "pytrec_eval script (dicts, line by line)",
                    "ranx": "ranx (from_file, evaluate)"}
TOLERANCE = 1e-9
KS = (1, 3, 5, 10, 100)
VERSION_PACKAGES = ("numpy", "pytrec-eval-terrier", "evalfast")
# pytrec_eval output key -> evalfast compute() key ("mrr@depth" is filled in once depth is known).
SHARED = {"P_10": "precision@10", "recall_100": "recall@100", "ndcg_cut_10": "ndcg@10", "map_cut_100": "map@100",
          "recip_rank": None}
TREC_MEASURES = {"P.10", "recall.100", "ndcg_cut.10", "map_cut.100", "recip_rank"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_metrics.py",
        description="Time evalfast judge+compute+summarize (every metric at k = 1, 3, 5, 10, 100 and r_precision) "
                    "against pytrec_eval computing five measures, interleaved in one process.",
        epilog="Only the per-round ratio is comparable across a noisy machine; absolute seconds are not.",
    )
    parser.add_argument("--queries", type=positive_int, default=100_000, help="queries (default: 100000)")
    parser.add_argument("--depth", type=positive_int, default=100, help="ranked docs per query (default: 100)")
    parser.add_argument("--corpus", type=positive_int, default=1_000_000, help="doc ids (default: 1000000)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds per peer (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data (default: 0)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where to write the JSON (default: benchmarks/results)")
    parser.add_argument("--whole-process", action="store_true",
                        help="time whole processes on TREC files: evalfast metrics, a pytrec_eval script and ranx")
    parser.add_argument("--judged", type=positive_int, default=12,
                        help="--whole-process: judgments per query, graded 0-2 (default: 12)")
    parser.add_argument("--files-dir", type=Path, default=DEFAULT_FILES_DIR,
                        help=f"--whole-process: where the TREC files are written and reused (default: "
                             f"{DEFAULT_FILES_DIR})")
    parser.add_argument("--timeout", type=positive_int, default=900,
                        help="--whole-process: seconds after which a contender's process is killed (default: 900)")
    parser.add_argument("--skip", action="append", default=[], choices=CONTENDERS[1:],
                        help="--whole-process: leave a peer out (repeatable)")
    args = parser.parse_args(argv)
    if args.depth < max(KS):
        parser.error(f"--depth {args.depth}: must be at least {max(KS)} (the largest cutoff)")
    if args.corpus < 2 * args.depth:
        parser.error(f"--corpus {args.corpus}: must be at least twice --depth")
    if args.results_dir.exists() and not args.results_dir.is_dir():
        parser.error(f"--results-dir {args.results_dir}: exists and is not a folder")
    return args


# ---------------------------------------------------------------------------------------------- data

def distinct_rows(rng: np.random.Generator, n_rows: int, width: int, n_values: int) -> np.ndarray:
    """int64 (n_rows, width): uniform draws from [0, n_values), redrawn until no row repeats a value."""
    rows = rng.integers(0, n_values, (n_rows, width))
    while True:
        order = np.argsort(rows, axis=1)
        ordered = np.take_along_axis(rows, order, axis=1)
        repeat = np.zeros(rows.shape, bool)
        np.put_along_axis(repeat, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1)
        if not repeat.any():
            return rows
        rows[repeat] = rng.integers(0, n_values, int(repeat.sum()))


def synthetic(n_queries: int, depth: int, n_docs: int, seed: int) -> tuple[np.ndarray, Qrels]:
    """A run, int64 (n_queries, depth) of distinct doc ids per row, and its Qrels (see the module docstring)."""
    rng = np.random.default_rng(seed)
    run = distinct_rows(rng, n_queries, depth, n_docs)
    n_judged = rng.integers(1, 21, n_queries)
    n_retrieved = np.minimum(rng.binomial(n_judged, 0.6), depth)
    # Weighted sampling without replacement (Efraimidis-Spirakis): the largest log(u) * (rank + 3) win.
    priority = np.log(rng.random((n_queries, depth))) * np.arange(3, depth + 3)
    ranks = np.argsort(-priority, axis=1)
    take = np.arange(depth) < n_retrieved[:, None]
    retrieved_query = np.nonzero(take)[0]
    retrieved_doc = run[retrieved_query, ranks[take]]
    missed_query = np.repeat(np.arange(n_queries), n_judged - n_retrieved)
    missed_doc = rng.integers(0, n_docs, missed_query.size)
    query = np.concatenate([retrieved_query, missed_query])
    doc = np.concatenate([retrieved_doc, missed_doc])
    relevance = np.concatenate([rng.choice(3, retrieved_query.size, p=[0.35, 0.4, 0.25]),
                                rng.choice(3, missed_query.size, p=[0.6, 0.25, 0.15])]).astype(np.float64)
    _, first = np.unique(pair_keys(query, doc, n_docs), return_index=True)  # a missed doc may repeat: keep one
    return run, Qrels(query[first], doc[first], relevance[first], n_queries, n_docs)


def to_dicts(run: np.ndarray, qrels: Qrels) -> tuple[dict, dict]:
    """pytrec_eval's inputs: {qid: {docid: int relevance}} and {qid: {docid: score}}, scores depth..1 by rank."""
    qids = [f"q{i}" for i in range(run.shape[0])]
    bounds = np.cumsum(np.bincount(qrels.query, minlength=run.shape[0]))[:-1]  # Qrels here are sorted by query
    docs = np.split(qrels.doc.astype(str), bounds)
    grades = np.split(qrels.relevance.astype(np.int64), bounds)
    qrels_dict = {q: dict(zip(d.tolist(), g.tolist())) for q, d, g in zip(qids, docs, grades)}
    scores = np.arange(run.shape[1], 0, -1, dtype=np.float64).tolist()  # distinct: no trec_eval tie-breaking
    run_dict = {q: dict(zip(row, scores)) for q, row in zip(qids, run.astype(str).tolist())}
    return qrels_dict, run_dict


# ---------------------------------------------------------------------------------------------- machine

# ---------------------------------------------------------------------------------------------- report

def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "median": statistics.median(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def markdown(doc: dict) -> str:
    ef, pt, ratio, data = doc["evalfast"], doc["pytrec_eval"], doc["ratio_pytrec_eval_over_evalfast"], doc["data"]
    check = doc["identical_values"]
    return "\n".join([
        f"{data['queries']:,} queries x {data['depth']} docs, {data['judgments']:,} judgments "
        f"({data['queries_with_relevant']:,} queries with a relevant doc); {doc['repeats']} interleaved rounds "
        "after one warm-up each",
        "",
        "| Peer | what | seconds/round median [min, max] | CPU s/round (median) |",
        "|---|---|---:|---:|",
        f"| evalfast judge + compute + summarize | {ef['values']} values per query | "
        f"{ef['seconds']['median']:.3f} [{ef['seconds']['min']:.3f}, {ef['seconds']['max']:.3f}] | "
        f"{ef['cpu_seconds']['median']:.3f} |",
        f"| pytrec_eval RelevanceEvaluator + evaluate | 5 measures per query | "
        f"{pt['seconds']['median']:.3f} [{pt['seconds']['min']:.3f}, {pt['seconds']['max']:.3f}] | "
        f"{pt['cpu_seconds']['median']:.3f} |",
        f"| (pytrec_eval: building its two dicts from the arrays, once) | | {pt['dict_build_seconds']:.3f} | |",
        f"| (evalfast: building Qrels from the arrays, once) | | {ef['qrels_build_seconds']:.3f} | |",
        "",
        "evalfast stages, median over the rounds: "
        + ", ".join(f"{stage} {value:.3f} s" for stage, value in ef["stage_seconds_median"].items()),
        "",
        f"Per-round ratio pytrec_eval / evalfast: median **{ratio['median']:.1f}x** "
        f"[min {ratio['min']:.1f}x, max {ratio['max']:.1f}x] "
        f"(rounds: {', '.join(f'{r:.1f}' for r in ratio['values'])})",
        "",
        f"Identical values (per query, tolerance 1e-9): {'yes' if check['ok'] else 'NO'}; max |diff| "
        + ", ".join(f"{k} {v:.1e}" for k, v in check["max_abs_diff"].items()),
    ])


# ---------------------------------------------------------------------------------------------- whole process

def trec_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """The qrels and run files of this size and seed in --files-dir, written once (a marker says they are whole)."""
    folder = args.files_dir / f"{args.queries}x{args.depth}-judged{args.judged}-corpus{args.corpus}-seed{args.seed}"
    done = folder / "complete"
    if not done.is_file():
        print(f"writing TREC files into {folder} ...", file=sys.stderr, flush=True)
        write_trec_files(folder, args.queries, args.depth, args.judged, args.corpus, args.seed)
        done.touch()
    return folder / "qrels.txt", folder / "run.txt"


def count_lines(path: Path) -> int:
    """Lines in a file, read in 16 MiB blocks."""
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))


def contender_commands(qrels: Path, run: Path, out: Path, skip: list[str]) -> dict[str, list[str]]:
    """Each contender's command line; each writes its means as JSON ({"metrics": {ir-measures name: mean}}) to
    out/<name>.json."""
    python = os.path.abspath(sys.executable)  # the virtualenv's, with any ".." taken out, its links kept
    script = Path(python).with_name("evalfast")
    evalfast = [str(script)] if script.is_file() else [python, "-m", "evalfast"]
    commands = {"evalfast": [*evalfast, "metrics", "--qrels", str(qrels), "--run", str(run),
                             "--measure", ",".join(MEASURES), "--json", str(out / "evalfast.json")]}
    for peer in CONTENDERS[1:]:
        if peer not in skip:
            commands[peer] = [python, str(PEERS_SCRIPT), peer, str(qrels), str(run), str(out / f"{peer}.json")]
    return commands


def run_process(command: list[str], out: Path, timeout: float) -> dict:
    """Run one contender to its end (killed after ``timeout`` seconds): wall and CPU seconds, peak RSS (MB) and the
    JSON it wrote."""
    out.unlink(missing_ok=True)
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = threading.Timer(timeout, process.kill)
        deadline.start()
        _, status, usage = os.wait4(process.pid, 0)
        deadline.cancel()
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            stderr.seek(0)
            ending = f"was killed after {timeout:g} s" if seconds >= timeout else f"exited {process.returncode}"
            raise RuntimeError(f"{shlex.join(command)} {ending}:\n{stderr.read().decode(errors='replace')[-3000:]}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "document": json.loads(out.read_text())}


def value_differences(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per contender and measure, the largest |mean - the pytrec_eval script's mean| over all its runs."""
    reference = runs["pytrec_eval"][0]["document"]["metrics"]
    return {name: {measure: max(abs(run["document"]["metrics"][measure] - reference[measure]) for run in done)
                   for measure in MEASURES} for name, done in runs.items()}


def native_reader_built() -> bool:
    """Whether evalfast's C table reader is built here (else `evalfast metrics` reads with numpy)."""
    return importlib.util.find_spec("evalfast.data._tablescan") is not None


def whole_process(args: argparse.Namespace, started: dt.datetime, command_line: str) -> int:
    """The --whole-process benchmark (see the module docstring); 0 when every contender's means are identical."""
    qrels, run = trec_files(args)
    compileall.compile_dir(ROOT / "evalfast", quiet=1)  # bytecode, as installing a wheel writes it
    with tempfile.TemporaryDirectory() as scratch:
        commands = contender_commands(qrels, run, Path(scratch), args.skip)
        load_before = load_average()
        for name, command in commands.items():
            warm = run_process(command, Path(scratch) / f"{name}.json", args.timeout)
            print(f"warm-up {name}: {warm['seconds']:.2f} s", file=sys.stderr, flush=True)
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for round_no in range(1, args.repeats + 1):
            for name, command in commands.items():
                runs[name].append(run_process(command, Path(scratch) / f"{name}.json", args.timeout))
            print(f"round {round_no}/{args.repeats}: " + ", ".join(f"{name} {done[-1]['seconds']:.2f} s"
                                                                  for name, done in runs.items()),
                  file=sys.stderr, flush=True)
        load_after = load_average()
    differences = value_differences(runs)
    evalfast_document = runs["evalfast"][-1]["document"]
    document = {
        **report_header("metrics-whole-process", started, command_line, load_before, load_after, WHOLE_PACKAGES),
        "data": {"queries": args.queries, "depth": args.depth, "judged_per_query": args.judged, "corpus": args.corpus,
                 "seed": args.seed, "run_lines": count_lines(run), "qrels_lines": count_lines(qrels),
                 "run_mb": run.stat().st_size / 2**20, "qrels_mb": qrels.stat().st_size / 2**20,
                 "evalfast_average": evalfast_document.get("average")},
        "evalfast_reader": ("native (evalfast.data._tablescan)" if native_reader_built()
                            else "numpy (no C extension built)"),
        "repeats": args.repeats,
        "commands": {name: shlex.join(command) for name, command in commands.items()},
        "contenders": {name: {"seconds": summary([r["seconds"] for r in done]),
                              "cpu_seconds": summary([r["cpu_seconds"] for r in done]),
                              "peak_rss_mb": summary([r["peak_rss_mb"] for r in done]),
                              "means": done[-1]["document"]["metrics"]} for name, done in runs.items()},
        "ratio_pytrec_eval_script_over": {name: summary([p["seconds"] / r["seconds"]
                                                         for p, r in zip(runs["pytrec_eval"], done)])
                                          for name, done in runs.items()},
        "identical_values": {"tolerance": TOLERANCE, "reference": "pytrec_eval",
                             "ok": all(d <= TOLERANCE for diffs in differences.values() for d in diffs.values()),
                             "max_abs_diff": differences},
    }
    text = whole_process_markdown(document)
    print(text)
    stem = args.results_dir / f"metrics-whole-{args.queries}x{args.depth}-{started.strftime('%Y-%m-%d-%H%M%S')}"
    write_text(stem.with_suffix(".json"), dumps(document))
    write_text(stem.with_suffix(".md"), text + "\n")
    print(f"\nwrote {stem}.json and {stem}.md", file=sys.stderr)
    return 0 if document["identical_values"]["ok"] else 1


def whole_process_markdown(doc: dict) -> str:
    """The table of wall seconds, CPU seconds, peak RSS and speed against the pytrec_eval script, then the means."""
    data, contenders, ratios = doc["data"], doc["contenders"], doc["ratio_pytrec_eval_script_over"]
    average = data["evalfast_average"] or {}
    lines = [
        f"{data['queries']:,} queries x {data['depth']} ({data['run_lines']:,} run lines, {data['run_mb']:.0f} MB; "
        f"{data['qrels_lines']:,} qrels lines, {average.get('judged_without_relevant', '?')} queries without a "
        f"relevant document); {doc['repeats']} rounds after a warm-up, contenders in turn; evalfast's reader: "
        f"{doc['evalfast_reader']}",
        "",
        "| contender | wall s, median [min, max] | CPU s, median | peak RSS MB, median [min, max] "
        "| pytrec_eval script / contender, median [min, max] |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in contenders.items():
        wall, rss, ratio = row["seconds"], row["peak_rss_mb"], ratios[name]
        lines.append(f"| {CONTENDER_LABELS[name]} | {wall['median']:.2f} [{wall['min']:.2f}, {wall['max']:.2f}] | "
                     f"{row['cpu_seconds']['median']:.2f} | {rss['median']:.0f} [{rss['min']:.0f}, {rss['max']:.0f}] | "
                     f"{ratio['median']:.2f}x [{ratio['min']:.2f}, {ratio['max']:.2f}] |")
    check = doc["identical_values"]
    lines += ["", "| measure | " + " | ".join(CONTENDER_LABELS[name] for name in contenders) + " |",
              "|---|" + "---:|" * len(contenders)]
    lines += [f"| {measure} | " + " | ".join(f"{row['means'][measure]:.12f}" for row in contenders.values()) + " |"
              for measure in MEASURES]
    verdicts = []
    for name, diffs in check["max_abs_diff"].items():
        if name != check["reference"]:
            off = [f"{measure} by {d:.1e}" for measure, d in diffs.items() if d > check["tolerance"]]
            verdicts.append(f"{name} " + (f"NO ({', '.join(off)})" if off else f"yes (largest {max(diffs.values()):.1e})"))
    lines += ["", f"Means equal to the pytrec_eval script's, in every run, to {check['tolerance']:g}: "
                  + "; ".join(verdicts)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    command_line = shlex.join(["python", "benchmarks/bench_metrics.py", *(sys.argv[1:] if argv is None else argv)])
    if args.whole_process:
        return whole_process(args, started, command_line)
    import pytrec_eval

    start = time.perf_counter()
    run, qrels = synthetic(args.queries, args.depth, args.corpus, args.seed)
    generate_seconds = time.perf_counter() - start
    start = time.perf_counter()
    qrels = Qrels(qrels.query, qrels.doc, qrels.relevance, qrels.n_queries, qrels.n_docs)  # timed: validation
    qrels_seconds = time.perf_counter() - start
    start = time.perf_counter()
    qrels_dict, run_dict = to_dicts(run, qrels)
    dict_seconds = time.perf_counter() - start
    shared = {trec: ours or f"mrr@{args.depth}" for trec, ours in SHARED.items()}
    print(f"data: {generate_seconds:.1f} s to generate, {dict_seconds:.1f} s to build pytrec_eval's dicts",
          file=sys.stderr)

    stages: dict[str, list[float]] = {"judge": [], "compute": [], "summarize": []}

    def run_evalfast():
        start, cpu = time.perf_counter(), time.process_time()
        judged = judge(run, qrels)
        judged_at = time.perf_counter()
        per_query = compute(judged, list(METRICS), KS)
        computed_at = time.perf_counter()
        means, n_evaluated, _ = summarize(per_query, judged.n_relevant)
        end = time.perf_counter()
        for stage, seconds in zip(stages, (judged_at - start, computed_at - judged_at, end - computed_at)):
            stages[stage].append(seconds)
        return end - start, time.process_time() - cpu, (per_query, means, n_evaluated)

    def run_pytrec_eval():
        start, cpu = time.perf_counter(), time.process_time()
        result = pytrec_eval.RelevanceEvaluator(qrels_dict, TREC_MEASURES).evaluate(run_dict)
        return time.perf_counter() - start, time.process_time() - cpu, result

    peers = {"pytrec_eval": run_pytrec_eval, "evalfast": run_evalfast}
    load_before = load_average()
    warm = {name: peer()[0] for name, peer in peers.items()}
    print(f"warm-up: pytrec_eval {warm['pytrec_eval']:.3f} s, evalfast {warm['evalfast']:.3f} s", file=sys.stderr)
    seconds: dict[str, list[float]] = {name: [] for name in peers}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in peers}
    orders, last = [], {}
    for round_no in range(args.repeats):
        order = ("pytrec_eval", "evalfast") if round_no % 2 == 0 else ("evalfast", "pytrec_eval")
        orders.append(list(order))
        for name in order:
            elapsed, cpu, last[name] = peers[name]()
            seconds[name].append(elapsed)
            cpu_seconds[name].append(cpu)
        print(f"round {round_no + 1}/{args.repeats} ({' then '.join(order)}): pytrec_eval "
              f"{seconds['pytrec_eval'][-1]:.3f} s, evalfast {seconds['evalfast'][-1]:.3f} s", file=sys.stderr)
    load_after = load_average()

    per_query, means, n_evaluated = last["evalfast"]
    trec = last["pytrec_eval"]
    qids = [f"q{i}" for i in range(args.queries)]
    max_diff = {}
    for trec_name, our_name in shared.items():
        theirs = np.array([trec[q][trec_name] for q in qids])
        max_diff[trec_name] = float(np.abs(theirs - per_query[our_name]).max())
    ratios = [p / e for p, e in zip(seconds["pytrec_eval"], seconds["evalfast"])]

    document = {
        **report_header("metrics", started, command_line, load_before, load_after, VERSION_PACKAGES),
        "data": {"queries": args.queries, "depth": args.depth, "corpus": args.corpus, "seed": args.seed,
                 "judgments": int(qrels.query.size), "queries_with_relevant": n_evaluated,
                 "mean_precision_at_10_all_queries": float(per_query["precision@10"].mean()),
                 "generate_seconds": generate_seconds},
        "repeats": args.repeats,
        "round_orders": orders,
        "warmup_seconds": warm,
        "evalfast": {"seconds": summary(seconds["evalfast"]), "cpu_seconds": summary(cpu_seconds["evalfast"]),
                     "values": len(per_query), "ks": list(KS),
                     "stage_seconds_median": {stage: statistics.median(v[1:]) for stage, v in stages.items()},
                     "metrics": list(METRICS), "qrels_build_seconds": qrels_seconds,
                     "means_evaluated_queries": means},
        "pytrec_eval": {"seconds": summary(seconds["pytrec_eval"]), "cpu_seconds": summary(cpu_seconds["pytrec_eval"]),
                        "measures": sorted(TREC_MEASURES),
                        "dict_build_seconds": dict_seconds},
        "ratio_pytrec_eval_over_evalfast": summary(ratios),
        "identical_values": {"tolerance": 1e-9, "ok": all(v <= 1e-9 for v in max_diff.values()),
                             "pairs": shared, "max_abs_diff": max_diff},
    }
    print(markdown(document))
    out = args.results_dir / f"metrics-{started.strftime('%Y-%m-%d-%H%M%S')}.json"
    write_text(out, dumps(document))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0 if document["identical_values"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
