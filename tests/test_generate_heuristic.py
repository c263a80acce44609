"""The template generator and splits: properties over random libraries (hypothesis), the seed's flaws fixed,
and the CLI writing BEIR folders that load_golden reads back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from evalfast.cli import cli
from evalfast.data.golden import load_golden
from evalfast.data.prompts import Prompt, load_prompts
from evalfast.data.splits import parse_fractions, split_prompts
from evalfast.errors import EvalfastError
from evalfast.generate.drafts import write_generated
from evalfast.generate.heuristic import STOP_WORDS, heuristic_queries

from conftest import REPO, write_file

LIBRARY = REPO / "data" / "prompts" / "prompts.jsonl"
GENRES = ("fantasy", "horror", "memoir", "science fiction", "essay")
THEMES = ("the sea", "grief", "maps", "winter", "music")
VOCABULARY = ("lighthouse", "keeper", "storm", "letter", "brother", "orchard", "violin", "the", "about", "and",
              "glacier", "compass", "ghost", "recipe", "train")


@st.composite
def libraries(draw) -> list[Prompt]:
    n = draw(st.integers(1, 25))
    prompts = []
    for i in range(n):
        genres = draw(st.lists(st.sampled_from(GENRES), min_size=1, max_size=2, unique=True))
        themes = draw(st.lists(st.sampled_from(THEMES), min_size=1, max_size=3, unique=True))
        text = " ".join(draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=12)))
        prompts.append(Prompt(f"p{i:03d}", tuple(genres), tuple(themes), f"Title {i}", text))
    return prompts


@settings(max_examples=60, deadline=None)
@given(libraries(), st.integers(0, 2**32 - 1))
def test_every_query_has_a_relevant_prompt_and_seeds_reproduce(prompts, seed):
    drafts = heuristic_queries(prompts, seed)
    ids = {p.id for p in prompts}
    for draft in drafts:
        assert draft.judgments and max(draft.judgments.values()) >= 1
        assert set(draft.judgments) <= ids
        if draft.source is not None:
            assert draft.judgments[draft.source] == 2
    assert len({d.text.lower() for d in drafts}) == len(drafts)
    assert heuristic_queries(prompts, seed) == drafts


@settings(max_examples=60, deadline=None)
@given(libraries(), st.integers(0, 2**32 - 1))
def test_genre_queries_judge_every_prompt_of_the_genre(prompts, seed):
    for draft in heuristic_queries(prompts, seed):
        if draft.kind == "genre":
            genre = next(g for g in GENRES if g in draft.text)
            expected = {p.id: 2 if p.genres[0] == genre else 1 for p in prompts if genre in p.genres}
            assert draft.judgments == expected


@settings(max_examples=40, deadline=None)
@given(libraries(), st.integers(0, 1000), st.sampled_from(["0.8/0.1/0.1", "0.5/0.5", "0.6/0.2/0.2"]))
def test_splits_never_share_a_prompt(tmp_path_factory, prompts, seed, split):
    fractions = parse_fractions(split)
    if len(prompts) < len(fractions):
        with pytest.raises(EvalfastError, match="too few"):
            split_prompts([p.id for p in prompts], fractions, seed)
        return
    folder = tmp_path_factory.mktemp("split") / "set"
    drafts = heuristic_queries(prompts, seed)
    write_generated(folder, prompts, drafts, fractions, seed)
    split_of_source: dict[str, set[str]] = {}
    for line in (folder / "queries.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["source"] is not None:
            split_of_source.setdefault(record["source"], set()).add(record["split"])
    assert all(len(splits) == 1 for splits in split_of_source.values())
    assignment = split_prompts([p.id for p in prompts], fractions, seed)
    assert sorted(assignment) == sorted(p.id for p in prompts)
    for name, fraction in fractions.items():
        count = sum(s == name for s in assignment.values())
        assert count >= 1
        if min(fractions.values()) * len(prompts) >= 1:  # no split needed rounding up to reach one prompt
            assert abs(count - fraction * len(prompts)) < 1


def test_keywords_are_content_words_unlike_the_seeds():
    drafts = heuristic_queries(load_prompts(LIBRARY), seed=7)
    keyword_queries = [d for d in drafts if d.kind == "keywords"]
    assert len(keyword_queries) == 320
    for draft in keyword_queries:
        for word in draft.text.lower().replace("find a writing prompt about", "").split():
            assert word in {"and", "prompt", "with", "writing"} or word not in STOP_WORDS, draft.text
    assert "about about" not in " ".join(d.text for d in drafts)


@pytest.mark.parametrize("text", ["0.8/0.1", "a/b/c", "0.5/0.6/0.1", "-0.2/0.6/0.6", "1"])
def test_bad_fractions_are_refused(text):
    with pytest.raises(EvalfastError, match="--split"):
        parse_fractions(text)


def test_cli_writes_a_beir_folder_per_split(tmp_path):
    out = tmp_path / "heuristic"
    args = ["golden", "heuristic", "-p", str(LIBRARY), "-o", str(out), "--seed", "3", "--split", "0.8/0.1/0.1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    totals = 0
    for split in ("train", "dev", "test"):
        golden = load_golden(out, split)
        assert golden.n_docs == 320 and (golden.qrels.relevant_counts() > 0).all()
        totals += golden.n_queries
    assert totals == len((out / "queries.jsonl").read_text().splitlines())

    before = (out / "queries.jsonl").read_bytes()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (out / "queries.jsonl").read_bytes() == before


def test_cli_rejects_a_broken_library_with_one_line(tmp_path):
    library = write_file(tmp_path / "prompts.jsonl", '{"id": "p1", "genres": [], "themes": ["x"], "title": "T", "text": "t"}\n')
    result = CliRunner().invoke(cli, ["golden", "heuristic", "-p", str(library), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "line 1: genres must be a non-empty list" in result.output
    assert not (tmp_path / "out").exists()
