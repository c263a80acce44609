"""`evalfast finetune` end to end on a tiny random model and the bundled set: splits, hard negatives, training,
re-export, held-out report, model card; an interrupted run resumed; reproducibility; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file
from transformers import TrainerCallback

from evalfast.cli import cli
from evalfast.data.golden import load_golden
from evalfast.errors import EvalfastError
from evalfast.model.encoder import Encoder
from evalfast.model.manifest import read_manifest
from evalfast.train.finetune import FinetuneConfig, finetune, load_splits, mine_hard_negatives, training_pairs
from evalfast.train.overlap import TRAINING_DATA, fingerprint, training_data_document, training_overlap

from conftest import HANDWRITTEN, write_file

ONE_EPOCH = FinetuneConfig(epochs=1, batch_size=16, lr=1e-3)


def test_splits_share_no_main_prompt_and_cover_the_judged_queries():
    splits = load_splits(HANDWRITTEN, seed=0)
    golden = load_golden(HANDWRITTEN)
    seen = [set(s.query_ids) for s in (splits.train, splits.dev, splits.test)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sum(map(len, seen)) == int((golden.qrels.relevant_counts() > 0).sum())
    assert all(s.n_docs == golden.n_docs for s in (splits.train, splits.dev, splits.test))  # the whole corpus


def test_hard_negatives_are_top_ranked_and_never_judged_relevant(tiny_export):
    train = load_splits(HANDWRITTEN, seed=0).train
    negatives = mine_hard_negatives(Encoder(tiny_export), train, 2)
    relevant = {(int(q), int(d)) for q, d, r in zip(train.qrels.query, train.qrels.doc, train.qrels.relevance) if r > 0}
    assert negatives.shape == (train.n_queries, 2) and (negatives >= 0).all()
    assert not any((q, int(d)) in relevant for q in range(train.n_queries) for d in negatives[q])
    pairs = training_pairs(train, seed=0)
    assert pairs and all((q, d) in relevant for q, d in pairs)


class StopAfterFirstCheckpoint(TrainerCallback):
    """Interrupts training as a Ctrl-C would, once the first epoch's checkpoint is saved."""

    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


class RecordStart(TrainerCallback):
    def __init__(self):
        self.global_step_at_start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.global_step_at_start = state.global_step


def test_interrupted_run_resumes_and_finishes_the_whole_path(tiny_model, tmp_path):
    output = tmp_path / "tuned"
    two_epochs = FinetuneConfig(epochs=2, batch_size=16, lr=1e-3)
    with pytest.raises(KeyboardInterrupt):
        finetune(str(tiny_model), HANDWRITTEN, output, two_epochs, cache_root=tmp_path / "cache",
                 callbacks=[StopAfterFirstCheckpoint()])
    assert not output.exists()  # nothing half-written where the model goes
    with pytest.raises(EvalfastError, match="--resume"):
        finetune(str(tiny_model), HANDWRITTEN, output, two_epochs, cache_root=tmp_path / "cache")

    start = RecordStart()
    result = finetune(str(tiny_model), HANDWRITTEN, output, two_epochs, resume=True, cache_root=tmp_path / "cache",
                      callbacks=[start])
    assert start.global_step_at_start > 0  # continued from the checkpoint, not from scratch
    assert not (tmp_path / ".tuned.partial").exists()
    for name in ("model.onnx", "evalfast.json", "README.md", "sentence-transformers/config.json",
                 "report/comparison.json", "report/comparison.md", "report/comparison.html"):
        assert (output / name).is_file(), name
    manifest = read_manifest(output)
    assert manifest.parity.max_one_minus_cos < 1e-4
    assert manifest.source == str((output / "sentence-transformers").resolve())
    report = json.loads((output / "report" / "comparison.json").read_text())
    assert [m["name"] for m in report["models"]][1] == "fine-tuned"
    assert report["golden"]["queries_scored"] == result.finetuned.counts["queries_evaluated"] > 0
    assert "## Held-out results (test split)" in (output / "README.md").read_text()
    evaluated = CliRunner().invoke(cli, ["eval", "-m", str(output), "-g", str(HANDWRITTEN), "--cache-dir",
                                         str(tmp_path / "cache")])
    assert evaluated.exit_code == 0, evaluated.output


def test_same_seed_same_model(tiny_model, tmp_path):
    weights = []
    for name in ("a", "b"):
        finetune(str(tiny_model), HANDWRITTEN, tmp_path / name, ONE_EPOCH, cache_root=tmp_path / "cache")
        weights.append((tmp_path / name / "sentence-transformers" / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]
    tuned = load_file(str(tmp_path / "a" / "sentence-transformers" / "model.safetensors"))
    base = load_file(str(Path(tiny_model).parent / "bert" / "model.safetensors"))
    shared = sorted(set(tuned) & set(base))
    assert shared and any(not np.array_equal(tuned[key], base[key]) for key in shared)  # training changed weights


def test_cli_refusals_leave_nothing_behind(tiny_model, tmp_path):
    tiny_set = tmp_path / "tiny-set"
    write_file(tiny_set / "corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n')
    write_file(tiny_set / "queries.jsonl", '{"_id": "q1", "text": "x"}\n')
    write_file(tiny_set / "qrels" / "test.tsv", "q1\td1\t1\n")
    runner = CliRunner()
    small = runner.invoke(cli, ["finetune", "-m", str(tiny_model), "-g", str(tiny_set), "-o", str(tmp_path / "out")])
    assert small.exit_code == 2 and "too few" in small.output
    existing = write_file(tmp_path / "taken" / "keep.txt", "mine")
    taken = runner.invoke(cli, ["finetune", "-m", str(tiny_model), "-g", str(HANDWRITTEN), "-o", str(existing.parent)])
    assert taken.exit_code == 2 and "--overwrite" in taken.output and existing.read_text() == "mine"
    not_a_model = runner.invoke(cli, ["finetune", "-m", str(tmp_path), "-g", str(HANDWRITTEN), "-o", str(tmp_path / "o")])
    assert not_a_model.exit_code == 2 and "config.json" in not_a_model.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "tiny-set"]


# ---------------------------------------------------------------- what a fine-tune trained on


@pytest.fixture(scope="module")
def tuned(tiny_model, tmp_path_factory) -> Path:
    """One epoch on the hand-written set, which has no splits of its own."""
    folder = tmp_path_factory.mktemp("tuned")
    finetune(str(tiny_model), HANDWRITTEN, folder / "model", ONE_EPOCH, cache_root=folder / "cache")
    return folder / "model"


def test_finetune_records_what_it_trained_on(tuned):
    record = json.loads((tuned / TRAINING_DATA).read_text())
    splits = load_splits(HANDWRITTEN, seed=0)
    assert record["kind"] == "evalfast.training-data" and record["golden"] == str(HANDWRITTEN.resolve())
    assert record["split"] == "train" and record["own_splits"] is False
    assert record["held_out"] == {"dev": splits.dev.n_queries, "test": splits.test.n_queries}
    assert set(record["queries"]) == {fingerprint(text) for text in splits.train.query_texts}
    train = splits.train
    pairs = training_pairs(train, seed=0)
    assert len(record["pairs"]) == len(pairs)  # every pair had a hard negative, so none was dropped
    assert set(record["pairs"]) == {fingerprint(train.query_texts[q], train.doc_texts[d]) for q, d in pairs}
    card = (tuned / "README.md").read_text()
    assert f"[`{TRAINING_DATA}`]({TRAINING_DATA})" in card and "--golden <a golden set it was not trained on>" in card


def test_scoring_a_fine_tune_on_its_training_queries_warns(tuned):
    golden = load_golden(HANDWRITTEN)
    train = load_splits(HANDWRITTEN, seed=0).train
    warning = training_overlap(tuned, golden.query_texts, "data/golden/handwritten")
    assert warning.startswith(f"warning: {train.n_queries} of {golden.n_queries} queries of data/golden/handwritten "
                              f"were in {tuned}'s training data ({tuned / TRAINING_DATA}); score it on held-out "
                              "queries: ")
    assert str(tuned / "report" / "comparison.md") in warning and "\n" not in warning
    assert training_overlap(tuned / "sentence-transformers", golden.query_texts, "g") is not None  # its PyTorch model


def test_held_out_queries_and_other_models_give_no_warning(tuned, tiny_model):
    splits = load_splits(HANDWRITTEN, seed=0)
    assert training_overlap(tuned, splits.test.query_texts + splits.dev.query_texts, "held out") is None
    assert training_overlap(tiny_model, load_golden(HANDWRITTEN).query_texts, "g") is None  # no training data


def test_overlap_advice_follows_the_golden_sets_own_splits(tmp_path):
    record = training_data_document(tmp_path / "golden", True, "the splits of golden", [("a query", "a doc")],
                                    {"dev": 1, "test": 2}, 0)
    write_file(tmp_path / "model" / TRAINING_DATA, json.dumps(record))
    warning = training_overlap(tmp_path / "model", ["another query", "a  query "], "golden")
    assert warning == (f"warning: 1 of 2 queries of golden were in {tmp_path / 'model'}'s training data "
                       f"({tmp_path / 'model' / TRAINING_DATA}); score it on held-out queries, e.g. --split test")


def test_unreadable_training_data_is_a_warning_not_a_crash(tmp_path):
    write_file(tmp_path / TRAINING_DATA, '{"queries": [')
    warning = training_overlap(tmp_path, ["q"], "golden")
    assert warning.startswith(f"warning: {tmp_path / TRAINING_DATA}: cannot read") and "unknown" in warning
