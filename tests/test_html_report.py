"""The HTML comparison report: self-contained, escaped, robust to odd values; and a real headless Chromium
opens it offline with no errors, no network request and every plot drawn."""

from __future__ import annotations

import html
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evalfast.comparison.compare import StatSettings, compare_results
from evalfast.data.golden import load_golden
from evalfast.evaluate import evaluate
from evalfast.model.cache import EmbeddingCache
from evalfast.model.encoder import Encoder, EncoderConfig
from evalfast.model.variants import ensure_variant
from evalfast.reports.compare_report import comparison_document, comparison_markdown, comparison_text, verdict_paragraph
from evalfast.reports.html_report import SIMULATED_HEADING, nice_ticks, render_html

from conftest import HANDWRITTEN

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLOTS = ("metric-vs-k", "differences", "scores", "throughput")
EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

# the brief's example of an `evalfast compare` document, verbatim
EXAMPLE_JSON = r"""
{
  "schema_version": 1,
  "kind": "evalfast.compare",
  "date": "2026-11-26T23:50:00+00:00",
  "command": "evalfast compare -m export/all-MiniLM-L6-v2 -m export/all-MiniLM-L6-v2 --precision fp32,int8 -g data/golden/handwritten --html cmp.html",
  "golden": {"path": "data/golden/handwritten", "split": "test", "queries": 340, "documents": 320, "queries_scored": 316},
  "settings": {"confidence": 0.95, "resamples": 1000, "permutations": 10000, "seed": 0, "alpha": 0.05,
               "correction": "holm", "ks": [1, 3, 5, 10, 100], "headline": "ndcg@10", "rag_k": 10, "rag_threshold": 0.5},
  "models": [
    {"name": "all-MiniLM-L6-v2 fp32", "model": "export/all-MiniLM-L6-v2", "sha256": "4952d7a6bc15", "precision": "fp32", "device": "cpu",
     "metrics": {"ndcg@1": {"mean": 0.679, "low": 0.628, "high": 0.730}, "ndcg@3": {"mean": 0.597, "low": 0.55, "high": 0.64},
                 "ndcg@10": {"mean": 0.623, "low": 0.588, "high": 0.657}, "recall@10": {"mean": 0.581, "low": 0.55, "high": 0.61},
                 "mrr@10": {"mean": 0.791, "low": 0.75, "high": 0.83}, "r_precision": {"mean": 0.447, "low": 0.41, "high": 0.48}},
     "rag": {"context_precision@10": {"mean": 0.62, "low": 0.58, "high": 0.66}, "context_recall@10": {"mean": 0.58, "low": 0.55, "high": 0.61},
             "context_precision@10 (cosine >= 0.5)": {"mean": 0.41, "low": 0.37, "high": 0.45}},
     "similarity": {"similarity": 0.291, "simulated_context_precision": 0.234},
     "throughput": {"texts_per_second": 107.0, "embed_seconds": 3.65, "search_seconds": 0.23, "texts_embedded": 660},
     "score_histogram": {"edges": [-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "relevant": [0, 3, 40, 180, 90, 10], "non_relevant": [20, 900, 1500, 400, 30, 1]}},
    {"name": "all-MiniLM-L6-v2 int8", "model": "export/all-MiniLM-L6-v2", "sha256": "aa12bb34cc56", "precision": "int8", "device": "cpu",
     "metrics": {"ndcg@1": {"mean": 0.675, "low": 0.62, "high": 0.73}, "ndcg@3": {"mean": 0.593, "low": 0.55, "high": 0.64},
                 "ndcg@10": {"mean": 0.619, "low": 0.584, "high": 0.653}, "recall@10": {"mean": 0.571, "low": 0.54, "high": 0.60},
                 "mrr@10": {"mean": 0.794, "low": 0.75, "high": 0.83}, "r_precision": {"mean": 0.443, "low": 0.41, "high": 0.48}},
     "rag": {"context_precision@10": {"mean": 0.61, "low": 0.57, "high": 0.65}, "context_recall@10": {"mean": 0.57, "low": 0.54, "high": 0.60},
             "context_precision@10 (cosine >= 0.5)": {"mean": 0.40, "low": 0.36, "high": 0.44}},
     "similarity": {"similarity": 0.289, "simulated_context_precision": 0.232},
     "throughput": {"texts_per_second": 190.0, "embed_seconds": 2.05, "search_seconds": 0.21, "texts_embedded": 660},
     "score_histogram": {"edges": [-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "relevant": [0, 4, 41, 178, 89, 11], "non_relevant": [22, 899, 1498, 402, 29, 1]}}
  ],
  "comparisons": [
    {"baseline": "all-MiniLM-L6-v2 fp32", "candidate": "all-MiniLM-L6-v2 int8",
     "metrics": {"ndcg@10": {"baseline": 0.623, "candidate": 0.619, "difference": -0.0041, "low": -0.0089, "high": 0.0004,
                             "p_randomization": 0.09, "p_t_test": 0.08, "p_randomization_holm": 0.09, "p_t_test_holm": 0.08, "significant": false},
                 "recall@10": {"baseline": 0.581, "candidate": 0.571, "difference": -0.0099, "low": -0.018, "high": -0.002,
                               "p_randomization": 0.012, "p_t_test": 0.011, "p_randomization_holm": 0.012, "p_t_test_holm": 0.011, "significant": true}},
     "per_query_differences": {"metric": "ndcg@10", "values": [0.0, -0.1, 0.05, 0.0, 0.0, -0.2, 0.1]},
     "worse": [{"query_id": "q017", "text": "ghost ship", "baseline": 0.9, "candidate": 0.5}],
     "better": [{"query_id": "q101", "text": "food on vacation", "baseline": 0.3, "candidate": 0.6}]}
  ],
  "hardest": [{"query_id": "q093", "text": "something where a detective...", "mean": 0.0, "first_relevant_rank": {"all-MiniLM-L6-v2 fp32": 57, "all-MiniLM-L6-v2 int8": 61}}]
}
"""


def example() -> dict:
    """A fresh copy of the example document."""
    return json.loads(EXAMPLE_JSON)


class Tree(HTMLParser):
    """Records every start tag with its attributes and the tags it sits in."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "line", "rect", "circle", "polyline", "path"}

    def __init__(self, page: str):
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs), tuple(self.stack)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs), tuple(self.stack)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def plots(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs, _ in self.tags if tag == "svg" and attrs.get("data-plot") == name]


def assert_no_bad_coordinates(page: str) -> None:
    """No NaN or infinity reached an SVG coordinate."""
    assert not re.search(r'\b(x|y|x1|x2|y1|y2|cx|cy|width|height|points)="[^"]*(nan|inf)', page, re.I)


def test_example_holds_every_section_in_order_and_is_well_formed():
    page = render_html(example())
    tree = Tree(page)
    assert tree.stack == []
    headings = ["evalfast comparison report", "Settings", "Retrieval metrics", "Comparisons",
                "RAG-style retrieval metrics", SIMULATED_HEADING, "Plots", "Queries that got worse",
                "Queries that got better", "Hardest queries"]
    positions = [page.index(h) for h in headings]
    assert positions == sorted(positions)
    for fact in ("2026-11-26T23:50:00+00:00", "data/golden/handwritten", "split test", "340 queries",
                 "320 documents", "316 queries scored", "95%", "10000", "Holm", "at least 0.5",
                 "--precision fp32,int8"):
        assert fact in page, fact


def test_cells_are_formatted_as_value_and_interval():
    page = render_html(example())
    assert "0.623 [0.588, 0.657]" in page  # ndcg@10 of fp32
    assert "0.410 [0.370, 0.450]" in page  # the RAG threshold variant
    assert "-0.010 [-0.018, -0.002]" in page  # recall@10 difference
    assert "-0.004 [-0.009, +0.000]" in page
    recall_row = re.search(r"<tr><td>recall@10</td>.*?</tr>", page.split("<h2>Comparisons")[1]).group(0)
    ndcg_row = re.search(r"<tr><td>ndcg@10</td>.*?</tr>", page.split("<h2>Comparisons")[1]).group(0)
    assert '<strong class="significant">' in recall_row and "0.012 / 0.011" in recall_row
    assert "not significant" in ndcg_row and "significant</strong>" not in ndcg_row
    assert "0.291" in page.split(SIMULATED_HEADING)[-1]


def test_page_references_nothing_outside_itself():
    page = render_html(example())
    assert "http://" not in page and "https://" not in page
    tags = Tree(page).tags
    assert not [t for t, attrs, _ in tags if {"src", "href", "xlink:href", "srcset", "action"} & attrs.keys()]
    assert not {"script", "link", "img", "iframe", "object", "embed"} & {t for t, _, _ in tags}
    assert "@import" not in page and "url(" not in page


def test_every_plot_is_an_svg_in_a_captioned_figure():
    tree = Tree(render_html(example()))
    assert len(tree.plots("metric-vs-k")) == 3  # ndcg, recall, mrr
    assert {attrs["data-family"] for attrs in tree.plots("metric-vs-k")} == {"ndcg", "recall", "mrr"}
    assert (len(tree.plots("differences")), len(tree.plots("scores")), len(tree.plots("throughput"))) == (1, 2, 1)
    svgs = [(attrs, parents) for tag, attrs, parents in tree.tags if tag == "svg"]
    assert all(attrs.get("class") == "plot" and attrs.get("data-plot") in PLOTS and "figure" in parents
               for attrs, parents in svgs)
    figure_count = sum(tag == "figure" for tag, _, _ in tree.tags)
    assert sum(tag == "figcaption" for tag, _, _ in tree.tags) == figure_count == len(svgs) == 7


def test_strings_from_the_document_are_escaped():
    document = example()
    name = EVIL + '" onmouseover="alert(2)'
    document["models"][0]["name"] = name
    document["comparisons"][0]["baseline"] = name
    document["comparisons"][0]["worse"][0]["text"] = EVIL
    document["hardest"][0]["text"] = "see https://example.com/?a=1&b=2 " + EVIL
    document["hardest"][0]["first_relevant_rank"] = {name: 3}
    document["command"] = "evalfast compare " + EVIL
    page = render_html(document)
    assert "<script" not in page.lower()
    assert page.count(EVIL_ESCAPED) >= 8
    assert 'onmouseover="' not in page
    assert "https://example.com/?a=1&amp;b=2" in page
    assert not [t for t, attrs, _ in Tree(page).tags if "href" in attrs or "onmouseover" in attrs]


def test_one_model_and_no_comparisons():
    document = example()
    document["models"] = document["models"][:1]
    document["comparisons"] = []
    document["hardest"][0]["first_relevant_rank"].pop("all-MiniLM-L6-v2 int8")
    page = render_html(document)
    tree = Tree(page)
    assert not tree.plots("differences")
    assert (len(tree.plots("metric-vs-k")), len(tree.plots("scores")), len(tree.plots("throughput"))) == (3, 1, 1)
    assert "<h2>Comparisons" not in page and "Queries that got worse" not in page
    assert "Hardest queries" in page


def test_missing_and_nan_values_do_not_crash():
    document = example()
    fp32, int8 = document["models"]
    fp32["metrics"]["ndcg@3"] = {"mean": math.nan, "low": None, "high": math.inf}
    fp32["metrics"]["ndcg@1"]["low"] = None
    int8["metrics"]["recall@10"] = None
    fp32["rag"]["context_recall@10"] = {"mean": None, "low": None, "high": None}
    fp32["similarity"]["similarity"] = math.nan
    fp32["throughput"]["texts_per_second"] = None
    fp32["score_histogram"] = {"edges": [], "relevant": [], "non_relevant": []}
    int8["score_histogram"]["relevant"] = [None, math.nan, 1, 2, 3, 4]
    comparison = document["comparisons"][0]
    comparison["metrics"]["ndcg@10"].update(difference=math.nan, low=None, p_t_test=None, significant=None)
    comparison["per_query_differences"]["values"] = [0.1, None, math.nan, -0.3]
    comparison["worse"][0]["baseline"] = None
    document["hardest"][0]["first_relevant_rank"]["all-MiniLM-L6-v2 int8"] = None
    page = render_html(document)
    assert "n/a" in page and "no scores recorded" in page
    assert_no_bad_coordinates(page)
    assert all(Tree(page).plots(name) for name in PLOTS)


def test_all_equal_and_empty_values_do_not_divide_by_zero():
    document = example()
    for model in document["models"]:
        model["metrics"] = {key: {"mean": 0.5, "low": 0.5, "high": 0.5} for key in model["metrics"]}
        model["throughput"]["texts_per_second"] = 0.0
        model["score_histogram"]["relevant"] = [0] * 6
    document["models"][1]["score_histogram"]["edges"] = [0.5] * 7  # degenerate bins are skipped
    document["comparisons"][0]["per_query_differences"]["values"] = [0.0] * 50
    document["comparisons"][0]["worse"] = []
    document["hardest"] = []
    page = render_html(document)
    assert_no_bad_coordinates(page)
    assert "mean +0.0000 over 50 queries" in page

    document["comparisons"][0]["per_query_differences"]["values"] = []
    assert "no per-query differences" in render_html(document)


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (0.55, 0.73), (-0.2, 0.1), (0.0, 0.0), (5.0, 5.0),
                                       (0.0, 2851.0), (-1e-9, 1e-9), (math.nan, 1.0)])
def test_nice_ticks_cover_the_range_with_round_steps(low, high):
    ticks = nice_ticks(low, high)
    assert len(ticks) >= 2 and ticks == sorted(set(ticks))
    if math.isfinite(low) and high > low:
        assert ticks[0] <= low and ticks[-1] >= high
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() > 0


# ---------------------------------------------------------------- a real browser


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """The example report opened from a file:// URL in headless Chromium, with what the page reported."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (`make test` installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing "
                                                                 "(pip install playwright; no browser download needed)")
    folder = tmp_path_factory.mktemp("html_report")
    report = folder / "report.html"
    report.write_text(render_html(example()), encoding="utf-8")
    errors: list[str] = []
    outside: list[str] = []

    def route(request_route):
        if request_route.request.url.startswith("file://"):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: None if request.url.startswith("file://")
                    else outside.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            yield page, errors, outside, folder
        finally:
            browser.close()


@pytest.mark.browser
def test_browser_opens_the_report_offline_without_errors(browser_page):
    page, errors, outside, _ = browser_page
    assert page.title().startswith("evalfast comparison report")
    assert errors == []
    assert outside == []


@pytest.mark.browser
@pytest.mark.parametrize("name", PLOTS)
def test_browser_draws_every_plot(browser_page, name):
    page = browser_page[0]
    plots = page.locator(f'svg.plot[data-plot="{name}"]')
    assert plots.count() >= 1
    for i in range(plots.count()):
        plot = plots.nth(i)
        plot.scroll_into_view_if_needed()
        assert plot.is_visible()
        box = plot.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100
        assert plot.locator("path, polyline, rect, line").count() >= 5


@pytest.mark.browser
def test_browser_screenshot_is_a_real_picture(browser_page):
    page, _, _, folder = browser_page
    shot = folder / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


# ---------------------------------------------------------------- a real comparison's report


@pytest.fixture(scope="module")
def real_document(tiny_export, tmp_path_factory):
    """`comparison_document` of the tiny model's fp32 against its int8 variant on the hand-written set; the
    int8 embeddings came from a warm cache, as a second `evalfast compare` run's would."""
    ensure_variant(tiny_export, "int8")
    golden = load_golden(HANDWRITTEN)
    fp32 = Encoder(tiny_export)
    int8 = Encoder(tiny_export, EncoderConfig.for_device("cpu", "int8"))
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache"), int8.fingerprint)
    evaluate(int8, golden, cache=cache)
    results = [evaluate(fp32, golden), evaluate(int8, golden, cache=cache)]
    comparison = compare_results(results, ["tiny fp32", "tiny int8"], StatSettings(resamples=200, permutations=500))
    return comparison_document(comparison, golden, "test", "evalfast compare -m tiny -m tiny --precision fp32,int8",
                               "2026-01-01T00:00:00+00:00", (1, 3, 5, 10, 100), 10, 0.5)


def test_report_says_what_the_holm_correction_covers(real_document):
    page = render_html(real_document)
    assert "over the metrics compared" not in page
    note = page.split("<h2>Comparisons")[1].split("</p>")[0]
    assert "Holm-corrected across the candidates compared with the baseline, metric by metric" in note
    assert "not across metrics" in note and "with one candidate it leaves each p-value as it is" in note
    for report in (comparison_text(real_document), comparison_markdown(real_document)):
        assert "Holm-corrected across the candidates compared with the baseline, metric by metric" in report


def test_report_opens_with_the_verdict_in_words(real_document):
    test = real_document["comparisons"][0]["metrics"]["ndcg@10"]
    verdict = verdict_paragraph(real_document)
    relation = "better than" if test["difference"] > 0 else "worse than"
    expected = relation if test["significant"] else "not significantly different from"
    assert f"tiny int8 is {expected} tiny fp32 on ndcg@10" in verdict
    assert f"a difference of {test['difference']:+.3f}" in verdict
    assert f"95% interval [{test['low']:+.3f}, {test['high']:+.3f}]" in verdict
    p = test["p_randomization_holm"]
    assert (f"Holm-corrected randomization p = {p:.3f}" if p >= 0.001 else "p < 0.001") in verdict
    assert comparison_text(real_document).startswith(verdict + "\n")
    assert comparison_markdown(real_document).startswith(f"# evalfast comparison\n\n{verdict}\n")
    page = render_html(real_document)
    assert page.index('<p class="verdict">') < page.index("<dt>Date</dt>")
    assert html.escape(verdict) in page


def test_verdict_names_a_significant_difference_and_its_direction(real_document):
    document = json.loads(json.dumps(real_document, default=float))  # as read back from --json
    document["comparisons"][0]["metrics"]["ndcg@10"].update(difference=-0.05, low=-0.08, high=-0.02,
                                                            p_randomization_holm=0.0001, significant=True)
    verdict = verdict_paragraph(document)
    assert "tiny int8 is worse than tiny fp32 on ndcg@10" in verdict and "a difference of -0.050" in verdict
    assert "[-0.080, -0.020]" in verdict and "p < 0.001" in verdict


def test_throughput_plot_says_the_embeddings_came_from_the_cache(real_document):
    fp32, int8 = real_document["models"]
    assert int8["throughput"]["all_from_cache"] and int8["throughput"]["texts_per_second"] is None
    assert fp32["throughput"]["texts_per_second"] > 0
    (plot,) = re.findall(r'<svg class="plot" data-plot="throughput".*?</svg>', render_html(real_document))
    assert "embeddings from the cache: no rate measured" in plot and ">n/a<" not in plot
    assert f"{fp32['throughput']['texts_per_second']:,.1f}/s" in plot


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 1200])
def test_browser_comparison_table_fits_the_window(browser_page, real_document, tmp_path, width):
    """The verdict column (the last) is on screen: no table is wider than its box, the page does not scroll sideways."""
    report = tmp_path / "report.html"
    report.write_text(render_html(real_document), encoding="utf-8")
    page = browser_page[0].context.new_page()
    try:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(report.as_uri(), wait_until="load")
        overflow = page.evaluate("""() => [...document.querySelectorAll('table')].map(table =>
            table.parentElement.scrollWidth - table.parentElement.clientWidth)""")
        verdict = page.locator("section:has(h2:text('Comparisons')) th:last-child").first
        assert verdict.inner_text() == "verdict"
        box = verdict.bounding_box()
        page_width = page.evaluate("document.documentElement.scrollWidth")
    finally:
        page.close()
    assert max(overflow) <= 0 and page_width <= width and box["x"] + box["width"] <= width
