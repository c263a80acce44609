"""Collect a corpus of real English passages from the documentation, docstrings and comments on this machine.

    python benchmarks/harvest_passages.py -o ~/.cache/evalfast/passages.txt    # ~490,000 lines here

Nothing can be downloaded here, so the latency benchmark's real distractors come from text that is already on
disk: the virtual environment's packages, the Python standard library, and /usr/share/doc, man, perl and node
pages. A passage is a sentence of 5-40 words that is mostly words rather than code, kept once (case-insensitive).
Two rules are applied to the same files and their passages pooled:
  * whole-file sentences: starts with a capital, ends with . ! or ?, at least 75% of its tokens words;
  * paragraph sentences: split inside blank-line paragraphs, at least half of its tokens plain words, and at
    most six code characters.
The output (one passage per line, sorted) depends on what is installed, so record its line count with a result.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from evalfast.atomic import write_text

ROOTS = (Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib", Path("/usr/share/doc"), Path("/usr/share/man"),
         Path("/usr/lib/python3"), Path("/usr/share/perl"), Path("/usr/share/perl5"), Path("/usr/lib/node_modules"))
SUFFIXES = (".py", ".md", ".rst", ".txt", ".js", ".ts", ".pm", ".pod", ".h", ".c", ".html")
MAX_FILE_BYTES = 5_000_000
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
COMMENT_MARK = re.compile(r"^\s*(#+|//+|\*+|/\*+|>+|\"\"\"|''')", re.M)
WORD = re.compile(r"[A-Za-z][a-z']+")
PLAIN_WORD = re.compile(r"^[A-Za-z][a-z']*[.,;:!?]?$")
CODE_CHARACTER = re.compile(r"[=_(){}\[\]<>`|\\]")


def text_files(roots: tuple[Path, ...]) -> Iterator[Path]:
    """Readable text-like files under ``roots``, each once, in a stable order."""
    seen: set[Path] = set()
    for root in roots:
        for folder, subfolders, names in os.walk(root):
            subfolders.sort()
            for name in sorted(names):
                path = Path(folder, name)
                if not (name.endswith(SUFFIXES) or "doc" in folder) or path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                yield path


def passages(text: str) -> Iterator[str]:
    """The passages of one file, by both rules."""
    text = COMMENT_MARK.sub(" ", re.sub(r"<[^>]+>", " ", text))
    for sentence in SENTENCE_END.split(re.sub(r"\s+", " ", text)):
        sentence = sentence.strip(" -*#/\"'")
        words = sentence.split()
        if (6 <= len(words) <= 40 and len(WORD.findall(sentence)) >= 0.75 * len(words) and sentence[0].isupper()
                and sentence.endswith((".", "!", "?"))):
            yield sentence
    for paragraph in re.split(r"\n\s*\n", text):
        for sentence in SENTENCE_END.split(re.sub(r"\s+", " ", paragraph)):
            sentence = sentence.strip(" -*#/\"'")
            words = sentence.split()
            if (5 <= len(words) <= 40 and sum(bool(PLAIN_WORD.match(w)) for w in words) >= 0.5 * len(words)
                    and len(CODE_CHARACTER.findall(sentence)) <= 6 and sentence[0].isalpha()
                    and (sentence[-1].isalpha() or sentence[-1] in ".!?)")):
                yield sentence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harvest_passages.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    kept: dict[str, str] = {}
    for path in text_files(ROOTS):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            text = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        for passage in passages(text):
            kept.setdefault(passage.lower(), passage)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.output, "\n".join(sorted(kept.values())) + "\n")
    print(f"wrote {len(kept):,} passages to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
