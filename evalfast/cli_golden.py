"""``evalfast golden``: make, check and convert golden sets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evalfast.data.splits import parse_fractions
from evalfast.errors import EvalfastError
from evalfast.progress import progress_bar

if TYPE_CHECKING:  # the generators are imported by their commands: `evalfast --help` starts without them
    from evalfast.generate.drafts import DraftQuery


def split_option(command):
    return click.option("--split", "fractions", default=None, callback=lambda _c, _p, v: parse_fractions(v) if v else None,
                        help="train/dev/test fractions by prompt, e.g. 0.8/0.1/0.1 (train/test: 0.8/0.2); "
                             "a prompt's queries all go to one split [default: everything in test].")(command)


def generator_options(command):
    """--prompts, -o, --seed, --split, --overwrite."""
    for option in reversed([
        click.option("--prompts", "-p", "prompts_path", required=True, type=click.Path(path_type=Path),
                     help="Prompt library (JSONL with id, genres, themes, title, text)."),
        click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="BEIR folder to write."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed for every random choice."),
        split_option,
        click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists."),
    ]):
        command = option(command)
    return command


def report_written(output: Path, drafts: list[DraftQuery], per_split: Counter, n_prompts: int) -> None:
    kinds = Counter(d.kind for d in drafts)
    click.echo(f"wrote {output}: {len(drafts)} queries ({', '.join(f'{n} {k}' for k, n in kinds.items())}) "
               f"over {n_prompts} prompts; {sum(len(d.judgments) for d in drafts)} judgments; "
               + ", ".join(f"{split} {n}" for split, n in sorted(per_split.items())))


@click.group("golden")
def golden():
    """Make, check and convert golden sets (BEIR folders, or the seed's CSV/JSONL pairs).

    \b
    Examples:
      evalfast golden heuristic -p data/prompts/prompts.jsonl -o golden/heuristic --split 0.8/0.1/0.1
      evalfast golden llm -p data/prompts/prompts.jsonl -o golden/llm --base-url http://localhost:8000/v1 --model qwen2.5-7b
      evalfast golden check data/golden/handwritten
      evalfast golden convert seed.csv -o golden/seed --to beir
    """


@golden.command("heuristic")
@generator_options
def heuristic_command(prompts_path, output, seed, fractions, overwrite):
    """Template queries over a prompt library: genre, genre + theme and keyword queries.

    Every prompt that answers a query is judged relevant (all fantasy prompts for "fantasy writing prompts";
    2 for the main genre, 1 for a second genre); a keyword query's own prompt gets 2 and other prompts with
    both keywords 1. Stop-words are removed and the same seed gives the same set.

    \b
    Example:
      evalfast golden heuristic -p data/prompts/prompts.jsonl -o golden/heuristic --seed 0 --split 0.8/0.1/0.1
    """
    from evalfast.data.beir import check_output
    from evalfast.data.prompts import load_prompts
    from evalfast.generate.drafts import write_generated
    from evalfast.generate.heuristic import heuristic_queries

    check_output(output, overwrite)
    prompts = load_prompts(prompts_path)
    drafts = heuristic_queries(prompts, seed)
    per_split = write_generated(output, prompts, drafts, fractions, seed, overwrite)
    report_written(output, drafts, per_split, len(prompts))


@golden.command("llm")
@generator_options
@click.option("--base-url", required=True, help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or "
                                                "http://localhost:8000/v1 (vLLM, llama.cpp server, Ollama).")
@click.option("--model", "model_name", required=True, help="Model name the endpoint serves.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the API key (never written anywhere); unset sends 'EMPTY'.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64), help="Requests in flight.")
@click.option("--queries-per-prompt", default=3, show_default=True, type=click.IntRange(1, 3),
              help="Queries asked for (and kept at most) per prompt.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds per request before it is retried.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Response cache [default: $EVALFAST_CACHE/llm or ~/.cache/evalfast/llm]; re-runs resume from it.")
def llm_command(prompts_path, output, seed, fractions, overwrite, base_url, model_name, api_key_env, concurrency,
                queries_per_prompt, timeout, cache_dir):
    """Queries written by an LLM, as the seed did: 1-3 search queries per prompt, judged relevant (2) to it.

    Answers are cleaned (one query per line; list markers and "can you / show me / recommend ..." removed; only
    well-formed queries kept). Every response is cached, keyed by model, template and prompt text, so a stopped
    run resumes where it stopped and a re-run makes no calls. 429, 5xx and timeouts are retried with backoff.

    \b
    Example:
      export OPENAI_API_KEY=...
      evalfast golden llm -p data/prompts/prompts.jsonl -o golden/llm --base-url https://api.openai.com/v1 \\
          --model gpt-4o-mini --split 0.8/0.1/0.1
    """
    from evalfast.data.beir import check_output
    from evalfast.data.prompts import load_prompts
    from evalfast.generate.drafts import DraftQuery, write_generated
    from evalfast.generate.llm import LLMConfig, generate_llm_queries
    from evalfast.model.cache import default_cache_dir

    check_output(output, overwrite)
    prompts = load_prompts(prompts_path)
    config = LLMConfig(base_url=base_url, model=model_name, api_key_env=api_key_env, concurrency=concurrency,
                       queries_per_prompt=queries_per_prompt, timeout=timeout)
    with progress_bar(len(prompts), "llm", unit="prompt") as bar:
        def show(progress) -> None:
            bar.set_postfix(calls=progress.calls, retries=progress.retries, cached=progress.cache_hits, refresh=False)
            bar.update(progress.prompts_done - bar.n)

        generated = generate_llm_queries(prompts, config, cache_dir or default_cache_dir() / "llm", show,
                                         on_status=lambda message: click.echo(message, err=True))
    drafts = list({q.text.lower(): DraftQuery(q.text, q.prompt_id, "llm", {q.prompt_id: 2}) for q in generated}.values())
    if not drafts:
        raise EvalfastError(f"{base_url}: the model gave no usable query for any prompt; check --model and the endpoint")
    per_split = write_generated(output, prompts, drafts, fractions, seed, overwrite)
    report_written(output, drafts, per_split, len(prompts))


@golden.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the findings as JSON.")
def check_command(path, json_path):
    """Report what is wrong with a golden set (BEIR folder, CSV or JSONL pairs).

    Errors (exit status 1): duplicate ids, ids with whitespace or control characters, qrels naming missing ids,
    unreadable lines, empty texts or texts that are not strings, conflicting judgments, a split or file in which
    nothing is relevant. Warnings (exit status 0): duplicate or near-duplicate documents (they make ties), queries
    with no relevant document, a query equal to a document, columns that are not read.

    \b
    Example:
      evalfast golden check data/golden/handwritten
    """
    from evalfast.atomic import write_text
    from evalfast.data.golden_check import check_golden, format_report, report_json
    from evalfast.reports.report import dumps

    report = check_golden(path)
    click.echo(format_report(report))
    if json_path:
        write_text(json_path, dumps(report_json(report)))
    click.get_current_context().exit(report.exit_status())


@golden.command("convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="File or folder to write.")
@click.option("--to", "target_format", required=True, type=click.Choice(["beir", "jsonl", "csv"]), help="Output format.")
@click.option("--split", default="test", show_default=True, help="BEIR qrels split to read or write.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def convert_command(source, output, target_format, split, overwrite):
    """Convert between BEIR folders and the seed's CSV / JSONL pairs, losslessly (or refuse, saying why).

    \b
    Examples:
      evalfast golden convert prompt_evaluation_dataset.csv -o golden/seed --to beir
      evalfast golden convert data/golden/handwritten -o handwritten.csv --to csv
    """
    from evalfast.data.convert import convert_golden

    written = convert_golden(source, output, target_format, overwrite=overwrite, split=split)
    click.echo(f"wrote {written}")
