"""Fine-tune a sentence-transformers model on a golden set's train split, and prove the gain on held-out queries.

The seed trained on its whole golden set and scored the result on the same data. Here the model trains on the
train split only, with in-batch negatives and hard negatives mined by the base model (top-ranked documents not
judged relevant); it is evaluated on the dev split after every epoch with evalfast's metrics and the best epoch
is kept; it is re-exported to ONNX with the export's parity check; base and fine-tuned are compared on the test
split with bootstrap intervals and paired tests; a model card says what was done, and ``training-data.json``
what was trained on (hashes of the training queries and pairs: see :mod:`evalfast.train.overlap`).

Work happens in a staging folder beside the output (``.<name>.partial``), which also holds the checkpoints that
``resume`` continues from; the output folder appears, complete, only at the end.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from evalfast.atomic import replace_dir, write_text
from evalfast.comparison.compare import StatSettings
from evalfast.data.golden import GoldenSet, load_golden, select_queries
from evalfast.data.run import descending_name_rank
from evalfast.data.splits import split_prompts
from evalfast.errors import EvalfastError
from evalfast.evaluate import EvalConfig, EvalResult, evaluate, score_vectors
from evalfast.model.encoder import Encoder
from evalfast.model.export import export_model, resolve_source
from evalfast.model.manifest import read_manifest
from evalfast.reports.compare_report import compare, comparison_markdown
from evalfast.reports.report import dumps
from evalfast.search.index import search
from evalfast.train.overlap import TRAINING_DATA, training_data_document

SPLIT_FRACTIONS = {"train": 0.7, "dev": 0.1, "test": 0.2}
MAX_POSITIVES = 5  # positives per query at most, so broad queries do not swamp the training set
MIN_SPLIT_QUERIES = 2
ST_FOLDER = "sentence-transformers"
REPORT_FOLDER = "report"
HEADLINE = "ndcg@10"


@dataclass(frozen=True)
class FinetuneConfig:
    """Training hyper-parameters (the seed's: 3 epochs, batch 16, lr 2e-5) and where to train."""

    epochs: int = 3
    batch_size: int = 16
    lr: float = 2e-5
    hard_negatives: int = 1  # per training pair; 0 gives the seed's recipe (in-batch negatives only)
    seed: int = 0
    device: str = "cpu"
    warmup_ratio: float = 0.1


@dataclass(frozen=True)
class Splits:
    """Train, dev and test queries over the same corpus, and how they were made."""

    train: GoldenSet
    dev: GoldenSet
    test: GoldenSet
    note: str
    own: bool = False  # the golden set's own train/dev/test splits (else its queries were split here)


@dataclass(frozen=True)
class FinetuneResult:
    """What a finished run produced."""

    output: Path
    base: EvalResult
    finetuned: EvalResult
    document: dict  # the held-out comparison (evalfast.comparison.compare schema)
    train_seconds: float


def _main_prompts(golden: GoldenSet) -> np.ndarray:
    """int64 (n_queries,): each query's main document (its first judgment of the highest grade), -1 for none."""
    query, doc, relevance = golden.qrels.by_query()
    main = np.full(golden.n_queries, -1, np.int64)
    best = np.full(golden.n_queries, 0.0)
    for q, d, r in zip(query.tolist(), doc.tolist(), relevance.tolist()):
        if r > best[q]:
            best[q], main[q] = r, d
    return main


def load_splits(path: Path, seed: int) -> Splits:
    """The golden set's own train/dev/test splits, or its test split divided by each query's main prompt."""
    path = Path(path)
    if all((path / "qrels" / f"{split}.tsv").is_file() for split in SPLIT_FRACTIONS):
        splits = Splits(*(load_golden(path, split) for split in SPLIT_FRACTIONS), note=f"the splits of {path}",
                        own=True)
    else:
        golden = load_golden(path)
        main = _main_prompts(golden)
        sources = sorted(set(main[main >= 0].tolist()))
        if len(sources) < len(SPLIT_FRACTIONS):
            raise EvalfastError(f"{path}: too few judged queries to split into train, dev and test; add queries")
        assignment = split_prompts([str(s) for s in sources], SPLIT_FRACTIONS, seed)
        split_of_query = np.array([assignment.get(str(m), "") for m in main])
        splits = Splits(*(select_queries(golden, split_of_query == split) for split in SPLIT_FRACTIONS),
                        note=f"{path} has no train/dev/test splits: its queries were split by their main prompt "
                             f"({'/'.join(f'{f:g}' for f in SPLIT_FRACTIONS.values())}, seed {seed}), so no "
                             "prompt's queries are in two splits")
    for name in SPLIT_FRACTIONS:
        missing = getattr(splits, name).missing_doc_ids
        if missing:
            raise EvalfastError(f"{path}: the {name} qrels judge {len(missing)} document(s) not in corpus.jsonl "
                                f"({missing[0]!r}, ...); training needs every judged text, so add or drop them")
        n = int((getattr(splits, name).qrels.relevant_counts() > 0).sum())
        if n < MIN_SPLIT_QUERIES:
            raise EvalfastError(f"{path}: the {name} split has {n} judged queries; a golden set this small cannot "
                                f"train and test a model (at least {MIN_SPLIT_QUERIES} per split)")
    return splits


def training_pairs(train: GoldenSet, seed: int) -> list[tuple[int, int]]:
    """(query, document) pairs: each query with its top-graded documents, at most MAX_POSITIVES (drawn by seed)."""
    rng = np.random.default_rng(seed)
    query, doc, relevance = train.qrels.by_query()
    pairs = []
    for q in np.unique(query[relevance > 0]):
        rows = np.flatnonzero((query == q) & (relevance == relevance[query == q].max()))
        chosen = rows if len(rows) <= MAX_POSITIVES else rng.choice(rows, MAX_POSITIVES, replace=False)
        pairs += [(int(q), int(doc[row])) for row in sorted(chosen)]
    return pairs


def mine_hard_negatives(encoder: Encoder, train: GoldenSet, n: int) -> np.ndarray:
    """int64 (n_queries, n): the base model's top-ranked documents that no judgment calls relevant (-1 if too few).

    Unjudged documents count as not relevant, as they do in the metrics.
    """
    docs, queries = encoder.encode(train.doc_texts).vectors, encoder.encode(train.query_texts).vectors
    depth = min(train.n_docs, n + int(train.qrels.relevant_counts().max(initial=0)))
    run = search(docs, queries, depth, descending_name_rank(train.doc_ids))
    relevant = np.zeros((train.n_queries, train.n_docs), bool)
    positive = train.qrels.relevance > 0
    relevant[train.qrels.query[positive], train.qrels.doc[positive]] = True
    negatives = np.full((train.n_queries, n), -1, np.int64)
    for q in range(train.n_queries):
        candidates = [d for d in run.doc_ids[q].tolist() if d >= 0 and not relevant[q, d]][:n]
        negatives[q, : len(candidates)] = candidates
    return negatives


def training_dataset(train: GoldenSet, pairs: list[tuple[int, int]], negatives: np.ndarray | None):
    """A datasets.Dataset with columns anchor, positive and negative_1..n (rows missing a negative are dropped)."""
    from datasets import Dataset

    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    n_negatives = 0 if negatives is None else negatives.shape[1]
    for i in range(n_negatives):
        columns[f"negative_{i + 1}"] = []
    for q, d in pairs:
        if n_negatives and (negatives[q] < 0).any():
            continue
        columns["anchor"].append(train.query_texts[q])
        columns["positive"].append(train.doc_texts[d])
        for i in range(n_negatives):
            columns[f"negative_{i + 1}"].append(train.doc_texts[negatives[q, i]])
    return Dataset.from_dict(columns)


def _dev_evaluator(dev: GoldenSet, batch_size: int):
    """A sentence-transformers evaluator scoring the model on the dev split with evalfast's search and metrics."""
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

    class DevEvaluator(SentenceEvaluator):
        def __init__(self):
            super().__init__()
            self.primary_metric = HEADLINE

        def __call__(self, model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]:
            def vectors(texts):
                return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)

            scored = score_vectors(dev, vectors(dev.doc_texts), vectors(dev.query_texts), EvalConfig(ks=(10,)))
            metrics = {key: scored.metrics[key] for key in (HEADLINE, "mrr@10", "recall@10")}
            return self.prefix_name_to_metrics(metrics, "dev")

    return DevEvaluator()


def _staging(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


def _check_folders(output: Path, resume: bool, overwrite: bool) -> Path:
    staging = _staging(output)
    if output.exists() and not overwrite:
        raise EvalfastError(f"{output} already exists; pass --overwrite to replace it or -o to choose another folder")
    if resume and not staging.is_dir():
        raise EvalfastError(f"--resume: no interrupted run to continue ({staging} does not exist)")
    if staging.exists() and not resume:
        if not overwrite:
            raise EvalfastError(f"{staging} holds an interrupted run; pass --resume to continue it or --overwrite "
                                "to start again")
        shutil.rmtree(staging)
    return staging


def _train(base_source: Path, splits: Splits, dataset, config: FinetuneConfig, staging: Path, resume: bool,
           callbacks: Sequence) -> object:
    """Run the trainer (best dev epoch loaded at the end); returns the trained SentenceTransformer."""
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import (CachedMultipleNegativesRankingLoss,
                                                                   MultipleNegativesRankingLoss)
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    model = SentenceTransformer(str(base_source), device=config.device)
    loss = (CachedMultipleNegativesRankingLoss(model, mini_batch_size=32) if config.batch_size > 64
            else MultipleNegativesRankingLoss(model))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(staging / "checkpoints"), num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, learning_rate=config.lr, warmup_ratio=config.warmup_ratio,
        seed=config.seed, data_seed=config.seed, batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model=f"eval_dev_{HEADLINE}", greater_is_better=True, save_total_limit=2,
        logging_strategy="epoch", report_to="none", use_cpu=config.device == "cpu")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         evaluator=_dev_evaluator(splits.dev, config.batch_size),
                                         callbacks=list(callbacks))
    trainer.train(resume_from_checkpoint=True if resume else None)
    return model


def _model_card(base: str, golden: Path, splits: Splits, config: FinetuneConfig, n_pairs: int, document: dict,
                train_seconds: float, output: Path) -> str:
    pair = document["comparisons"][0]
    rows = "\n".join(f"| {metric} | {t['baseline']:.3f} | {t['candidate']:.3f} | {t['difference']:+.3f} "
                     f"[{t['low']:+.3f}, {t['high']:+.3f}] | {t['p_randomization']:.3g} | "
                     f"{'yes' if t['significant'] else 'no'} |"
                     for metric, t in pair["metrics"].items() if metric in (HEADLINE, "mrr@10", "recall@10",
                                                                             "map@100", "context_precision@10"))
    return f"""# Fine-tuned {Path(base).name}

Fine-tuned from `{base}` by `evalfast finetune`, and exported to ONNX in this folder (`evalfast.json` holds the
export's parity with PyTorch).

## Data

- golden set: `{golden}`; {splits.note}
- train: {splits.train.n_queries} queries, {n_pairs} (query, document) pairs (top-graded documents, at most
  {MAX_POSITIVES} per query); dev: {splits.dev.n_queries} queries (model selection); test: {splits.test.n_queries}
  queries (held out, reported below); corpus: {splits.train.n_docs} documents
- [`{TRAINING_DATA}`]({TRAINING_DATA}) records the golden set, the split and a SHA-256 of each training query and
  pair; `evalfast eval` and `evalfast compare` warn when the queries they score are among them. Score this model
  on held-out queries only: {_held_out_advice(golden, splits)}

## Training

- loss: MultipleNegativesRankingLoss (in-batch negatives){' and ' + str(config.hard_negatives) + ' hard negative(s) per pair mined by the base model' if config.hard_negatives else ''}
- epochs {config.epochs}, batch size {config.batch_size}, learning rate {config.lr:g}, warmup ratio
  {config.warmup_ratio:g}, seed {config.seed}, device {config.device}; the epoch with the best dev {HEADLINE} kept
- training took {train_seconds:.0f} s

## Held-out results (test split)

{document['golden']['queries_scored']} test queries; differences are fine-tuned minus base with 95% bootstrap intervals
and paired randomization tests (`{REPORT_FOLDER}/comparison.md` has every metric, `{REPORT_FOLDER}/comparison.html`
the plots).

| metric | base | fine-tuned | difference [95% CI] | p | significant |
|---|---|---|---|---|---|
{rows}

## Use

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{output / ST_FOLDER}")
```

```bash
evalfast eval --model {output} --golden {_held_out_golden(golden, splits)}
```
"""


def _held_out_golden(golden: Path, splits: Splits) -> str:
    """The --golden (and --split) of an evaluation on queries the model was not trained on."""
    return f"{golden} --split test" if splits.own else "<a golden set it was not trained on>"


def _held_out_advice(golden: Path, splits: Splits) -> str:
    if splits.own:
        return f"`--split test` of `{golden}`."
    return (f"`{golden}` has no splits, so its `--split test` holds the training queries too; the held-out "
            f"comparison is in `{REPORT_FOLDER}/`.")


def _training_data(golden_path: Path, splits: Splits, dataset, seed: int) -> dict:
    """What ``training-data.json`` records: the (query, positive document) texts the model trained on."""
    return training_data_document(golden_path, splits.own, splits.note,
                                  list(zip(dataset["anchor"], dataset["positive"])),
                                  {"dev": splits.dev.n_queries, "test": splits.test.n_queries}, seed)


def finetune(base: str, golden_path: Path, output: Path, config: FinetuneConfig = FinetuneConfig(),
             resume: bool = False, overwrite: bool = False, cache_root: Path | None = None,
             callbacks: Sequence = (), on_status: Callable[[str], None] = lambda message: None) -> FinetuneResult:
    """Train, export, evaluate on held-out queries and write ``output``; see the module docstring."""
    from evalfast.model.cache import default_cache_dir
    from evalfast.model.export import ensure_exported

    output = Path(output)
    staging = _check_folders(output, resume, overwrite)
    splits = load_splits(golden_path, config.seed)
    on_status(splits.note)
    base_source = resolve_source(base)
    base_export = ensure_exported(base, cache_root or default_cache_dir(), on_status=on_status)
    pairs = training_pairs(splits.train, config.seed)
    negatives = None
    if config.hard_negatives:
        on_status(f"mining {config.hard_negatives} hard negative(s) per query with the base model")
        negatives = mine_hard_negatives(Encoder(base_export), splits.train, config.hard_negatives)
    dataset = training_dataset(splits.train, pairs, negatives)
    staging.mkdir(parents=True, exist_ok=True)
    on_status(f"training on {len(dataset)} pairs from {splits.train.n_queries} queries, {config.epochs} epoch(s)")
    started = time.perf_counter()
    model = _train(base_source, splits, dataset, config, staging, resume, callbacks)
    train_seconds = time.perf_counter() - started

    final = staging / "final"
    shutil.rmtree(final, ignore_errors=True)
    shutil.rmtree(staging / ST_FOLDER, ignore_errors=True)
    model.save(str(staging / ST_FOLDER))
    on_status("exporting the fine-tuned model to ONNX (parity check against PyTorch)")
    export_model(str(staging / ST_FOLDER), final)
    os.replace(staging / ST_FOLDER, final / ST_FOLDER)
    manifest = read_manifest(final)
    replace(manifest, source=str((output / ST_FOLDER).resolve())).write(final)

    on_status(f"evaluating base and fine-tuned on {splits.test.n_queries} held-out test queries")
    results = [evaluate(Encoder(folder), splits.test) for folder in (base_export, final)]  # onnxruntime on the CPU
    document = compare(results, [f"base ({Path(base).name})", "fine-tuned"], splits.test, "test", EvalConfig(),
                       StatSettings(seed=config.seed), f"evalfast finetune {base}")
    document["finetune"] = {"base": base, "golden": str(golden_path), "splits": splits.note, "pairs": len(dataset),
                            "config": asdict(config), "train_seconds": train_seconds}
    _write_reports(final / REPORT_FOLDER, document)
    write_text(final / TRAINING_DATA, dumps(_training_data(Path(golden_path), splits, dataset, config.seed)))
    write_text(final / "README.md", _model_card(base, Path(golden_path), splits, config, len(dataset), document,
                                                train_seconds, output))
    replace_dir(final, output)
    shutil.rmtree(staging, ignore_errors=True)
    return FinetuneResult(output, results[0], results[1], document, train_seconds)


def _write_reports(folder: Path, document: dict) -> None:
    from evalfast.reports.html_report import render_html

    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "comparison.json", dumps(document))
    write_text(folder / "comparison.md", comparison_markdown(document))
    write_text(folder / "comparison.html", render_html(document))
