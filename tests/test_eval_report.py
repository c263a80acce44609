"""The eval report's embedding line: its rates are taken over the time printed beside them."""

from __future__ import annotations

import re

import pytest

from evalfast.comparison.compare import StatSettings, metric_intervals
from evalfast.data.golden import load_golden
from evalfast.evaluate import evaluate
from evalfast.model.cache import EmbeddingCache
from evalfast.model.encoder import Encoder
from evalfast.reports.report import format_result, result_markdown

from conftest import HANDWRITTEN

EMBED_LINE = re.compile(r"embed   (\d+) texts \(documents and queries\) in ([\d.]+) s: ([\d,]+) texts/s, "
                        r"([\d,]+) tokens/s")


def report(result) -> str:
    return format_result(result, metric_intervals(result, ["ndcg@10"], StatSettings(resamples=20)))


@pytest.fixture(scope="module")
def results(tiny_export, tmp_path_factory):
    """A first evaluation through an empty cache, then a second served from it."""
    encoder, golden = Encoder(tiny_export), load_golden(HANDWRITTEN)
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache"), encoder.fingerprint)
    return evaluate(encoder, golden, cache=cache), evaluate(encoder, golden, cache=cache)


def test_rates_use_the_time_printed_beside_them(results):
    fresh = results[0]
    match = EMBED_LINE.search(report(fresh))
    assert match, report(fresh)
    texts, seconds, rate, token_rate = (float(group.replace(",", "")) for group in match.groups())
    assert texts == fresh.counts["documents"] + fresh.counts["queries"]
    printed_seconds = round(fresh.timings["embed_seconds"], 2)
    assert seconds == printed_seconds
    assert rate == round(texts / fresh.timings["embed_seconds"])
    assert token_rate == round(fresh.embedding["tokens"] / fresh.timings["embed_seconds"])


def test_a_cached_evaluation_claims_no_rate(results):
    cached = results[1]
    assert cached.embedding["encoded"] == 0 and cached.embedding["cached"] > 0
    for text in (report(cached), result_markdown(cached, {})):
        line = next(line for line in text.splitlines() if "texts (documents and queries)" in line)
        assert "all from the cache, so no encoding rate was measured" in line and "texts/s" not in line


def test_the_report_says_which_split_it_scored(results, tmp_path):
    from evalfast.reports.report import result_json

    result = results[1]
    assert f"golden  {HANDWRITTEN} (split test):" in report(result)
    assert result_json(result, {})["split"] == "test"
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,context,relevance\nhaunted ship,a ghost ship drifts,1\ndragon,a dragon hoards books,1\n")
    assert load_golden(pairs).split is None
