"""Where the encoder's time goes on one device: tokenising alone, the model alone on ready-made batches, and the
whole pipeline under several thread settings.

    python benchmarks/bench_pipeline.py --device cuda --precision fp16 --n 200000
    python benchmarks/bench_pipeline.py --device cpu --n 4000 --threads 1 --processes 0 --runners 1

Stages, each on the same texts (the hand-written golden set's corpus and queries, cycled to ``--n`` distinct texts):
  * tokenise: ``Encoder._tokenized_chunks``, texts to padded, length-sorted batches with no model, for each
    tokenising setting: ``--threads`` threads in this process, or ``--processes`` worker processes;
  * model: ``session.run`` on those ready-made batches, one after another: the ceiling for the pipeline;
  * pipeline: ``Encoder.encode`` end to end, for every (tokenising setting, runners) pair.
Each stage runs ``--repeats`` times after one warm-up; the median is reported, with the pipeline's share of the
model-alone rate. The pipeline's vectors are checked against the model-alone vectors (max 1-cos).

Prints a table and writes JSON to ``--json`` (default benchmarks/results/pipeline-<date>-<time>.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from evalfast.atomic import write_text
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.parity import one_minus_cos
from evalfast.model.variants import ensure_variant
from evalfast.reports.report import dumps

from bench_embed import (DEFAULT_EXPORT, RESULTS_DIR, cycle_distinct, golden_pool, load_average, positive_int,
                         report_header)

PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "tokenizers", "evalfast")


def int_list(text: str) -> list[int]:
    return [positive_int(part) for part in text.split(",") if part != "0"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_pipeline.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, default=DEFAULT_EXPORT, help=f"export folder (default: {DEFAULT_EXPORT})")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", default="fp32", help="fp32, fp16 (cuda) or int8 (cpu)")
    parser.add_argument("--n", type=positive_int, default=20_000, help="texts (default: 20000)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per stage (default: 3)")
    parser.add_argument("--threads", type=int_list, default=[1, 2], help="tokenizer threads to try, e.g. 1,2")
    parser.add_argument("--processes", type=int_list, default=[2, 4, 8],
                        help="tokenizer worker processes to try, e.g. 2,4,8 (0: none)")
    parser.add_argument("--runners", type=int_list, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON")
    return parser.parse_args(argv)


def median_seconds(work, repeats: int) -> float:
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tokenise_all(encoder: Encoder, texts: list[str]) -> list:
    """Every chunk of ``texts``, packed into batches, tokenised as ``encoder``'s config says."""
    if encoder.config.tokenizer_processes:
        return list(encoder._tokenized_chunks(texts, encoder._worker_pool()))
    with ThreadPoolExecutor(encoder.config.tokenizer_threads) as pool:
        return list(encoder._tokenized_chunks(texts, pool))


def run_model(encoder: Encoder, chunks: list, n_texts: int) -> np.ndarray:
    vectors = np.empty((n_texts, encoder.dimension), np.float32)
    for chunk in chunks:
        for batch in chunk.batches:
            encoder._run_into(vectors, chunk.start, batch)
    return vectors


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = dt.datetime.now(dt.timezone.utc), load_average()
    ensure_variant(args.export, args.precision)
    base = replace(EncoderConfig.for_device(args.device, args.precision), tokenizer_threads=1,
                   tokenizer_processes=0, runners=1)
    texts = cycle_distinct(golden_pool(), args.n)
    encoder = Encoder(args.export, base)
    chunks = tokenise_all(encoder, texts)
    n_tokens = sum(chunk.n_tokens for chunk in chunks)
    reference = run_model(encoder, chunks, len(texts))
    settings = [{"tokenizer_threads": t, "tokenizer_processes": 0} for t in args.threads] + [
        {"tokenizer_threads": 1, "tokenizer_processes": p} for p in args.processes]

    rows = []
    for setting in settings:
        tokenising = Encoder(args.export, replace(base, **setting))
        seconds = median_seconds(lambda: tokenise_all(tokenising, texts), args.repeats)
        rows.append({"stage": "tokenise", **setting, "runners": None, "seconds": seconds})
    model_seconds = median_seconds(lambda: run_model(encoder, chunks, len(texts)), args.repeats)
    rows.append({"stage": "model", "tokenizer_threads": None, "tokenizer_processes": None, "runners": 1,
                 "seconds": model_seconds})
    for setting in settings:
        for runners in args.runners:
            pipeline = Encoder(args.export, replace(base, runners=runners, **setting))
            vectors = pipeline.encode(texts).vectors
            seconds = median_seconds(lambda: pipeline.encode(texts), args.repeats)
            rows.append({"stage": "pipeline", **setting, "runners": runners, "seconds": seconds,
                         "max_one_minus_cos_vs_model": float(one_minus_cos(reference, vectors).max())})
    for row in rows:
        row["sentences_per_second"] = len(texts) / row["seconds"]
        row["share_of_model_rate"] = model_seconds / row["seconds"]

    command = " ".join(["python", *sys.argv])
    doc = report_header("pipeline", started, command, load_before, load_average(), PACKAGES) | {
        "device": args.device, "precision": args.precision, "n_texts": len(texts),
        "mean_tokens": n_tokens / len(texts), "config": vars(base), "rows": rows}
    print(f"{len(texts)} texts, {n_tokens / len(texts):.1f} tokens each, {args.device} {args.precision}")
    print(f"{'stage':<10}{'threads':>8}{'procs':>7}{'runners':>8}{'sent/s':>12}{'of model':>10}")
    for row in rows:
        print(f"{row['stage']:<10}{row['tokenizer_threads'] or '-':>8}{row['tokenizer_processes'] or '-':>7}"
              f"{row['runners'] or '-':>8}{row['sentences_per_second']:>12,.0f}{row['share_of_model_rate']:>10.2f}")
    target = args.json or RESULTS_DIR / f"pipeline-{started:%Y%m%d-%H%M%S}.json"
    write_text(target, dumps(doc))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
