"""What a fine-tuned model was trained on, and whether a golden set's queries were among it.

`evalfast finetune` writes ``training-data.json`` into the model's folder: the golden set and split it trained
on, and a SHA-256 of each training query's text and of each (query, document) training pair, so a model scored
on its own training queries can be told apart from one scored on held-out queries. Texts are hashed with their
runs of whitespace collapsed to one space.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

TRAINING_DATA = "training-data.json"
KIND = "evalfast.training-data"
SCHEMA_VERSION = 1
ST_FOLDER = "sentence-transformers"  # the PyTorch model inside a fine-tune's folder


def fingerprint(*texts: str) -> str:
    """SHA-256 (hex) of ``texts``, whitespace runs collapsed, joined by NUL: a query, or a query and its document."""
    return hashlib.sha256("\0".join(" ".join(text.split()) for text in texts).encode("utf-8")).hexdigest()


def training_data_document(golden: Path, own_splits: bool, note: str, pairs: Sequence[tuple[str, str]],
                           held_out: dict[str, int], seed: int) -> dict:
    """The content of ``training-data.json`` for (query text, document text) training ``pairs``.

    ``own_splits``: the golden set's own train split was trained on (else its queries were split by finetune);
    ``held_out``: how many queries each other split holds."""
    queries = list(dict.fromkeys(query for query, _ in pairs))
    return {"schema_version": SCHEMA_VERSION, "kind": KIND, "golden": str(Path(golden).resolve()), "split": "train",
            "own_splits": own_splits, "splits": note, "seed": seed, "held_out": held_out,
            "hash": "sha256 of each text, whitespace runs collapsed to one space; a pair's texts joined by NUL",
            "queries": [fingerprint(query) for query in queries],
            "pairs": [fingerprint(query, document) for query, document in pairs]}


def find_training_data(model_folder: str | Path) -> Path | None:
    """The ``training-data.json`` of a fine-tune's folder (or of the folder holding its PyTorch model), if any."""
    folder = Path(model_folder)
    candidates = [folder / TRAINING_DATA] + ([folder.parent / TRAINING_DATA] if folder.name == ST_FOLDER else [])
    return next((path for path in candidates if path.is_file()), None)


def training_overlap(model_folder: str | Path, query_texts: Sequence[str], golden_label: str) -> str | None:
    """A one-line warning when some of ``query_texts`` (the queries of ``golden_label`` being scored) were among
    the training queries of the fine-tune in ``model_folder``; None when none were, or it records no training.

    Example::

        warning = training_overlap("export/minilm-prompts", golden.query_texts, "data/golden/handwritten")
    """
    path = find_training_data(model_folder)
    if path is None:
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        trained = set(record["queries"])
        own_splits, held_out = bool(record["own_splits"]), dict(record["held_out"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return (f"warning: {path}: cannot read {model_folder}'s training data ({err}); whether the queries of "
                f"{golden_label} were trained on is unknown")
    seen = sum(fingerprint(text) in trained for text in query_texts)
    if not seen:
        return None
    if own_splits:
        advice = "score it on held-out queries, e.g. --split test"
    else:
        advice = (f"score it on held-out queries: {record.get('golden')} has no train/dev/test splits, so finetune "
                  f"split its queries itself, and {path.parent / 'report' / 'comparison.md'} compares it with "
                  f"its base on the {held_out.get('test', '?')} test queries it held out")
    return (f"warning: {seen} of {len(query_texts)} queries of {golden_label} were in {model_folder}'s training "
            f"data ({path}); {advice}")
