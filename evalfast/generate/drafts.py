"""Generated queries before they get ids and splits, and how a set of them becomes a BEIR folder."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from evalfast.data.beir import Judgment, write_beir
from evalfast.data.prompts import Prompt
from evalfast.data.splits import split_prompts, split_unsourced


@dataclass(frozen=True)
class DraftQuery:
    """A query a generator made: its text, the prompt it was made from (None for a genre or theme query), the
    template or generator that made it, and its judgments (prompt id -> grade, 2 = what the query asks for)."""

    text: str
    source: str | None
    kind: str
    judgments: dict[str, int] = field(hash=False)


def write_generated(folder: str | Path, prompts: list[Prompt], drafts: list[DraftQuery],
                    fractions: dict[str, float] | None, seed: int, overwrite: bool = False) -> Counter:
    """Number the drafts q00001..., assign splits (by source prompt; unsourced queries drawn by the fractions;
    everything is "test" without fractions) and write the BEIR folder. The corpus is the whole library.
    Returns the number of queries per split."""
    if fractions:
        by_prompt = split_prompts([p.id for p in prompts], fractions, seed)
        drawn = iter(split_unsourced(sum(d.source is None for d in drafts), fractions, seed))
        splits = [by_prompt[d.source] if d.source is not None else next(drawn) for d in drafts]
    else:
        splits = ["test"] * len(drafts)
    ids = [f"q{number:05d}" for number in range(1, len(drafts) + 1)]
    queries = [{"_id": qid, "text": d.text, "kind": d.kind, "source": d.source, "split": split}
               for qid, d, split in zip(ids, drafts, splits)]
    qrels: dict[str, list[Judgment]] = {name: [] for name in dict.fromkeys(splits)}
    for qid, draft, split in zip(ids, drafts, splits):
        qrels[split] += [Judgment(qid, doc_id, grade) for doc_id, grade in draft.judgments.items()]
    write_beir(folder, (p.document() for p in prompts), queries, qrels, overwrite)
    return Counter(splits)
