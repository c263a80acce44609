"""Template queries over a prompt library, the seed's three templates done right.

The seed asked "Find a Fantasy writing prompt" once per prompt and judged it relevant to that one prompt only,
drew keywords unseeded (giving "about about"), and kept stop-words. Here:

* genre: one query per genre; every prompt of that genre is relevant (2 where it is the main genre, 1 where
  it is a second genre);
* genre + theme: one query per (genre, theme) pair that some prompt has; relevant: every prompt with both
  (2 for the main genre, 1 for a second genre);
* keywords: per prompt, two distinctive words of its text (stop-words and repeats removed, the rarer in the
  library the likelier, drawn with the seed); the prompt itself gets 2, any other prompt whose text has both
  words gets 1.

The wording of each query is drawn from a few phrasings, with the seed, so the same seed gives the same set.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from evalfast.data.prompts import Prompt
from evalfast.generate.drafts import DraftQuery

GENRE_PHRASINGS = ("Find {a_genre} writing prompt", "{genre} writing prompts", "{genre} prompt ideas",
                   "give me {a_genre} prompt")
GENRE_THEME_PHRASINGS = ("Find {a_genre} prompt about {theme}", "{genre} prompts about {theme}",
                         "{theme} {genre} prompt")
KEYWORD_PHRASINGS = ("Find a writing prompt about {first} and {second}", "prompt with {first} and {second}",
                     "{first} {second} writing prompt")
STOP_WORDS = frozenset("""
a about above after again against all almost also am an and any are around as at be because been before being
below between both but by can could did do does doing down during each even ever every few for from further get
gets got had has have having he her here hers herself him himself his how i if in into is it its itself just
last like make makes may me might more most much must my myself never new no nor not now of off on once one only
or other our ours ourselves out over own same say says she should so some someone something still such than that
the their theirs them themselves then there these they thing things this those through to too two under until
up very was way we were what when where which while who whom whose why will with without would write writes
written you your yours yourself yourselves first next day days time times back still years year
""".split())
WORD = re.compile(r"[a-z][a-z-]+[a-z]")


def words(text: str) -> list[str]:
    """Lower-case words of three or more letters that are not stop-words, in order, without repeats."""
    return list(dict.fromkeys(w for w in WORD.findall(text.lower().replace("'s", "")) if w not in STOP_WORDS))


def _phrase(rng: np.random.Generator, phrasings: tuple[str, ...], **fields: str) -> str:
    if "genre" in fields:
        fields["a_genre"] = ("an " if fields["genre"][0] in "aeiou" else "a ") + fields["genre"]
    return phrasings[rng.integers(len(phrasings))].format(**fields)


def _genre_queries(prompts: list[Prompt], rng: np.random.Generator) -> list[DraftQuery]:
    genres = sorted({g for p in prompts for g in p.genres})
    return [DraftQuery(_phrase(rng, GENRE_PHRASINGS, genre=genre), None, "genre",
                       {p.id: 2 if p.genres[0] == genre else 1 for p in prompts if genre in p.genres})
            for genre in genres]


def _genre_theme_queries(prompts: list[Prompt], rng: np.random.Generator) -> list[DraftQuery]:
    pairs = sorted({(g, t) for p in prompts for g in p.genres for t in p.themes})
    return [DraftQuery(_phrase(rng, GENRE_THEME_PHRASINGS, genre=genre, theme=theme), None, "genre_theme",
                       {p.id: 2 if p.genres[0] == genre else 1
                        for p in prompts if genre in p.genres and theme in p.themes})
            for genre, theme in pairs]


def _keyword_queries(prompts: list[Prompt], rng: np.random.Generator) -> list[DraftQuery]:
    vocabularies = [set(words(p.text)) for p in prompts]
    document_frequency = Counter(w for vocabulary in vocabularies for w in vocabulary)
    drafts = []
    for prompt in prompts:
        candidates = words(prompt.text)
        if len(candidates) < 2:
            continue
        rarity = np.array([1.0 / document_frequency[w] for w in candidates])
        first, second = rng.choice(candidates, size=2, replace=False, p=rarity / rarity.sum())
        judgments = {other.id: 1 for other, vocabulary in zip(prompts, vocabularies)
                     if first in vocabulary and second in vocabulary}
        judgments[prompt.id] = 2
        drafts.append(DraftQuery(_phrase(rng, KEYWORD_PHRASINGS, first=str(first), second=str(second)),
                                 prompt.id, "keywords", judgments))
    return drafts


def heuristic_queries(prompts: list[Prompt], seed: int = 0) -> list[DraftQuery]:
    """Genre, genre + theme and keyword queries for ``prompts``, reproducible from ``seed``; duplicate query
    texts are merged (their judgments kept from the first)."""
    rng = np.random.default_rng(seed)
    drafts = _genre_queries(prompts, rng) + _genre_theme_queries(prompts, rng) + _keyword_queries(prompts, rng)
    unique: dict[str, DraftQuery] = {}
    for draft in drafts:
        unique.setdefault(draft.text.lower(), draft)
    return list(unique.values())
