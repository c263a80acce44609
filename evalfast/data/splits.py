"""Train/dev/test splits by prompt: every query generated from one prompt lands in that prompt's split."""

from __future__ import annotations

import numpy as np

from evalfast.errors import EvalfastError

SPLIT_NAMES = ("train", "dev", "test")


def parse_fractions(text: str) -> dict[str, float]:
    """``"0.8/0.1/0.1"`` -> {"train": 0.8, "dev": 0.1, "test": 0.1}; two numbers mean train/test.

    Fractions must be >= 0 and sum to 1 (within 1e-6); splits with fraction 0 are left out.
    """
    parts = text.split("/")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    names = {2: ("train", "test"), 3: SPLIT_NAMES}.get(len(values))
    if not names or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise EvalfastError(f"--split {text!r}: give train/dev/test fractions that sum to 1, e.g. 0.8/0.1/0.1 "
                            "(or train/test, e.g. 0.8/0.2)")
    return {name: value for name, value in zip(names, values) if value > 0}


def split_prompts(prompt_ids: list[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Prompt id -> split name: the prompts shuffled with ``seed`` and cut by ``fractions`` (largest remainder,
    at least one prompt per split)."""
    if len(prompt_ids) < len(fractions):
        raise EvalfastError(f"--split: {len(prompt_ids)} prompts are too few to give every split at least one "
                            f"({', '.join(f'{n} {f:g}' for n, f in fractions.items())}); use fewer splits")
    exact = np.array(list(fractions.values())) * len(prompt_ids)
    counts = np.maximum(1, np.floor(exact).astype(int))
    while counts.sum() > len(prompt_ids):  # the minimum of one each took too many: give back where most over
        counts[np.argmax(np.where(counts > 1, counts - exact, -np.inf))] -= 1
    while counts.sum() < len(prompt_ids):  # largest remainder
        counts[np.argmax(exact - counts)] += 1
    order = np.random.default_rng(seed).permutation(len(prompt_ids))
    names = np.repeat(list(fractions), counts)
    return {prompt_ids[index]: str(name) for index, name in zip(order, names)}


def split_unsourced(n_queries: int, fractions: dict[str, float], seed: int) -> list[str]:
    """Splits for queries made from no single prompt (a genre, a theme): drawn with ``seed`` by the fractions."""
    rng = np.random.default_rng([seed, 1])
    weights = np.array(list(fractions.values()))
    return [str(name) for name in rng.choice(list(fractions), size=n_queries, p=weights / weights.sum())]
