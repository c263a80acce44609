"""The prompt library: writing prompts with genres and themes, one JSON object per line.

Example line::

    {"id": "p001", "genres": ["fantasy"], "themes": ["magic"], "title": "The Borrowed Spell", "text": "..."}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalfast.data.texts import checked_id, read_jsonl
from evalfast.errors import GoldenSetError


@dataclass(frozen=True)
class Prompt:
    """One writing prompt; ``genres[0]`` is its main genre."""

    id: str
    genres: tuple[str, ...]
    themes: tuple[str, ...]
    title: str
    text: str

    def document(self) -> dict:
        """The prompt as a BEIR corpus record."""
        return {"_id": self.id, "title": self.title, "text": self.text}


def _labels(path: Path, line_no: int, field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise GoldenSetError(f"{path} line {line_no}: {field} must be a non-empty list of strings")
    return tuple(v.strip().lower() for v in value)


def _field(path: Path, line_no: int, record: dict, field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise GoldenSetError(f"{path} line {line_no}: missing or empty {field!r}")
    return value.strip()


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read and check a prompt library (JSONL with id, genres, themes, title, text; ids unique)."""
    path = Path(path)
    if not path.is_file():
        raise GoldenSetError(f"{path}: no such file; pass a prompt library (JSONL with id, genres, themes, title, text)")
    prompts: list[Prompt] = []
    first_line: dict[str, int] = {}
    for line_no, record in read_jsonl(path):
        # a prompt id becomes a document id of the BEIR folders made from the library, which qrels must carry
        prompt_id = checked_id(f"{path} line {line_no}", "prompt id", _field(path, line_no, record, "id"))
        if prompt_id in first_line:
            raise GoldenSetError(f"{path} line {line_no}: duplicate id {prompt_id!r} (first on line {first_line[prompt_id]})")
        first_line[prompt_id] = line_no
        prompts.append(Prompt(prompt_id, _labels(path, line_no, "genres", record.get("genres")),
                              _labels(path, line_no, "themes", record.get("themes")),
                              _field(path, line_no, record, "title"), _field(path, line_no, record, "text")))
    if not prompts:
        raise GoldenSetError(f"{path}: the library holds no prompts")
    return prompts
