"""How far two sets of vectors are apart (1 - cosine), and the probe texts every export and variant is checked on."""

from __future__ import annotations

import numpy as np

from evalfast.model.manifest import Parity

PROBE_TEXTS = (
    "a",
    "Find a fantasy writing prompt about magic",
    "haunted lighthouse story",
    "something cozy for a rainy afternoon",
    "detectve story with a twist at the end",
    "A clumsy apprentice baker accidentally brews a potion instead of a sourdough starter.",
    "Write a memoir piece about the kitchen you grew up in, in under 300 words.",
    "An alien's universal translator breaks; it must explain an urgent message with drawings.",
    "¿Dónde está la biblioteca? Ein kurzer Satz auf Deutsch. 日本語の文。",
    "   leading and trailing spaces   ",
    "UPPER CASE QUERY ABOUT DRAGONS AND TAXES",
    "numbers 1 2 3 4 and symbols #$%&*() [brackets] {braces}",
    # longer than any model's max sequence length, so truncation is part of the check
    " ".join(f"sentence {i} of a very long document about rivers, mountains and the people between them."
             for i in range(60)),
)


def one_minus_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cosine similarity of two (n, dim) arrays, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 1.0 - cos


def parity(reference: np.ndarray, vectors: np.ndarray) -> Parity:
    """The :class:`Parity` of ``vectors`` against ``reference`` (both (n, dim)), row by row."""
    gaps = one_minus_cos(reference, vectors)
    reference_norms = np.linalg.norm(reference.astype(np.float64), axis=1)
    norm_errors = np.abs(np.linalg.norm(vectors.astype(np.float64), axis=1) - reference_norms) / reference_norms
    return Parity(len(gaps), float(gaps.max()), float(gaps.mean()), float(norm_errors.max()))
