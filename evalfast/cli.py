"""The ``evalfast`` command line: thin commands that parse options, call the library and print."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Read as numpy loads (a user's settings win). OpenBLAS keeps its threads spinning for 2^28 cycles after they start
# and after each call, which on a machine of two cores takes one from the readers and onnxruntime: 2^4 lets them
# sleep at once. numpy advises its large arrays into huge pages, whose first touch zeroes (and may compact) 2 MiB at
# once: the readers' arrays, written once, then fault twice as long in the kernel.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import click  # noqa: E402 - after the setting, which OpenBLAS reads as numpy loads it
import numpy as np  # noqa: E402

# The model side (encoder, embedding, search, export, statistics) is imported by the commands that use it, so that
# `evalfast --help` and `evalfast metrics` start in a fraction of a second (tests/test_startup.py).
from evalfast.atomic import STDOUT, Outputs, all_or_none
from evalfast.choices import DEFAULT_KS, DEVICES, MTEB_KS, PROTOCOLS, ROLES
from evalfast.cli_golden import golden as golden_group
from evalfast.comparison.stats import StatSettings
from evalfast.data.texts import read_texts
from evalfast.data.trec import FORMATS as QRELS_FORMATS, read_qrels_file, read_run_to_score, write_run
from evalfast.errors import EvalfastError
from evalfast.model.precision import PRECISIONS
from evalfast.perf.latency import IndexSpec, LatencyConfig
from evalfast.progress import progress_bar
from evalfast.reports.report import (bench_markdown, bench_table, dumps, format_result, metric_grid, result_json,
                                     result_markdown, text_table)

if TYPE_CHECKING:
    from evalfast.data.golden import GoldenSet
    from evalfast.perf.bench import BenchConfig
    from evalfast.evaluate import EvalConfig, EvalResult
    from evalfast.model.cache import EmbeddingCache
    from evalfast.model.embeddings import Embeddings
    from evalfast.model.encoder import Encoder, EncoderConfig


class EvalfastGroup(click.Group):
    """Turns a user's mistake into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EvalfastError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)
        except click.UsageError as err:
            where = err.ctx.command_path if err.ctx else ctx.command_path
            click.echo(f"error: {' '.join(err.format_message().split())} (see {where} --help)", err=True)
            ctx.exit(2)
        except BrokenPipeError:  # the reader of our output stopped reading (`| head`): stop quietly, as on SIGPIPE
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except OSError as err:
            click.echo(f"error: {err.filename or 'evalfast'}: {err.strerror or err}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: no output was written; what was embedded is kept in the cache, so running the "
                       "same command again continues from there", err=True)
            ctx.exit(130)


MAX_CUTOFF = 2**31 - 1


def say_status(message: str) -> None:
    """A long step's status line (exporting a model on first use, building a variant), on stderr."""
    click.echo(message, err=True)


def say_warning(message: str) -> None:
    """Something the user should know that does not stop the command (a damaged cache shard), on stderr."""
    click.echo(f"warning: {message}", err=True)


def human_to_stderr(*paths: Path | None) -> bool:
    """True when one output is ``-`` (standard output): the text for people then goes to stderr. Refuses two."""
    dashes = sum(str(path) == STDOUT for path in paths if path is not None)
    if dashes > 1:
        raise EvalfastError("only one output can be '-' (standard output); give the others file names")
    return dashes == 1


def field_options(settings: type, *names: str):
    """click options for these fields of a frozen dataclass: ``--field-name``, its default the field's, its type
    int or float within the metadata's ``min`` / ``max`` (exclusive with ``open``), its help the metadata's; so
    a default is written once, in the dataclass."""
    fields = {field.name: field for field in dataclasses.fields(settings)}

    def decorate(command):
        for name in reversed(names):
            field, meta = fields[name], fields[name].metadata
            bounded = click.IntRange if field.type in ("int", int) else click.FloatRange
            bounds = {"min": meta.get("min"), "max": meta.get("max")}
            if meta.get("open"):
                bounds |= {"min_open": True, "max_open": True}
            command = click.option(f"--{name.replace('_', '-')}", default=field.default, show_default=True,
                                   type=bounded(**bounds), help=meta["help"])(command)
        return command

    return decorate


def parse_ks(_ctx, _param, value: str | None) -> tuple[int, ...] | None:
    """``"1,3,5"`` -> (1, 3, 5); each cutoff a positive integer. None stays None (the protocol's default)."""
    if value is None:
        return None
    try:
        ks = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated integers, e.g. 1,3,5,10") from None
    if not ks or ks[0] < 1 or ks[-1] > MAX_CUTOFF:
        raise click.BadParameter(f"{value!r}: cutoffs must be integers from 1 to {MAX_CUTOFF:,}")
    return ks


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """The model's conventions and batching as the command line overrides them (None: the model's own)."""

    query_prompt: str | None = None
    document_prompt: str | None = None
    prompt: str | None = None
    dim: int | None = None
    max_seq_length: int | None = None
    batch_size: int | None = None
    token_budget: int | None = None
    trust_remote_code: bool = False

    def encoder_config(self, device: str, precision: str, threads: int | None = None) -> EncoderConfig:
        """The device's batching (see EncoderConfig.for_device) with these overrides."""
        from evalfast.model.encoder import EncoderConfig

        config = EncoderConfig.for_device(device, precision)
        return dataclasses.replace(
            config, query_prompt=self.query_prompt, document_prompt=self.document_prompt, prompt=self.prompt,
            dim=self.dim, max_seq_length=self.max_seq_length, threads=threads,
            max_batch=self.batch_size or config.max_batch, token_budget=self.token_budget or config.token_budget)


CONVENTION_OPTIONS = {
    "query_prompt": click.option(
        "--query-prompt", default=None, metavar="NAME|TEXT",
        help="Prompt before each query: one of the model's prompts by name, or literal text; '' for none "
             "[default: as sentence-transformers' encode_query: the model's 'query' prompt, else its default]."),
    "document_prompt": click.option(
        "--document-prompt", default=None, metavar="NAME|TEXT",
        help="Prompt before each document, likewise [default: as encode_document: the model's 'document', "
             "'passage' or 'corpus' prompt, else its default]."),
    "dim": click.option("--dim", default=None, type=click.IntRange(min=1),
                        help="Keep the first N components (Matryoshka), re-normalised for cosine models."),
    "max_seq_length": click.option("--max-seq-length", default=None, type=click.IntRange(min=1),
                                   help="Truncate texts at N tokens [default: the model's max_seq_length]."),
    "batch_size": click.option("--batch-size", default=None, type=click.IntRange(min=1),
                               help="Most texts per model call [default: 64 on cpu, 1024 on cuda]."),
    "token_budget": click.option("--token-budget", default=None, type=click.IntRange(min=1),
                                 help="Most padded tokens per model call [default: 2048 on cpu, 65536 on cuda]."),
    "trust_remote_code": click.option("--trust-remote-code", is_flag=True,
                                      help="Run the model's own Python code when exporting it (recorded in the "
                                           "manifest); only for models you trust."),
}


def convention_options(command):
    """The options of :class:`ModelChoice`, passed to the command as one ``choice`` argument."""
    @functools.wraps(command)
    def gathered(*args, **kwargs):
        values = {name: kwargs.pop(name) for name in CONVENTION_OPTIONS}
        return command(*args, choice=ModelChoice(prompt=kwargs.pop("prompt", None), **values), **kwargs)
    for option in reversed(CONVENTION_OPTIONS.values()):
        gathered = option(gathered)
    return gathered


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
    """--golden, --split, --protocol, --k, --ignore-identical-ids, --seed, --rag-threshold."""
    for option in reversed([
        click.option("--golden", "-g", required=True, type=click.Path(path_type=Path),
                     help="Golden set: a BEIR folder, or a CSV/JSONL file with columns query, context, relevance."),
        click.option("--split", default="test", show_default=True, help="BEIR qrels split (qrels/<split>.tsv)."),
        click.option("--protocol", type=click.Choice(PROTOCOLS), default="qrels", show_default=True,
                     help="qrels: standard ranking metrics over judged queries; mteb: the same as MTEB's retrieval "
                          "tasks run it (judged queries only, cutoffs up to 1000); pairs: the seed's row-by-row "
                          "scoring of a CSV."),
        click.option("--k", "ks", default=None, callback=parse_ks,
                     help=f"Cutoffs [default: {','.join(map(str, DEFAULT_KS))}; mteb: {','.join(map(str, MTEB_KS))}]."),
        click.option("--ignore-identical-ids", is_flag=True,
                     help="Drop a retrieved document whose id is the query's id, as MTEB does for ArguAna and "
                          "Quora, where each query is also a document."),
        click.option("--seed", default=0, show_default=True,
                     help="Seed of the bootstrap, the randomization test and the simulated metrics' noise."),
        click.option("--rag-threshold", default=0.5, show_default=True, type=float,
                     help="Similarity (the model's: cosine in [-1, 1], or dot product) at which the RAG-style "
                          "threshold metrics match a retrieved document to a relevant one."),
    ]):
        command = option(command)
    return command


def open_encoder(model: str, device: str, precision: str, cache_dir: Path | None, no_cache: bool,
                 choice: ModelChoice = ModelChoice(), threads: int | None = None
                 ) -> tuple[Encoder, EmbeddingCache | None]:
    """The encoder for ``model`` (see open_model) and its embedding cache (None with --no-cache).
    ``threads``: onnxruntime's intra-op threads [default: one per core]."""
    from evalfast.model.cache import EmbeddingCache, default_cache_dir
    from evalfast.model.opening import open_model

    root = cache_dir or default_cache_dir()
    encoder = open_model(model, choice.encoder_config(device, precision, threads), root, choice.trust_remote_code,
                         on_status=say_status)
    return encoder, None if no_cache else EmbeddingCache(root, encoder.fingerprint, on_warning=say_warning)


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    """--engine local|ray, and for Ray the cluster, the actors and the shared shard folder."""

    name: str = "local"
    address: str | None = None
    actors: int = 2
    shard_dir: Path | None = None

    def ray_engine(self, encoder: Encoder, cache_dir: Path | None):
        """A RayEngine for ``encoder``, or None for the local engine."""
        if self.name != "ray":
            return None
        from evalfast.model.cache import default_cache_dir
        from evalfast.search.distributed import RayEngine

        return RayEngine(encoder, self.shard_dir or (cache_dir or default_cache_dir()) / "shards", self.actors)


def engine_options(command):
    """--engine, --address, --actors, --shard-dir, gathered into one ``engine`` argument."""
    def gather(ctx, _param, value):
        ctx.params["engine"] = EngineChoice(value, ctx.params.pop("address", None), ctx.params.pop("actors", 2),
                                            ctx.params.pop("shard_dir", None))
    for option in reversed([
        click.option("--address", default=None, is_eager=True,
                     help="Ray cluster to join (e.g. ray://head:10001) [default: start a local one]."),
        click.option("--actors", default=2, show_default=True, type=click.IntRange(min=1), is_eager=True,
                     help="Ray: embedding actors, each with one warm onnxruntime session."),
        click.option("--shard-dir", type=click.Path(path_type=Path), default=None, is_eager=True,
                     help="Ray: folder every node sees for the embedding shards [default: <cache>/shards]."),
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     expose_value=False, callback=gather,
                     help="local: this process; ray: shards embedded by actors, searched where they lie "
                          "(pip install 'evalfast[ray]')."),
    ]):
        command = option(command)
    return command


@contextlib.contextmanager
def engine_session(engine: EngineChoice):
    """Connect to (or start, and afterwards stop) a Ray cluster when the engine is Ray."""
    if engine.name != "ray":
        yield
        return
    from evalfast.search.distributed import require_ray, start_ray

    started = start_ray(engine.address)
    try:
        yield
    finally:
        if started:
            require_ray().shutdown()


def load_golden_noting(golden_path: Path, split: str = "test") -> GoldenSet:
    """load_golden, with each thing it tolerated printed to stderr as a warning."""
    from evalfast.data.golden import load_golden

    golden = load_golden(golden_path, split)
    for warning in golden.warnings:
        say_warning(warning)
    return golden


def run_eval(model: str, golden_path: Path, split: str, config: EvalConfig, device: str, precision: str,
             cache_dir: Path | None, no_cache: bool, engine: EngineChoice = EngineChoice(),
             choice: ModelChoice = ModelChoice()) -> tuple[GoldenSet, EvalResult]:
    """Load, embed with a progress bar, evaluate (here, or on Ray). Warns when the golden set's queries were in the
    model's training data."""
    from evalfast.evaluate import evaluate, for_protocol
    from evalfast.train.overlap import training_overlap

    golden = for_protocol(load_golden_noting(golden_path, split), config.protocol)
    overlap = training_overlap(model, golden.query_texts, str(golden_path))
    if overlap:
        click.echo(overlap, err=True)
    encoder, cache = open_encoder(model, device, precision, cache_dir, no_cache, choice)
    with progress_bar(golden.n_docs + golden.n_queries, f"embedding ({Path(model).name})") as bar:
        return golden, evaluate(encoder, golden, config, cache, bar.update, engine.ray_engine(encoder, cache_dir))


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
@CONVENTION_OPTIONS["trust_remote_code"]
def export_command(model: str, output: Path | None, opset: int | None, overwrite: bool, trust_remote_code: bool):
    """Export MODEL to ONNX with its pooling, Dense and Normalize layers in the graph.

    Writes model.onnx (one output, sentence_embedding), the tokenizer and evalfast.json (source, sha256,
    opset, max sequence length, pooling, dimension, the model's similarity function and prompts, parity with
    PyTorch). An fp32 export whose max 1-cos (or difference of vector lengths) against PyTorch exceeds 1e-4
    fails and leaves nothing behind.

    \b
    Examples:
      evalfast export all-MiniLM-L6-v2
      evalfast export all-mpnet-base-v2                     # needs evalfast[mpnet]
      evalfast export ./my-finetuned-model -o export/finetuned --overwrite
      evalfast export ./model-with-own-code --trust-remote-code
    """
    from evalfast.model.export import default_export_dir, export_model

    manifest = export_model(model, output, opset=opset, overwrite=overwrite, trust_remote_code=trust_remote_code,
                            on_status=say_status)
    folder = output or default_export_dir(model)
    prompts = ", ".join(f"{name}={text!r}" for name, text in manifest.prompts.items()) or "none"
    click.echo(f"exported {model} -> {folder}\n  dimension {manifest.dimension}, max_seq_length "
               f"{manifest.max_seq_length}, pooling {manifest.pooling}, similarity {manifest.similarity}"
               f"{'' if manifest.normalize else ' (not normalised)'}, opset {manifest.opset}\n  prompts: {prompts}"
               f"\n  parity vs PyTorch on {manifest.parity.probe_texts} texts: max 1-cos "
               f"{manifest.parity.max_one_minus_cos:.2e}, mean {manifest.parity.mean_one_minus_cos:.2e}, lengths "
               f"{manifest.parity.max_relative_norm_error:.2e}\n  sha256 {manifest.sha256}")


@cli.command("embed")
@model_options()
@click.option("--input", "-i", "input_path", required=True, type=click.Path(path_type=Path),
              help="Text file (one text per line) or JSONL (see --field).")
@click.option("--field", default=None, help="JSONL field holding the text [default: text].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Where to write the .npy array.")
@click.option("--role", type=click.Choice(ROLES), default="plain", show_default=True,
              help="Which prompt the texts get, as sentence-transformers' encode_query (query), encode_document "
                   "(document) or encode (plain).")
@click.option("--prompt", default=None, metavar="NAME|TEXT",
              help="Prompt for --role plain: a prompt name or literal text [default: the model's default prompt].")
@engine_options
@convention_options
def embed_command(model, device, precision, cache_dir, no_cache, input_path, field, output, role, engine, choice):
    """Embed texts into float32 vectors (N x dim .npy, input order): unit vectors for cosine models.

    Batches are sorted by token length under a token budget; texts longer than the model's max sequence
    length are truncated exactly as sentence-transformers truncates them, and counted. With --role, texts get
    the model's query or document prompt, exactly as encode_query / encode_document add it.

    \b
    Examples:
      evalfast embed --model all-MiniLM-L6-v2 --input queries.txt -o queries.npy
      evalfast embed -m ./e5-model -i queries.txt --role query -o queries.npy        # "query: " + each text
      evalfast embed -m export/all-MiniLM-L6-v2 -i corpus.jsonl --field text -o corpus.npy --no-cache
      evalfast embed -m export/all-MiniLM-L6-v2 -i corpus.txt -o corpus.npy --dim 128 --max-seq-length 128
      evalfast embed -m export/all-MiniLM-L6-v2 -i corpus.txt -o corpus.npy --engine ray --actors 8
    """
    from evalfast.model.embeddings import embed

    if choice.prompt is not None and role != "plain":
        raise EvalfastError(f"--prompt is the plain role's prompt; with --role {role} use --{role}-prompt")
    encoder, cache = open_encoder(model, device, precision, cache_dir, no_cache, choice)
    texts = encoder.prompted(read_texts(input_path, field), role)
    with engine_session(engine), progress_bar(len(texts), "embedding") as bar:
        ray_engine = engine.ray_engine(encoder, cache_dir)
        result = ray_engine.embed(texts) if ray_engine else embed(encoder, texts, cache, bar.update)
        vectors = result.vectors.dense() if ray_engine else result.vectors
    with all_or_none() as out:
        out.write(output, lambda tmp: save_npy(tmp, vectors))
    click.echo(f"embedded {result.n_texts} texts ({result.n_encoded} encoded, {result.n_cached} from cache, "
               f"{result.n_truncated} truncated to {encoder.max_seq_length} tokens) in {result.seconds:.2f} s; "
               f"{encoding_rate(result)} -> {output} {vectors.shape}", err=human_to_stderr(output))


def encoding_rate(result: Embeddings) -> str:
    """The model's rate over the texts it encoded now (cache reads are no encoding)."""
    if result.encoded_texts_per_second is None:
        return "nothing encoded, so no rate measured"
    return (f"encoding {result.encode_seconds:.2f} s: {result.encoded_texts_per_second:,.1f} sentences/s, "
            f"{result.encoded_tokens_per_second:,.0f} tokens/s")


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save to exactly ``path`` (np.save given a name would append .npy)."""
    with path.open("wb") as handle:
        np.save(handle, array)


def write_reports(json_path: Path | None, markdown_path: Path | None, document: dict, markdown: str,
                  out: Outputs | None = None) -> None:
    """--json and --markdown: staged in ``out`` when given, else written now, both or neither."""
    if out is None:
        with all_or_none() as out:
            write_reports(json_path, markdown_path, document, markdown, out)
        return
    if json_path:
        out.write_text(json_path, dumps(document))
    if markdown_path:
        out.write_text(markdown_path, markdown)


@cli.command("eval")
@model_options()
@golden_options
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the full result as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), help="Write the report as Markdown.")
@click.option("--per-query", "per_query_path", type=click.Path(path_type=Path),
              help="Write each query's metrics, top 10 and first relevant rank as JSON lines.")
@click.option("--run", "run_path", type=click.Path(path_type=Path), help="Write the run as a TREC run file.")
@click.option("--mteb-json", "mteb_path", type=click.Path(path_type=Path),
              help="Write the scores in MTEB's result-file layout (main_score, ndcg_at_10, map_at_10, ...).")
@click.option("--task-name", default=None, help="Task name in --mteb-json [default: the golden set's folder name].")
@engine_options
@convention_options
def eval_command(model, device, precision, cache_dir, no_cache, golden, split, protocol, ks, ignore_identical_ids,
                 seed, rag_threshold, json_path, markdown_path, per_query_path, run_path, mteb_path, task_name, engine,
                 choice):
    """Evaluate a model on a golden set and print the metrics with 95% bootstrap intervals.

    Metrics follow trec_eval (hit_rate, precision, recall, mrr, ndcg, map at each k, and r_precision);
    queries with no relevant document are left out of the means and counted. Queries and documents get the
    model's prompts as sentence-transformers' encode_query / encode_document add them, and are ranked by the
    model's similarity (cosine or dot). RAG-style context precision and recall come from judged relevance. The
    similarity section holds the mean similarity of relevant pairs and the seed's simulated metrics, which are
    NOT RAGAS.

    \b
    Examples:
      evalfast eval --model all-MiniLM-L6-v2 --golden data/golden/handwritten
      evalfast eval -m all-MiniLM-L6-v2 -g ../shared/data/beir/scifact --protocol mteb --mteb-json SciFact.json
      evalfast eval -m ./arguana-model -g beir/arguana --protocol mteb --ignore-identical-ids
      evalfast eval -m ./e5-model -g beir/scifact --query-prompt "query: " --document-prompt "passage: " --dim 256
      evalfast eval -m export/all-MiniLM-L6-v2 -g data/golden/handwritten --per-query q.jsonl --run run.trec
      evalfast eval -m export/all-MiniLM-L6-v2 -g seed.csv --protocol pairs --json out.json
      evalfast eval -m export/all-MiniLM-L6-v2 -g data/golden/handwritten --engine ray --address ray://head:10001
    """
    from evalfast.comparison.compare import metric_intervals
    from evalfast.evaluate import EvalConfig
    from evalfast.reports.mteb_results import mteb_document

    config = EvalConfig.for_protocol(protocol, ks, seed=seed, rag_threshold=rag_threshold,
                                     ignore_identical_ids=ignore_identical_ids)
    to_stderr = human_to_stderr(json_path, markdown_path, per_query_path, run_path, mteb_path)
    if mteb_path and protocol == "pairs":
        raise EvalfastError("--mteb-json needs the qrels or mteb protocol (MTEB scores rankings, not rows)")
    if mteb_path and 10 not in config.ks:
        raise EvalfastError(f"--mteb-json: MTEB's main score is nDCG@10; add 10 to --k {','.join(map(str, config.ks))}")
    with engine_session(engine):
        golden_set, result = run_eval(model, golden, split, config, device, precision, cache_dir, no_cache, engine,
                                      choice)
    intervals = metric_intervals(result, list(result.per_query), StatSettings(seed=seed))
    click.echo(format_result(result, intervals), err=to_stderr)
    with all_or_none() as out:
        write_reports(json_path, markdown_path, result_json(result, intervals), result_markdown(result, intervals), out)
        if mteb_path:
            out.write_text(mteb_path, dumps(mteb_document(result, task_name or Path(golden).resolve().name, split,
                                                          result.timings["total_seconds"])))
        write_outputs(out, golden_set, [(Path(model).name, result)], per_query_path, run_path)


def write_outputs(out: Outputs, golden: GoldenSet, named_results: list[tuple[str, EvalResult]],
                  per_query_path: Path | None, run_path: Path | None) -> None:
    """Stage --per-query and --run in ``out`` (a file for one model; for several, a folder with one file per
    model)."""
    from evalfast.reports.per_query import write_per_query

    if per_query_path:
        write_per_query(out.path(per_query_path), named_results, golden)
    if run_path and len(named_results) == 1:
        write_run(out.path(run_path), named_results[0][1].run, golden.query_ids, golden.doc_ids, "evalfast")
    elif run_path:
        for index, (name, result) in enumerate(named_results, start=1):
            tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{index}-{name}")
            write_run(out.path(Path(run_path) / f"{tag}.trec"), result.run, golden.query_ids, golden.doc_ids, tag)


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
@field_options(StatSettings, "resamples", "permutations", "alpha")
@convention_options
def compare_command(models, device, precisions, cache_dir, no_cache, golden, split, protocol, ks, ignore_identical_ids,
                    seed, rag_threshold, json_path, markdown_path, html_path, per_query_path, run_path, resamples,
                    permutations, alpha, choice):
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
    from evalfast.evaluate import EvalConfig
    from evalfast.reports.compare_report import compare, comparison_markdown, comparison_text
    from evalfast.reports.html_report import render_html

    to_stderr = human_to_stderr(json_path, markdown_path, html_path, per_query_path)
    if run_path is not None and str(run_path) == STDOUT:
        raise EvalfastError("--run -: compare writes one run file per model; give a folder")
    if len(models) < 2:
        raise EvalfastError(f"compare needs at least two --model options (the first is the baseline); got {len(models)}")
    if len(precisions) not in (1, len(models)):
        raise EvalfastError(f"--precision {','.join(precisions)}: give one precision, or one per --model ({len(models)})")
    precisions = precisions * len(models) if len(precisions) == 1 else precisions
    config = EvalConfig.for_protocol(protocol, ks, seed=seed, rag_threshold=rag_threshold,
                                     ignore_identical_ids=ignore_identical_ids)
    evaluated = [run_eval(m, golden, split, config, device, p, cache_dir, no_cache, choice=choice)
                 for m, p in zip(models, precisions)]
    golden_set, results = evaluated[0][0], [result for _, result in evaluated]
    names = display_names(models, precisions)
    settings = StatSettings(resamples=resamples, permutations=permutations, alpha=alpha, seed=seed)
    document = compare(results, names, golden_set, split, config, settings, shlex.join(["evalfast", *sys.argv[1:]]))
    click.echo(comparison_text(document), err=to_stderr)
    with all_or_none() as out:
        write_reports(json_path, markdown_path, document, comparison_markdown(document), out)
        if html_path:
            out.write_text(html_path, render_html(document))
        write_outputs(out, golden_set, list(zip(names, results)), per_query_path, run_path)


@cli.command("finetune")
@click.option("--model", "-m", "base", required=True,
              help="Base model: a sentence-transformers folder, or all-MiniLM-L6-v2.")
@click.option("--golden", "-g", required=True, type=click.Path(path_type=Path),
              help="BEIR golden set; its train/dev/test splits are used, or its queries are split by prompt.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Folder for the fine-tuned model, its ONNX export, the held-out report and the model card.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=2),
              help="Pairs per batch (in-batch negatives); above 64 the cached loss keeps memory flat.")
@click.option("--lr", default=2e-5, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Learning rate.")
@click.option("--hard-negatives", default=1, show_default=True, type=click.IntRange(min=0),
              help="Hard negatives per pair, mined with the base model; 0 gives the seed's recipe.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split, sampling and training.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True, help="Where torch trains.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT (or an interrupted run) if it exists.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Model cache (as for eval).")
def finetune_command(base, golden, output, epochs, batch_size, lr, hard_negatives, seed, device, resume, overwrite,
                     cache_dir):
    """Fine-tune a model on a golden set's train split and prove the gain on held-out queries.

    MultipleNegativesRankingLoss with in-batch and hard negatives; dev evaluation each epoch with evalfast's
    metrics, best epoch kept; ONNX re-export with the parity check; base vs fine-tuned on the test split with
    intervals and paired tests (OUTPUT/report/comparison.{md,json,html}); a model card (OUTPUT/README.md).

    \b
    Examples:
      evalfast finetune -m all-MiniLM-L6-v2 -g data/golden/handwritten -o export/minilm-prompts
      evalfast finetune -m all-MiniLM-L6-v2 -g golden/heuristic -o export/minilm-heuristic --hard-negatives 0 --resume
    """
    from evalfast.reports.compare_report import comparison_text
    from evalfast.train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(epochs, batch_size, lr, hard_negatives, seed, device)
    try:
        result = finetune(base, golden, output, config, resume, overwrite, cache_dir,
                          on_status=lambda message: click.echo(message, err=True))
    except KeyboardInterrupt:
        click.echo(f"interrupted: {output} was not written; run again with --resume to continue from the last "
                   "checkpoint", err=True)
        click.get_current_context().exit(130)
    click.echo(comparison_text(result.document))
    click.echo(f"\nwrote {result.output} (trained in {result.train_seconds:.0f} s)")


def parse_duration(_ctx, _param, value: str) -> float:
    """``"30s"``, ``"500ms"``, ``"2m"`` or a plain number of seconds -> seconds (> 0)."""
    text = str(value).strip().lower()
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], scale
            break
    else:
        factor = 1.0
    try:
        seconds = float(text) * factor
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a duration such as 30s, 500ms or 2m") from None
    if not seconds > 0:
        raise click.BadParameter(f"{value!r}: must be longer than zero")
    return seconds


@cli.command("latency")
@model_options()
@click.option("--golden", "-g", required=True, type=click.Path(path_type=Path),
              help="Golden set: its corpus is indexed and its queries are sent one at a time.")
@click.option("--index", "index_name", default="hnsw", show_default=True,
              help="flat, hnsw, ivf, ivfpq, pq, sq8, or a FAISS factory string (e.g. 'HNSW64,Flat').")
@field_options(IndexSpec, "hnsw_m", "ef_search", "ef_construction")
@click.option("--nlist", default=None, type=click.IntRange(min=1), help="IVF lists [default: 4 sqrt(documents)].")
@field_options(IndexSpec, "nprobe")
@field_options(LatencyConfig, "qps")
@click.option("--duration", default="30s", show_default=True, callback=parse_duration, help="Load length (30s, 2m).")
@field_options(LatencyConfig, "concurrency")
@click.option("--arrival", type=click.Choice(["poisson", "uniform"]), default="poisson", show_default=True)
@field_options(LatencyConfig, "k")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="onnxruntime threads per query (one query at a time wants few).")
@click.option("--distractors", type=click.Path(path_type=Path),
              help="More real documents to index beside the golden corpus (text file or JSONL), judged not relevant.")
@click.option("--field", default=None, help="JSONL field of --distractors holding the text [default: text].")
@click.option("--synthetic-docs", default=None, type=click.IntRange(min=1),
              help="Grow the index to this many documents with synthetic ones drawn around the real ones.")
@click.option("--sweep", "p99_bound", default=None, callback=lambda c, p, v: None if v is None else parse_duration(c, p, v),
              help="Find the highest rate whose p99 stays under this bound (e.g. 10ms), starting from --qps.")
@click.option("--seed", default=0, show_default=True, help="Seed of the arrivals and synthetic documents.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the whole report as JSON.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write the report with its latency plot.")
@convention_options
def latency_command(model, device, precision, cache_dir, no_cache, golden, index_name, hnsw_m, ef_search,
                    ef_construction, nlist, nprobe, qps, duration, concurrency, arrival, k, threads, distractors,
                    field, synthetic_docs, p99_bound, seed, json_path, html_path, choice):
    """How fast one user's query is answered: an open-loop load of single queries, each embedded and searched.

    Arrivals follow the target rate (Poisson by default) and latency counts from each request's scheduled
    time, so queueing is not hidden. Reports p50, p90, p99, p99.9 and max, the achieved rate, errors, and the
    embedding / search split; the index's recall@k against exact search and its nDCG@10 change beside it.

    \b
    Examples:
      evalfast latency -m all-MiniLM-L6-v2 -g data/golden/handwritten --index hnsw --qps 50 --duration 30s
      evalfast latency -m export/all-MiniLM-L6-v2 --precision int8 -g data/golden/handwritten \\
          --synthetic-docs 1000000 --index hnsw --sweep 10ms --json latency.json --html latency.html
    """
    from evalfast.perf.latency import run_latency
    from evalfast.reports.html_report import render_latency_html
    from evalfast.reports.latency_report import latency_text

    config = LatencyConfig(IndexSpec(index_name, hnsw_m, ef_search, ef_construction, nlist, nprobe), qps, duration,
                           concurrency, arrival, k, synthetic_docs, p99_bound * 1000 if p99_bound else None, seed)
    golden_set = load_golden_noting(golden)
    extra_texts = read_texts(distractors, field) if distractors else []
    encoder, cache = open_encoder(model, device, precision, cache_dir, no_cache, choice, threads=threads)
    with progress_bar(golden_set.n_docs + len(extra_texts), "embedding the corpus") as bar:
        def status(message: str) -> None:  # the corpus is embedded: the bar goes
            bar.close()
            say_status(message)

        document = run_latency(encoder, golden_set, config, cache, extra_texts, str(golden),
                               shlex.join(["evalfast", *sys.argv[1:]]), bar.update, status)
    click.echo(latency_text(document), err=human_to_stderr(json_path, html_path))
    with all_or_none() as out:
        write_reports(json_path, None, document, "", out)
        if html_path:
            out.write_text(html_path, render_latency_html(document))


@cli.command("metrics")
@click.option("--qrels", required=True, type=click.Path(path_type=Path), help="TREC qrels (qid 0 docid rel) or BEIR qrels TSV (query-id corpus-id score, header optional).")
@click.option("--run", "run_path", required=True, type=click.Path(path_type=Path),
              help="TREC run: qid Q0 docid rank score tag (fields after the tag ignored).")
@click.option("--measure", "-m", "measure_names", multiple=True, metavar="NAMES",
              help="Measures by ir-measures' or trec_eval's names: nDCG@10, P@5, P(rel=2)@5, R@100, RR@10, AP, "
                   "Rprec, Success@10, Judged@10, ndcg_cut.10, P_5, recip_rank, map, ... Repeat it or separate "
                   "names with commas [default: evalfast's set at the --k cutoffs].")
@click.option("--k", "ks", default=",".join(map(str, DEFAULT_KS)), show_default=True, callback=parse_ks,
              help="Cutoffs of evalfast's set, scored without --measure.")
@click.option("--average", type=click.Choice(("all", "both", "judged")), default="all", show_default=True,
              help="The queries each mean is over. all: every query in the qrels, as trec_eval -c (a query absent "
                   "from the run scores 0); both: the queries in both files, as trec_eval without -c; judged: the "
                   "qrels queries with a relevant document, as evalfast eval's qrels protocol. Run queries absent from "
                   "the qrels are ignored.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write the means, the averaging rule and the query counts as JSON.")
def metrics_command(qrels, run_path, measure_names, ks, average, json_path):
    """Score a TREC run against TREC or BEIR qrels with evalfast's metric engine.

    Ranking follows trec_eval (score descending, ties by docid descending; the rank column is ignored). Each
    measure is printed by the name it was given; the JSON also holds its ir-measures name.

    \b
    Examples:
      evalfast metrics --qrels qrels.test.txt --run bm25.trec --k 10,100 --json scores.json
      evalfast metrics --qrels qrels.test.txt --run bm25.trec -m 'nDCG@10,RR@10,P(rel=2)@5' --average both
    """
    from click.core import ParameterSource

    from evalfast.metrics.averaging import averaged_queries, means
    from evalfast.metrics.measures import measure_values
    from evalfast.metrics.names import default_measures, parse_measures

    if measure_names and click.get_current_context().get_parameter_source("ks") is ParameterSource.COMMANDLINE:
        raise EvalfastError("give --measure or --k, not both: --k sets the cutoffs of evalfast's default set; name "
                            "each cutoff in --measure instead (nDCG@10,nDCG@100)")
    named = parse_measures(measure_names) if measure_names else default_measures(ks)
    read = read_qrels_file(qrels)
    judgments, query_names, doc_names = read.qrels, read.query_names, read.doc_names
    if not (judgments.relevance > 0).any():
        raise EvalfastError(f"{qrels}: no query has a relevant document (every relevance is 0 or less), so every "
                            "metric would be 0; check the relevance column")
    run, run_query_names = read_run_to_score(run_path, query_names, doc_names, read.doc_table)
    in_run = (run.doc_ids >= 0).any(axis=1)
    mask, counts = averaged_queries(average, judgments.relevant_counts(), in_run)
    if not counts.queries_averaged:  # only --average both can be left with no query
        raise EvalfastError(f"{run_path}: none of its {int(in_run.sum())} queries is in {qrels} (the first is "
                            f"{run_query_names[judgments.n_queries]!r}), so --average both has no query to average; "
                            "check that the run answers these qrels, or use --average all")
    per_query = measure_values(run.doc_ids, judgments, [measure for _, measure in named])
    averaged = means({name: per_query[measure] for name, measure in named}, mask)
    to_stderr = human_to_stderr(json_path)
    click.echo(f"{counts.summary()}\nqrels read as {QRELS_FORMATS[read.format]}\n", err=to_stderr)
    if measure_names:
        click.echo(text_table(["measure", "mean"], [[name, f"{value:.4f}"] for name, value in averaged.items()]),
                   err=to_stderr)
    else:
        click.echo(text_table(*metric_grid(averaged)), err=to_stderr)
    if json_path:
        write_reports(json_path, None, {"average": counts.as_dict(), "qrels_format": read.format, "metrics": averaged,
                                        "measures": {name: measure.name for name, measure in named}}, "")


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
@click.option("--budget", "budget_seconds", default="15m", show_default=True, callback=parse_duration,
              help="Time limit of the whole bench (e.g. 10m, 90s): contenders and rounds left when it is spent are "
                   "skipped, and the reports say so.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True,
              help="Where the JSON and Markdown reports go (rewritten after each contender and round).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Model cache (as for eval).")
@engine_options
def bench_command(model, texts_path, golden, devices, precisions, against, n_texts, repeats, budget_seconds,
                  output_dir, cache_dir, engine):
    """Measure embedding throughput and accuracy against sentence-transformers.

    Each evalfast device x precision and each peer embeds the same texts in interleaved rounds; the
    table gives sentences/s, tokens/s, the ratio to sentence-transformers fp32 on the same device (per
    round, median [min-max]), peak memory, and accuracy (1-cos, and the nDCG@10 change with --golden).
    Once --budget is spent the rest is skipped; the reports are rewritten after each contender and round,
    so an interrupted bench keeps what it measured. Peers that would not run natively here (bf16 autocast
    on a CPU without bf16 instructions) are left out, with a note.

    \b
    Examples:
      evalfast bench -m all-MiniLM-L6-v2 --golden data/golden/handwritten
      evalfast bench -m all-MiniLM-L6-v2 --golden data/golden/handwritten --n 500 --repeats 2 --budget 10m
      evalfast bench -m export/all-MiniLM-L6-v2 --texts queries.txt --device cuda --precision fp32,fp16
      evalfast bench -m export/all-MiniLM-L6-v2 --golden data/golden/handwritten --engine ray --actors 2
    """
    from evalfast.data.golden import load_golden
    from evalfast.model.cache import default_cache_dir
    from evalfast.model.export import ensure_exported
    from evalfast.perf.bench import BenchConfig

    if bool(texts_path) == bool(golden):
        raise EvalfastError("bench: give exactly one of --texts FILE or --golden G")
    golden_set = load_golden(golden) if golden else None
    base = read_texts(texts_path, None) if texts_path else golden_set.doc_texts + golden_set.query_texts
    texts = [base[i % len(base)] for i in range(n_texts)]
    folder = ensure_exported(model, cache_dir or default_cache_dir(), on_status=say_status)
    config = BenchConfig(devices, precisions, against == "sentence-transformers", repeats, budget_seconds,
                         engine.actors if engine.name == "ray" else None)
    with engine_session(engine):
        write_bench(folder, texts, config, golden_set, golden, output_dir)


def write_bench(folder: Path, texts: list[str], config: BenchConfig, golden_set: GoldenSet | None,
                golden: Path | None, output_dir: Path) -> None:
    """Run the bench, its JSON and Markdown reports written together, atomically, after each contender and round,
    so an interrupted bench keeps what it measured; then print its table."""
    from datetime import datetime, timezone

    from evalfast.perf.bench import run_bench
    from evalfast.reports.report import bench_notes

    stem = output_dir / f"bench-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"

    def save(document: dict) -> None:
        with all_or_none() as outputs:
            outputs.write_text(stem.with_suffix(".json"), dumps(document))
            outputs.write_text(stem.with_suffix(".md"), bench_markdown(document))

    with contextlib.ExitStack() as stack:
        bar = None

        def step(label: str, steps: int) -> None:
            nonlocal bar
            bar = bar or stack.enter_context(progress_bar(steps, "bench"))
            bar.set_description(label)
            bar.update()

        try:
            document = run_bench(folder, texts, config, golden_set, str(golden) if golden else None,
                                 shlex.join(["evalfast", *sys.argv[1:]]), step, save)
        except KeyboardInterrupt:
            click.echo(f"interrupted: {stem}.json and {stem}.md hold what was measured until then", err=True)
            click.get_current_context().exit(130)
    click.echo(text_table(*bench_table(document["rows"])))
    for note in bench_notes(document):
        click.echo(note)
    click.echo(f"\nwrote {stem}.json and {stem}.md")


cli.add_command(golden_group)


def main() -> None:
    """Console entry point."""
    cli(prog_name="evalfast")
