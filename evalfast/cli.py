"""The ``evalfast`` command line: thin commands that parse options, call the library and print."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from .atomic import atomic_path, write_text
from .cache import EmbeddingCache, default_cache_dir
from .cli_golden import golden as golden_group
from .compare import StatSettings, compare_results, metric_intervals
from .embeddings import embed
from .encoder import DEVICES, Encoder, EncoderConfig
from .errors import EvalfastError
from .evaluate import DEFAULT_KS, PROTOCOLS, EvalConfig, EvalResult, evaluate
from .export import default_export_dir, ensure_exported, export_model
from .golden import GoldenSet, load_golden, read_jsonl
from .per_query import write_per_query
from .precision import PRECISIONS, check_precision, ensure_variant
from .progress import progress_bar
from .metrics import METRICS, compute, judge, summarize
from .report import (bench_markdown, bench_table, dumps, format_result, metric_grid, result_json, result_markdown,
                     text_table)
from .trec import read_qrels, read_run, write_run


class EvalfastGroup(click.Group):
    """Turns a user's mistake into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EvalfastError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)
        except OSError as err:
            click.echo(f"error: {err.filename or ''}: {err.strerror or err}", err=True)
            ctx.exit(2)


def parse_ks(_ctx, _param, value: str) -> tuple[int, ...]:
    """``"1,3,5"`` -> (1, 3, 5); each cutoff a positive integer."""
    try:
        ks = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated integers, e.g. 1,3,5,10") from None
    if not ks or ks[0] < 1:
        raise click.BadParameter(f"{value!r}: cutoffs must be integers >= 1")
    return ks


def model_options(multiple: bool = False):
    """--model, --device, --precision, --cache-dir, --no-cache."""
    def decorate(command):
        help_text = ("Model: an evalfast export folder, a local sentence-transformers/Hugging Face folder "
                     "(exported once, into the cache), or all-MiniLM-L6-v2.")
        for option in reversed([
            click.option("--model", "-m", "models" if multiple else "model", required=True, multiple=multiple,
                         help=help_text + (" Give it twice: A, then B." if multiple else "")),
            click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                         help="Where onnxruntime runs the model (cuda needs evalfast[gpu])."),
            click.option("--precision", "precisions" if multiple else "precision", default="fp32",
                         show_default=True, callback=precision_list if multiple else None,
                         type=None if multiple else click.Choice(list(PRECISIONS)),
                         help="fp32: exact; int8: CPU fast mode (~2x, nDCG@10 within ~0.005); fp16: GPU. "
                              "Variants are built once beside the export."
                              + (" One for every model, or one per model (fp32,int8)." if multiple else "")),
            click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
                         help="Embedding and model cache [default: $EVALFAST_CACHE or ~/.cache/evalfast]."),
            click.option("--no-cache", is_flag=True, help="Embed everything again; read and write no cache."),
        ]):
            command = option(command)
        return command
    return decorate


def precision_list(_ctx, _param, value: str) -> tuple[str, ...]:
    """``"fp32,int8"`` -> ("fp32", "int8"), in order, repeats kept (one per --model)."""
    items = tuple(part.strip() for part in value.split(","))
    unknown = [item for item in items if item not in PRECISIONS]
    if unknown:
        raise click.BadParameter(f"{value!r}: give one of {', '.join(PRECISIONS)}, or a comma-separated list of them")
    return items


def golden_options(command):
    """--golden, --split, --protocol, --k, --seed, --rag-threshold."""
    for option in reversed([
        click.option("--golden", "-g", required=True, type=click.Path(path_type=Path),
                     help="Golden set: a BEIR folder, or a CSV/JSONL file with columns query, context, relevance."),
        click.option("--split", default="test", show_default=True, help="BEIR qrels split (qrels/<split>.tsv)."),
        click.option("--protocol", type=click.Choice(PROTOCOLS), default="qrels", show_default=True,
                     help="qrels: standard ranking metrics over judged queries; pairs: the seed's row-by-row "
                          "scoring of a CSV."),
        click.option("--k", "ks", default=",".join(map(str, DEFAULT_KS)), show_default=True, callback=parse_ks,
                     help="Cutoffs for the qrels protocol."),
        click.option("--seed", default=0, show_default=True,
                     help="Seed of the bootstrap, the randomization test and the simulated metrics' noise."),
        click.option("--rag-threshold", default=0.5, show_default=True, type=click.FloatRange(-1, 1),
                     help="Cosine at which the RAG-style threshold metrics match a retrieved document to a "
                          "relevant one."),
    ]):
        command = option(command)
    return command


def open_encoder(model: str, device: str, precision: str, cache_dir: Path | None, no_cache: bool
                 ) -> tuple[Encoder, EmbeddingCache | None]:
    """The encoder for ``model`` (exported and its precision variant built once if needed) and its embedding
    cache (None with --no-cache)."""
    root = cache_dir or default_cache_dir()
    check_precision(precision, device)
    folder = ensure_exported(model, root)
    ensure_variant(folder, precision)
    encoder = Encoder(folder, EncoderConfig.for_device(device, precision))
    return encoder, None if no_cache else EmbeddingCache(root, encoder.fingerprint)


def run_eval(model: str, golden_path: Path, split: str, config: EvalConfig, device: str, precision: str,
             cache_dir: Path | None, no_cache: bool) -> tuple[GoldenSet, EvalResult]:
    """Load, embed with a progress bar, evaluate."""
    golden = load_golden(golden_path, split)
    encoder, cache = open_encoder(model, device, precision, cache_dir, no_cache)
    with progress_bar(golden.n_docs + golden.n_queries, f"embedding ({Path(model).name})") as bar:
        return golden, evaluate(encoder, golden, config, cache, bar.update)


@click.group(cls=EvalfastGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="evalfast")
def cli():
    """evalfast: fast, trustworthy evaluation of text-embedding retrieval models.

    \b
    Export a model to ONNX, embed a golden set with onnxruntime, search it with
    FAISS and score it with trec_eval-exact metrics:
      evalfast export all-MiniLM-L6-v2
      evalfast eval --model export/all-MiniLM-L6-v2 --golden data/golden/handwritten
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@cli.command("export")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Folder to write [default: export/<model-name>].")
@click.option("--opset", type=int, default=None, help="ONNX opset [default: optimum's choice for the model].")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists (only once the new export passed).")
def export_command(model: str, output: Path | None, opset: int | None, overwrite: bool):
    """Export MODEL to ONNX with pooling and normalisation in the graph.

    Writes model.onnx (one output, sentence_embedding), the tokenizer and evalfast.json (source, sha256,
    opset, max sequence length, pooling, dimension, parity with PyTorch). An fp32 export whose max 1-cos
    against PyTorch exceeds 1e-4 fails and leaves nothing behind.

    \b
    Examples:
      evalfast export all-MiniLM-L6-v2
      evalfast export ./my-finetuned-model -o export/finetuned --overwrite
    """
    manifest = export_model(model, output, opset=opset, overwrite=overwrite)
    folder = output or default_export_dir(model)
    click.echo(f"exported {model} -> {folder}\n  dimension {manifest.dimension}, max_seq_length "
               f"{manifest.max_seq_length}, pooling {manifest.pooling}, opset {manifest.opset}\n  parity vs PyTorch on "
               f"{manifest.parity.probe_texts} texts: max 1-cos {manifest.parity.max_one_minus_cos:.2e}, mean "
               f"{manifest.parity.mean_one_minus_cos:.2e}\n  sha256 {manifest.sha256}")


def read_texts(path: Path, field: str | None) -> list[str]:
    """Texts from a file: one per line, or the ``field`` of each JSONL object. Empty texts are errors."""
    if not path.is_file():
        raise EvalfastError(f"{path}: no such file; pass a text file (one text per line) or JSONL with --field")
    if field or path.suffix.lower() == ".jsonl":
        field = field or "text"
        texts = []
        for line_no, record in read_jsonl(path):
            value = str(record.get(field) or "").strip()
            if not value:
                raise EvalfastError(f"{path} line {line_no}: field {field!r} is missing or empty; use --field to pick another")
            texts.append(value)
    else:
        texts = path.read_text(encoding="utf-8").splitlines()
        for line_no, text in enumerate(texts, start=1):
            if not text.strip():
                raise EvalfastError(f"{path} line {line_no}: empty line; every line must hold one text")
    if not texts:
        raise EvalfastError(f"{path}: no texts to embed")
    return texts


@cli.command("embed")
@model_options()
@click.option("--input", "-i", "input_path", required=True, type=click.Path(path_type=Path),
              help="Text file (one text per line) or JSONL (see --field).")
@click.option("--field", default=None, help="JSONL field holding the text [default: text].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Where to write the .npy array.")
def embed_command(model, device, precision, cache_dir, no_cache, input_path, field, output):
    """Embed texts into float32 unit vectors (N x dim .npy, input order).

    Batches are sorted by token length under a token budget; texts longer than the model's max sequence
    length are truncated exactly as sentence-transformers truncates them, and counted.

    \b
    Examples:
      evalfast embed --model all-MiniLM-L6-v2 --input queries.txt -o queries.npy
      evalfast embed -m export/all-MiniLM-L6-v2 -i corpus.jsonl --field text -o corpus.npy --no-cache
    """
    texts = read_texts(input_path, field)
    encoder, cache = open_encoder(model, device, precision, cache_dir, no_cache)
    with progress_bar(len(texts), "embedding") as bar:
        result = embed(encoder, texts, cache, bar.update)
    with atomic_path(output) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, result.vectors)
    click.echo(f"embedded {result.n_texts} texts ({result.n_encoded} encoded, {result.n_cached} from cache, "
               f"{result.n_truncated} truncated to {encoder.manifest.max_seq_length} tokens) in {result.seconds:.2f} s: "
               f"{result.texts_per_second:,.1f} sentences/s, {result.tokens_per_second:,.0f} tokens/s -> {output} "
               f"{result.vectors.shape}")


def write_reports(json_path: Path | None, markdown_path: Path | None, document: dict, markdown: str) -> None:
    if json_path:
        write_text(json_path, dumps(document))
    if markdown_path:
        write_text(markdown_path, markdown)


@cli.command("eval")
@model_options()
@golden_options
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full result as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), help="Write the report as Markdown.")
@click.option("--per-query", "per_query_path", type=click.Path(path_type=Path),
              help="Write each query's metrics, top 10 and first relevant rank as JSON lines.")
@click.option("--run", "run_path", type=click.Path(path_type=Path), help="Write the run as a TREC run file.")
def eval_command(model, device, precision, cache_dir, no_cache, golden, split, protocol, ks, seed, rag_threshold,
                 json_path, markdown_path, per_query_path, run_path):
    """Evaluate a model on a golden set and print the metrics with 95% bootstrap intervals.

    Metrics follow trec_eval (hit_rate, precision, recall, mrr, ndcg, map at each k, and r_precision);
    queries with no relevant document are left out of the means and counted. RAG-style context precision and
    recall come from judged relevance. The similarity section holds the mean cosine of relevant pairs and the
    seed's simulated metrics, which are NOT RAGAS.

    \b
    Examples:
      evalfast eval --model all-MiniLM-L6-v2 --golden data/golden/handwritten
      evalfast eval -m export/all-MiniLM-L6-v2 -g data/golden/handwritten --per-query q.jsonl --run run.trec
      evalfast eval -m export/all-MiniLM-L6-v2 -g seed.csv --protocol pairs --json out.json
    """
    config = EvalConfig(protocol, ks, tuple(METRICS), seed, rag_threshold=rag_threshold)
    golden_set, result = run_eval(model, golden, split, config, device, precision, cache_dir, no_cache)
    intervals = metric_intervals(result, list(result.per_query), StatSettings(seed=seed))
    click.echo(format_result(result, intervals))
    write_reports(json_path, markdown_path, result_json(result, intervals), result_markdown(result, intervals))
    write_outputs(golden_set, [(Path(model).name, result)], per_query_path, run_path)


def write_outputs(golden: GoldenSet, named_results: list[tuple[str, EvalResult]], per_query_path: Path | None,
                  run_path: Path | None) -> None:
    """--per-query and --run (a file for one model; for several, a folder with one file per model)."""
    if per_query_path:
        write_per_query(per_query_path, named_results, golden)
    if run_path and len(named_results) == 1:
        write_run(run_path, named_results[0][1].run, golden.query_ids, golden.doc_ids, "evalfast")
    elif run_path:
        for index, (name, result) in enumerate(named_results, start=1):
            tag = f"{index}-{name}".replace(" ", "_")
            write_run(Path(run_path) / f"{tag}.trec", result.run, golden.query_ids, golden.doc_ids, tag)


def display_names(models: tuple[str, ...], precisions: tuple[str, ...]) -> list[str]:
    """Short names: the folders' last components, with the precision when models share a folder, numbered
    when they still clash."""
    names = [Path(m.rstrip("/")).name for m in models]
    if len(set(names)) < len(names):
        names = [f"{name} {p}" for name, p in zip(names, precisions)]
    if len(set(names)) < len(names):
        names = [f"{i}: {name}" for i, name in enumerate(names, start=1)]
    return names


@cli.command("compare")
@model_options(multiple=True)
@golden_options
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the whole comparison as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), help="Write the report as Markdown.")
@click.option("--html", "html_path", type=click.Path(path_type=Path),
              help="Write one self-contained HTML report with plots (opens offline).")
@click.option("--per-query", "per_query_path", type=click.Path(path_type=Path),
              help="Write every model's per-query metrics, top 10 and first relevant rank as JSON lines.")
@click.option("--run", "run_path", type=click.Path(path_type=Path),
              help="Folder to write one TREC run file per model into.")
@click.option("--resamples", default=1000, show_default=True, type=click.IntRange(min=10), help="Bootstrap resamples.")
@click.option("--permutations", default=10000, show_default=True, type=click.IntRange(min=100),
              help="Sign flips of the paired randomization test.")
@click.option("--alpha", default=0.05, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Significance level, applied to Holm-corrected p-values.")
def compare_command(models, device, precisions, cache_dir, no_cache, golden, split, protocol, ks, seed, rag_threshold,
                    json_path, markdown_path, html_path, per_query_path, run_path, resamples, permutations, alpha):
    """Compare models on one golden set: the first is the baseline, each other one a candidate.

    Every mean carries a 95% bootstrap interval over queries. For each candidate and metric: the paired
    difference with its interval, a paired randomization test and a paired t-test, Holm-corrected across the
    candidates; the table says which differences are significant. Also: the queries that got worse and
    better, the hardest queries, RAG-style metrics, and the seed's simulated metrics (labelled, not RAGAS).

    \b
    Examples:
      evalfast compare -m all-MiniLM-L6-v2 -m export/finetuned -g data/golden/handwritten --html cmp.html
      evalfast compare -m export/all-MiniLM-L6-v2 -m export/all-MiniLM-L6-v2 --precision fp32,int8 \\
          -g data/golden/handwritten --json cmp.json --markdown cmp.md --html cmp.html --per-query q.jsonl
    """
    from datetime import datetime, timezone

    from .compare_report import comparison_document, comparison_markdown, comparison_text
    from .html_report import render_html

    if len(models) < 2:
        raise EvalfastError(f"compare needs at least two --model options (the first is the baseline); got {len(models)}")
    if len(precisions) not in (1, len(models)):
        raise EvalfastError(f"--precision {','.join(precisions)}: give one precision, or one per --model ({len(models)})")
    precisions = precisions * len(models) if len(precisions) == 1 else precisions
    config = EvalConfig(protocol, ks, tuple(METRICS), seed, rag_threshold=rag_threshold)
    evaluated = [run_eval(m, golden, split, config, device, p, cache_dir, no_cache) for m, p in zip(models, precisions)]
    golden_set, results = evaluated[0][0], [result for _, result in evaluated]
    names = display_names(models, precisions)
    comparison = compare_results(results, names, StatSettings(resamples=resamples, permutations=permutations,
                                                              alpha=alpha, seed=seed))
    document = comparison_document(comparison, golden_set, split, shlex.join(["evalfast", *sys.argv[1:]]),
                                   datetime.now(timezone.utc).isoformat(timespec="seconds"), ks, config.rag_k,
                                   rag_threshold)
    click.echo(comparison_text(document))
    write_reports(json_path, markdown_path, document, comparison_markdown(document))
    if html_path:
        write_text(html_path, render_html(document))
    write_outputs(golden_set, list(zip(names, results)), per_query_path, run_path)


@cli.command("metrics")
@click.option("--qrels", required=True, type=click.Path(path_type=Path), help="TREC qrels: qid 0 docid rel.")
@click.option("--run", "run_path", required=True, type=click.Path(path_type=Path),
              help="TREC run: qid Q0 docid rank score tag.")
@click.option("--k", "ks", default=",".join(map(str, DEFAULT_KS)), show_default=True, callback=parse_ks,
              help="Cutoffs.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write means and counts as JSON.")
def metrics_command(qrels, run_path, ks, json_path):
    """Score a TREC run against TREC qrels with evalfast's metric engine.

    Ranking follows trec_eval (score descending, ties by docid descending; the rank column is ignored).
    A query judged relevant to something but absent from the run scores 0 (trec_eval -c).

    \b
    Example:
      evalfast metrics --qrels qrels.test.txt --run bm25.trec --k 10,100 --json scores.json
    """
    judgments, query_names, doc_names = read_qrels(qrels)
    run, query_names, _ = read_run(run_path, query_names, doc_names)
    judged = judge(run.doc_ids, judgments)
    means, n_evaluated, n_skipped = summarize(compute(judged, tuple(METRICS), ks), judged.n_relevant)
    click.echo(f"{n_evaluated} queries scored, {n_skipped} without a relevant document left out\n")
    click.echo(text_table(*metric_grid(means)))
    if json_path:
        write_text(json_path, dumps({"metrics": means, "counts": {"queries": n_evaluated, "queries_skipped_no_relevant": n_skipped}}))


def comma_list(choices: Sequence[str]):
    """A click callback: ``"a,b"`` -> ("a", "b"), each one of ``choices``."""
    def parse(_ctx, param, value: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise click.BadParameter(f"{value!r}: give a comma-separated list of {', '.join(choices)}")
        return items
    return parse


@cli.command("bench")
@click.option("--model", "-m", required=True, help="Model, as for eval (an export folder or all-MiniLM-L6-v2).")
@click.option("--texts", "texts_path", type=click.Path(path_type=Path), help="Texts to embed, one per line (or JSONL).")
@click.option("--golden", "-g", type=click.Path(path_type=Path),
              help="Golden set: its corpus and queries are the texts, and nDCG@10 is compared.")
@click.option("--device", "devices", default="cpu", show_default=True, callback=comma_list(DEVICES),
              help="Devices, comma-separated.")
@click.option("--precision", "precisions", default="fp32,int8", show_default=True,
              callback=comma_list(list(PRECISIONS)), help="evalfast precisions, comma-separated (each where it runs).")
@click.option("--against", type=click.Choice(["sentence-transformers", "none"]), default="sentence-transformers",
              show_default=True, help="Peers: sentence-transformers fp32, bf16 autocast / fp16, and its ONNX backend.")
@click.option("--n", "n_texts", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Texts per round (the input is cycled to this many).")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(min=1), help="Timed rounds.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True,
              help="Where the JSON and Markdown reports go.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Model cache (as for eval).")
def bench_command(model, texts_path, golden, devices, precisions, against, n_texts, repeats, output_dir, cache_dir):
    """Measure embedding throughput and accuracy against sentence-transformers.

    Each evalfast device x precision and each peer embeds the same texts in interleaved rounds; the
    table gives sentences/s, tokens/s, the ratio to sentence-transformers fp32 on the same device (per
    round, median [min-max]), peak memory, and accuracy (1-cos, and the nDCG@10 change with --golden).

    \b
    Examples:
      evalfast bench -m all-MiniLM-L6-v2 --golden data/golden/handwritten
      evalfast bench -m export/all-MiniLM-L6-v2 --texts queries.txt --device cuda --precision fp32,fp16
    """
    from datetime import datetime, timezone

    from .bench import contenders_for, machine, run_bench, summary_rows

    if bool(texts_path) == bool(golden):
        raise EvalfastError("bench: give exactly one of --texts FILE or --golden G")
    golden_set = load_golden(golden) if golden else None
    base = read_texts(texts_path, None) if texts_path else golden_set.doc_texts + golden_set.query_texts
    texts = [base[i % len(base)] for i in range(n_texts)]
    folder = ensure_exported(model, cache_dir or default_cache_dir())
    contenders = contenders_for(folder, devices, precisions, against == "sentence-transformers")
    n_tokens = Encoder(folder).token_stats(texts)[0]
    with progress_bar(len(contenders) * (repeats + 1), "bench") as bar:
        def step(label: str) -> None:
            bar.set_description(label)
            bar.update()
        rows = summary_rows(run_bench(contenders, texts, golden_set, repeats, step), len(texts), n_tokens)
    now = datetime.now(timezone.utc)
    document = {"schema_version": 1, "date": now.isoformat(timespec="seconds"), "command": shlex.join(["evalfast", *sys.argv[1:]]),
                "machine": machine(), "model": str(folder), "n_texts": len(texts), "mean_tokens": n_tokens / len(texts),
                "repeats": repeats, "golden": str(golden) if golden else None, "rows": rows}
    click.echo(text_table(*bench_table(rows)))
    stem = output_dir / f"bench-{now:%Y%m%d-%H%M%S}"
    write_reports(stem.with_suffix(".json"), stem.with_suffix(".md"), document, bench_markdown(document))
    click.echo(f"\nwrote {stem}.json and {stem}.md")


cli.add_command(golden_group)


def main() -> None:
    """Console entry point."""
    cli(prog_name="evalfast")
