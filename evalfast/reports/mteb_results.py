"""An evaluation written in MTEB's result-file layout, so evalfast's runs sit beside the leaderboard's files."""

from __future__ import annotations

from evalfast.evaluate import EvalResult

MTEB_FAMILIES = {"ndcg": "ndcg_at", "map": "map_at", "recall": "recall_at", "precision": "precision_at",
                 "mrr": "mrr_at", "hit_rate": "hit_rate_at"}
"""evalfast metric name -> MTEB's key prefix (``ndcg@10`` -> ``ndcg_at_10``)."""
MAIN_SCORE = "ndcg_at_10"  # MTEB's main score of retrieval tasks


def mteb_scores(metrics: dict[str, float]) -> dict[str, float]:
    """MTEB's keys for evalfast's ``name@k`` means (the families MTEB reports; others are left out)."""
    scores = {}
    for key, value in metrics.items():
        name, _, k = key.partition("@")
        if name in MTEB_FAMILIES and k:
            scores[f"{MTEB_FAMILIES[name]}_{k}"] = value
    return scores


def mteb_document(result: EvalResult, task_name: str, split: str, evaluation_seconds: float,
                  languages: tuple[str, ...] = ()) -> dict:
    """The result file MTEB writes for one retrieval task (``task_name``, ``scores`` -> split -> one subset,
    ``main_score`` = nDCG@10, ``evaluation_time`` in seconds), plus an ``evalfast`` entry naming the model, its
    graph's sha256, the conventions it ran with and the query counts. Scores are not rounded (MTEB rounds most
    to 5 decimals); MTEB's nauc_* keys are not computed."""
    scores = mteb_scores(result.metrics)
    if MAIN_SCORE not in scores:
        raise ValueError("mteb_document: the result has no ndcg@10, MTEB's main score")
    subset = {"hf_subset": "default", "languages": list(languages), "main_score": scores[MAIN_SCORE], **scores}
    return {
        "dataset_revision": None,
        "task_name": task_name,
        "mteb_version": None,
        "scores": {split: [subset]},
        "evaluation_time": evaluation_seconds,
        "kg_co2_emissions": None,
        "evalfast": {"model": result.model, "model_sha256": result.model_sha256, "precision": result.precision,
                     "device": result.device, "protocol": result.protocol, "conventions": result.conventions,
                     "counts": result.counts},
    }
