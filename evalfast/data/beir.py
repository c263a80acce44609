"""Writing golden sets as BEIR folders: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from evalfast.atomic import atomic_dir
from evalfast.errors import EvalfastError


@dataclass(frozen=True)
class Judgment:
    """One qrels line: the query, the document and the graded relevance (an integer; > 0 is relevant)."""

    query_id: str
    doc_id: str
    score: int


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def check_output(folder: Path, overwrite: bool) -> None:
    """Refuse to replace an existing folder unless told to."""
    if folder.exists() and not overwrite:
        raise EvalfastError(f"{folder} already exists; pass --overwrite to replace it")


def write_beir(folder: str | Path, corpus: Iterable[dict], queries: Iterable[dict],
               qrels: Mapping[str, Iterable[Judgment]], overwrite: bool = False) -> Path:
    """Write a BEIR folder atomically: corpus records ``{"_id", "title", "text"}``, query records
    ``{"_id", "text", ...}`` and one qrels file per split name. Returns the folder."""
    folder = Path(folder)
    check_output(folder, overwrite)
    with atomic_dir(folder, overwrite=overwrite) as staging:
        (staging / "corpus.jsonl").write_text(_jsonl(corpus), encoding="utf-8")
        (staging / "queries.jsonl").write_text(_jsonl(queries), encoding="utf-8")
        (staging / "qrels").mkdir()
        for split, judgments in qrels.items():
            lines = ["query-id\tcorpus-id\tscore\n"]
            lines += [f"{j.query_id}\t{j.doc_id}\t{j.score}\n" for j in judgments]
            (staging / "qrels" / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return folder
