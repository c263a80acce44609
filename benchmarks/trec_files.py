"""Seeded TREC qrels and run files of any size, shaped like real ones, for timing readers and scorers.

``n_queries`` queries ("q0" ...) each judge ``judged`` documents graded 0/1/2 (about a third relevant) and retrieve
``depth`` distinct documents from a corpus of ``corpus`` ids ("doc0000000" ...), scores descending with six decimals
(ties happen), tag "bench". About half of each query's judgments are retrieved, all in the top half of its results.

    python benchmarks/trec_files.py /tmp/trec --queries 20000 --depth 100 --judged 12
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CHUNK = 2000  # queries formatted at a time


def _query_rows(rng: np.random.Generator, corpus: int, depth: int, judged: int) -> tuple[np.ndarray, np.ndarray]:
    """One query's retrieved doc numbers (depth,) and judged doc numbers (judged,), half of them retrieved."""
    docs = rng.choice(corpus, size=depth + judged, replace=False)
    retrieved = docs[:depth]
    shared = judged // 2
    judged_docs = np.concatenate([rng.choice(retrieved[: max(depth // 2, shared)], shared, replace=False),
                                  docs[depth:depth + judged - shared]])
    return retrieved, judged_docs


def write_trec_files(folder: Path, n_queries: int, depth: int = 100, judged: int = 12, corpus: int = 1_000_000,
                     seed: int = 0) -> tuple[Path, Path]:
    """Write folder/qrels.txt ('qid 0 docid rel') and folder/run.txt ('qid Q0 docid rank score tag'); their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    qrels_path, run_path = folder / "qrels.txt", folder / "run.txt"
    with qrels_path.open("w") as qrels_file, run_path.open("w") as run_file:
        for first in range(0, n_queries, CHUNK):
            qrels_lines, run_lines = [], []
            for query in range(first, min(first + CHUNK, n_queries)):
                retrieved, judged_docs = _query_rows(rng, corpus, depth, judged)
                scores = np.sort(np.round(rng.gamma(2.0, 3.0, depth), 6))[::-1]
                grades = rng.choice(3, size=judged, p=[0.65, 0.2, 0.15])
                qrels_lines += [f"q{query} 0 doc{d:07d} {g}\n" for d, g in zip(judged_docs.tolist(), grades.tolist())]
                run_lines += [f"q{query} Q0 doc{d:07d} {rank} {s:.6f} bench\n"
                              for rank, (d, s) in enumerate(zip(retrieved.tolist(), scores.tolist()), start=1)]
            qrels_file.writelines(qrels_lines)
            run_file.writelines(run_lines)
    return qrels_path, run_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--judged", type=int, default=12)
    parser.add_argument("--corpus", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in write_trec_files(args.folder, args.queries, args.depth, args.judged, args.corpus, args.seed):
        print(path)


if __name__ == "__main__":
    main()
