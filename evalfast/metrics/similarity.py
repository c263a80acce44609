"""Similarity of queries with their relevant contexts (the model's: cosine, or dot product), and the seed's
"simulated RAGAS" metrics.

The simulated metrics are the seed's formulas: each is the pair's cosine s rescaled plus uniform noise,
clipped to [0, 1]. They are NOT RAGAS (no LLM judges anything); evalfast keeps them so the seed's tables
can be reproduced, draws the noise from a seeded generator so runs repeat, and labels them as such.
"""

from __future__ import annotations

import numpy as np

SIMULATED_NOTE = "simulated: rescaled cosine similarity plus seeded noise, not RAGAS"

# name: (scale, half-width of the uniform noise); drawn in this order
SIMULATED = {
    "simulated_context_precision": (0.8, 0.10),
    "simulated_context_recall": (0.9, 0.05),
    "simulated_faithfulness": (0.7, 0.15),
    "simulated_answer_relevancy": (0.85, 0.10),
}


def pair_similarities(query_vectors: np.ndarray, doc_vectors: np.ndarray, query: np.ndarray, doc: np.ndarray
                      ) -> np.ndarray:
    """float64 (n_pairs,): inner product of each (query, doc) pair, which is the cosine for unit float32 (n, dim)
    vectors and the dot product otherwise."""
    return np.einsum("ij,ij->i", query_vectors[query].astype(np.float64), doc_vectors[doc].astype(np.float64))


def similarity_metrics(cosines: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-pair float64 values: ``similarity`` (the cosine) and the four simulated metrics."""
    rng = np.random.default_rng(seed)
    values = {"similarity": cosines}
    for name, (scale, noise) in SIMULATED.items():
        values[name] = np.clip(scale * cosines + rng.uniform(-noise, noise, len(cosines)), 0.0, 1.0)
    return values
