"""The seed's row-wise ``pairs`` protocol, reproduced exactly so its users get their numbers back.

Every row (query, context, relevance) of the seed's CSV is scored on its own against its query's top 5:

- precision@k: a positive row scores hits/k, hits = 1 if its context is in the top k, else 0; a negative
  row scores 1 if its context is absent from the top k, else 0;
- mrr: 1/rank for a positive row whose context is in the top 5, else 0;
- ndcg@5: 1/log2(rank + 1) for a positive row whose context is in the top 5, else 0.

Each metric is the mean over all rows, negative rows included.
"""

from __future__ import annotations

import numpy as np

PAIRS_KS = (1, 3, 5)
PAIRS_DEPTH = 5


def pairs_metrics(run_doc_ids: np.ndarray, query: np.ndarray, doc: np.ndarray, relevance: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Per-row float64 (n_rows,) values of precision@1/3/5, mrr and ndcg@5.

    run_doc_ids int64 (n_queries, depth) best first; query, doc int64 (n_rows,) and relevance (n_rows,)
    are the rows in file order.
    """
    hit = run_doc_ids[query, :PAIRS_DEPTH] == doc[:, None]  # (n_rows, <=5) where the row's context ranks
    found = hit.any(axis=1)
    rank = hit.argmax(axis=1) + 1
    positive = relevance > 0
    values = {}
    for k in PAIRS_KS:
        in_top = hit[:, :k].any(axis=1)
        values[f"precision@{k}"] = np.where(positive, in_top / k, ~in_top).astype(np.float64)
    values["mrr"] = np.where(positive & found, 1.0 / rank, 0.0)
    values["ndcg@5"] = np.where(positive & found, 1.0 / np.log2(rank + 1), 0.0)
    return values
