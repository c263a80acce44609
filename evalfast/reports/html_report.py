"""The ``evalfast compare`` report as one self-contained HTML page.

Tables and inline SVG plots drawn here in Python; no scripts, fonts or anything else fetched, so the page
opens offline. Every string taken from the document goes through ``html.escape``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalfast.reports.compare_report import correction_note, verdict_paragraph
from evalfast.reports.latency_report import index_summary

# Okabe-Ito colours (colour-blind safe), the pale yellow left out for contrast on white
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
RELEVANT_COLOUR, NON_RELEVANT_COLOUR = PALETTE[0], PALETTE[1]
WIDTH, PLOT_HEIGHT = 460, 250  # a chart's size in pixels, legend rows excluded
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 12, 44
LEGEND_ROW = 16
SIMULATED_HEADING = "Simulated metrics (rescaled cosine similarity, not RAGAS)"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; background: #fff; line-height: 1.45; max-width: 1120px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #d8dde3; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em;
       background: #f4f5f7; padding: 0.1em 0.3em; border-radius: 3px; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0.5rem 0 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.9rem; }
caption { caption-side: top; text-align: left; color: #57606a; padding-bottom: 0.3rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #d8dde3; text-align: left; vertical-align: top; }
th { background: #f4f5f7; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { white-space: normal; }
.wide { overflow-x: auto; max-width: 100%; }
.wide table { margin-top: 0; }
p.verdict { font-size: 1.05rem; background: #f4f5f7; border-left: 4px solid #0072B2; padding: 0.6rem 0.9rem; }
.significant { font-weight: 700; color: #a63c00; white-space: nowrap; }
.not-significant { color: #57606a; white-space: nowrap; }
.note { color: #57606a; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; padding: 0.5rem; border: 1px solid #d8dde3; border-radius: 6px; }
figcaption { font-size: 0.85rem; color: #57606a; max-width: 460px; }
svg.plot { display: block; max-width: 100%; height: auto; }
svg.plot text { font-size: 11px; fill: #1f2328; }
svg.plot .grid { stroke: #e6e9ed; }
svg.plot .axis { stroke: #57606a; }
"""


class Html(str):
    """Markup built by this module; table cells of this type are not escaped again."""


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes included)."""
    return html.escape(str(value))


# ---------------------------------------------------------------- numbers


def finite(value: object) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def number(value: object, signed: bool = False) -> str:
    """Three decimals ("+0.021" when signed), "n/a" for a missing value."""
    v = finite(value)
    if v is None:
        return "n/a"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def interval(cell: object, signed: bool = False, centre: str = "mean") -> str:
    """ "0.623 [0.588, 0.657]" from a {centre, low, high} cell; a bare number stands alone."""
    if not isinstance(cell, Mapping):
        return number(cell, signed)
    text = number(cell.get(centre), signed)
    if finite(cell.get("low")) is None or finite(cell.get("high")) is None:
        return text
    return f"{text} [{number(cell['low'], signed)}, {number(cell['high'], signed)}]"


def p_value(value: object) -> str:
    """A p-value with three decimals, "<0.001" below that, "n/a" when missing."""
    v = finite(value)
    if v is None:
        return "n/a"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values from at or below ``low`` to at or above ``high``, about ``count`` steps.

    An empty or invalid range is widened first, so the ticks always span a positive width."""
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high <= low:
        low, high = (low - abs(low) * 0.1, high + abs(high) * 0.1) if low else (0.0, 1.0)
    rough = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    steps = max(1, math.ceil((high - first) / step - 1e-9))
    return [round(first + i * step, 12) for i in range(steps + 1)]


def tick_label(value: float) -> str:
    """A tick value as short text: 0.2, 10, 1500."""
    return f"{value:g}"


# ---------------------------------------------------------------- HTML pieces


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], text_columns: int = 1,
          caption: str | None = None) -> str:
    """A table whose first ``text_columns`` columns hold text and the rest numbers (right-aligned)."""

    def row(cells: Sequence[object], tag: str) -> str:
        opening = [f"<{tag}>" if i < text_columns else f'<{tag} class="num">' for i in range(len(cells))]
        return "<tr>" + "".join(f"{o}{c if isinstance(c, Html) else esc(c)}</{tag}>"
                                for o, c in zip(opening, cells)) + "</tr>"

    head = f"<caption>{esc(caption)}</caption>" if caption else ""
    body = "".join(row(cells, "td") for cells in rows)
    # a table wider than the page scrolls inside its box instead of being cut off at the page's edge
    return f'<div class="wide"><table>{head}<thead>{row(headers, "th")}</thead><tbody>{body}</tbody></table></div>'


def facts(items: Iterable[tuple[str, object]]) -> str:
    """A definition list of (term, value) pairs, both escaped unless ``Html``."""
    return '<dl class="facts">' + "".join(
        f"<dt>{esc(term)}</dt><dd>{value if isinstance(value, Html) else esc(value)}</dd>"
        for term, value in items) + "</dl>"


def section(heading: str, *parts: str) -> str:
    """A <section> with an <h2> heading."""
    return f"<section><h2>{esc(heading)}</h2>{''.join(parts)}</section>"


def figure(svg: str, caption: str) -> str:
    """A plot in a <figure> with its (escaped) caption."""
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def figures(items: Sequence[str]) -> str:
    """Figures side by side, wrapping."""
    return f'<div class="figures">{"".join(items)}</div>'


# ---------------------------------------------------------------- SVG pieces


@dataclass(frozen=True)
class Frame:
    """A chart's plot area: a pixel box and the data ranges drawn onto it (data y grows upwards)."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return self.left + self.width

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + (value - low) / ((high - low) or 1.0) * self.width

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.bottom - (value - low) / ((high - low) or 1.0) * self.height


def plot_frame(x_range: tuple[float, float], y_range: tuple[float, float], right: float = MARGIN_RIGHT) -> Frame:
    """The standard plot area of a WIDTH x PLOT_HEIGHT chart."""
    return Frame(MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_LEFT - right, PLOT_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM,
                 x_range, y_range)


def line(x1: float, y1: float, x2: float, y2: float, colour: str = "", width: float = 1.0,
         css_class: str = "", dashed: bool = False) -> str:
    """A straight segment, coloured by ``colour`` or by its CSS class."""
    style = (f' class="{css_class}"' if css_class else "") + (f' stroke="{colour}"' if colour else "")
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"{style}'
            f' stroke-width="{width:g}"{dash}/>')


def text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    """Escaped text at (x, y), vertically centred on y."""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" dominant-baseline="middle"{extra}>'
            f"{esc(content)}</text>")


def rect(x: float, y: float, width: float, height: float, colour: str, opacity: float = 1.0) -> str:
    """A filled rectangle; negative sizes are clamped to zero."""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" height="{max(height, 0):.1f}"'
            f' fill="{colour}" fill-opacity="{opacity:g}"/>')


def polyline(points: Sequence[tuple[float, float]], colour: str) -> str:
    """A line through pixel points."""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'


def marker(x: float, y: float, colour: str) -> str:
    """A dot at a data point."""
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>'


def axes(frame: Frame, x_ticks: Sequence[tuple[float, str]], y_ticks: Sequence[tuple[float, str]],
         x_label: str, y_label: str) -> str:
    """Horizontal grid lines at the y ticks, tick labels, both axis lines and their titles."""
    parts = []
    for value, label in y_ticks:
        y = frame.y(value)
        parts += [line(frame.left, y, frame.right, y, css_class="grid"), text(frame.left - 6, y, label, "end")]
    for value, label in x_ticks:
        x = frame.x(value)
        parts += [line(x, frame.bottom, x, frame.bottom + 4, css_class="axis"),
                  text(x, frame.bottom + 14, label, "middle")]
    parts += [line(frame.left, frame.top, frame.left, frame.bottom, css_class="axis"),
              line(frame.left, frame.bottom, frame.right, frame.bottom, css_class="axis"),
              text(frame.left + frame.width / 2, frame.bottom + 32, x_label, "middle")]
    centre_y = frame.top + frame.height / 2
    parts.append(text(14, centre_y, y_label, "middle", f' transform="rotate(-90 14 {centre_y:.1f})"'))
    return "".join(parts)


def numeric_ticks(ticks: Sequence[float]) -> list[tuple[float, str]]:
    """(value, label) pairs for numeric ticks."""
    return [(t, tick_label(t)) for t in ticks]


def legend(entries: Sequence[tuple[str, str]], top: float) -> str:
    """One row per (label, colour): a swatch and the label, below the plot area."""
    return "".join(rect(MARGIN_LEFT, top + i * LEGEND_ROW, 12, 10, colour)
                   + text(MARGIN_LEFT + 18, top + i * LEGEND_ROW + 5, label)
                   for i, (label, colour) in enumerate(entries))


def chart(name: str, body: str, label: str, legend_entries: Sequence[tuple[str, str]] = (),
          **data: str) -> str:
    """An <svg class="plot" data-plot=name> of the standard size, with room for the legend below."""
    height = PLOT_HEIGHT + (len(legend_entries) * LEGEND_ROW + 6 if legend_entries else 0)
    attributes = "".join(f' data-{key}="{esc(value)}"' for key, value in data.items())
    return (f'<svg class="plot" data-plot="{name}"{attributes} viewBox="0 0 {WIDTH} {height}" width="{WIDTH}"'
            f' height="{height}" role="img" aria-label="{esc(label)}">'
            f"{body}{legend(legend_entries, PLOT_HEIGHT)}</svg>")


def no_data(frame: Frame, message: str) -> str:
    """A message in the middle of an empty plot area."""
    return text(frame.left + frame.width / 2, frame.top + frame.height / 2, message, "middle")


def histogram_bars(frame: Frame, edges: Sequence[float], heights: Sequence[float], colour: str,
                   opacity: float = 1.0) -> str:
    """One rectangle per bin [edges[i], edges[i + 1]] of height heights[i] (empty bins left out)."""
    return "".join(rect(frame.x(low), frame.y(h), frame.x(high) - frame.x(low), frame.y(0) - frame.y(h),
                        colour, opacity)
                   for low, high, h in zip(edges, edges[1:], heights) if h > 0)


def bin_counts(values: Sequence[float], low: float, high: float, bins: int) -> list[int]:
    """How many values fall in each of ``bins`` equal bins over [low, high] (the last bin closed)."""
    counts = [0] * bins
    width = (high - low) / bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return counts


def model_colour(index: int) -> str:
    """The palette colour of the index-th model."""
    return PALETTE[index % len(PALETTE)]


# ---------------------------------------------------------------- plots


def k_families(models: Sequence[Mapping[str, Any]], ks: Sequence[int]) -> dict[str, list[int]]:
    """Metric families with ``@k`` keys (ndcg, recall, ...) and their cutoffs, in the order of ``ks``."""
    found: dict[str, set[int]] = {}
    for model in models:
        for key in model.get("metrics") or {}:
            family, at, k = key.partition("@")
            if at and k.isdigit():
                found.setdefault(family, set()).add(int(k))
    return {family: [k for k in ks if k in cutoffs] + sorted(cutoffs.difference(ks))
            for family, cutoffs in found.items()}


def metric_vs_k_chart(family: str, ks: Sequence[int], models: Sequence[Mapping[str, Any]]) -> str:
    """Mean of ``family@k`` per cutoff, one line per model, confidence intervals as error bars."""
    cells = [[(model.get("metrics") or {}).get(f"{family}@{k}") or {} for k in ks] for model in models]
    values = [v for row in cells for cell in row for v in map(finite, (cell.get("mean"), cell.get("low"),
                                                                      cell.get("high"))) if v is not None]
    y_ticks = nice_ticks(min(values, default=0.0), max(values, default=1.0))
    frame = plot_frame((-0.5, len(ks) - 0.5), (y_ticks[0], y_ticks[-1]))
    parts = [axes(frame, [(i, f"@{k}") for i, k in enumerate(ks)], numeric_ticks(y_ticks), "cutoff k", family)]
    dodge = min(0.08, 0.6 / len(models))
    for m, row in enumerate(cells):
        colour, offset = model_colour(m), (m - (len(models) - 1) / 2) * dodge
        points = []
        for i, cell in enumerate(row):
            mean, low, high = (finite(cell.get(key)) for key in ("mean", "low", "high"))
            x = frame.x(i + offset)
            if low is not None and high is not None:
                parts += [line(x, frame.y(low), x, frame.y(high), colour, 1.5),
                          line(x - 3, frame.y(low), x + 3, frame.y(low), colour, 1.5),
                          line(x - 3, frame.y(high), x + 3, frame.y(high), colour, 1.5)]
            if mean is not None:
                points.append((x, frame.y(mean)))
        if len(points) > 1:
            parts.append(polyline(points, colour))
        parts += [marker(x, y, colour) for x, y in points]
    entries = [(str(model.get("name", "")), model_colour(m)) for m, model in enumerate(models)]
    return chart("metric-vs-k", "".join(parts), f"{family} by cutoff k", entries, family=family)


def differences_chart(comparison: Mapping[str, Any]) -> str:
    """Histogram of the per-query differences (candidate - baseline), lines at zero and at the mean."""
    differences = comparison.get("per_query_differences") or {}
    metric = str(differences.get("metric", ""))
    values = [v for v in map(finite, differences.get("values") or []) if v is not None]
    x_ticks = nice_ticks(min(values + [0.0]), max(values + [0.0]))
    # bins centred on multiples of their width, so unchanged queries (exactly 0) get a bin of their own
    target_bins = min(30, max(5, math.ceil(math.sqrt(len(values)))))
    width = (x_ticks[1] - x_ticks[0]) / max(1, round(target_bins / (len(x_ticks) - 1)))
    low, high = x_ticks[0] - width / 2, x_ticks[-1] + width / 2
    bins = round((high - low) / width)
    counts = bin_counts(values, low, high, bins)
    y_ticks = nice_ticks(0.0, max(counts))
    frame = plot_frame((low, high), (y_ticks[0], y_ticks[-1]))
    edges = [low + width * i for i in range(bins + 1)]
    parts = [axes(frame, numeric_ticks(x_ticks), numeric_ticks(y_ticks), f"{metric}: candidate - baseline",
                  "queries"),
             histogram_bars(frame, edges, counts, PALETTE[0], 0.8),
             line(frame.x(0), frame.top, frame.x(0), frame.bottom, "#1f2328", 1.5)]
    entries = [("zero (no change)", "#1f2328")]
    if values:
        mean = sum(values) / len(values)
        parts.append(line(frame.x(mean), frame.top, frame.x(mean), frame.bottom, PALETTE[3], 2, dashed=True))
        entries.append((f"mean {mean:+.4f} over {len(values)} queries", PALETTE[3]))
    else:
        parts.append(no_data(frame, "no per-query differences"))
    label = f"{comparison.get('candidate')} vs {comparison.get('baseline')}"
    return chart("differences", "".join(parts), f"Per-query {metric} differences, {label}", entries,
                 comparison=label)


def densities(counts: Sequence[object], edges: Sequence[float]) -> list[float]:
    """Histogram counts as densities (area 1); missing counts count as 0, an empty histogram stays 0."""
    clean = [finite(c) or 0.0 for c in counts]
    total = sum(clean)
    return [c / (total * (high - low)) if total else 0.0 for c, low, high in zip(clean, edges, edges[1:])]


def scores_chart(model: Mapping[str, Any]) -> str:
    """Density histograms of the scores of relevant and of non-relevant documents, overlaid."""
    histogram = model.get("score_histogram") or {}
    edges = [finite(e) for e in histogram.get("edges") or []]
    valid = len(edges) > 1 and all(e is not None for e in edges) and all(b > a for a, b in zip(edges, edges[1:]))
    edges = edges if valid else []
    relevant = densities(histogram.get("relevant") or [], edges)
    non_relevant = densities(histogram.get("non_relevant") or [], edges)
    x_ticks = nice_ticks(edges[0], edges[-1]) if edges else nice_ticks(0.0, 1.0)
    y_ticks = nice_ticks(0.0, max(relevant + non_relevant, default=0.0))
    frame = plot_frame((x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1]))
    parts = [axes(frame, numeric_ticks(x_ticks), numeric_ticks(y_ticks), "score (cosine similarity)", "density"),
             histogram_bars(frame, edges, non_relevant, NON_RELEVANT_COLOUR, 0.55),
             histogram_bars(frame, edges, relevant, RELEVANT_COLOUR, 0.55)]
    if not any(relevant + non_relevant):
        parts.append(no_data(frame, "no scores recorded"))
    totals = {kind: sum(finite(c) or 0.0 for c in histogram.get(kind) or []) for kind in ("relevant", "non_relevant")}
    entries = [(f"relevant ({totals['relevant']:,.0f} scores)", RELEVANT_COLOUR),
               (f"non-relevant ({totals['non_relevant']:,.0f} scores)", NON_RELEVANT_COLOUR)]
    name = str(model.get("name", ""))
    return chart("scores", "".join(parts), f"Score distributions of {name}", entries, model=name)


def throughput_chart(models: Sequence[Mapping[str, Any]]) -> str:
    """Horizontal bars of texts embedded per second, one per model, the value written at the bar's end."""
    throughputs = [model.get("throughput") or {} for model in models]
    rates = [finite(throughput.get("texts_per_second")) for throughput in throughputs]
    x_ticks = nice_ticks(0.0, max((r for r in rates if r is not None), default=0.0))
    frame = plot_frame((x_ticks[0], x_ticks[-1]), (0.0, float(len(models))), right=72)
    parts = [axes(frame, numeric_ticks(x_ticks), [], "texts per second", "")]
    row_height = frame.y(0) - frame.y(1)  # each model a row of height 1, the first at the top
    bar_height = min(22.0, row_height * 0.45)
    for m, (model, throughput, rate) in enumerate(zip(models, throughputs, rates)):
        bar_top = frame.y(len(models) - m - 0.5)
        cached = finite(throughput.get("texts_from_cache")) or 0
        parts.append(text(frame.left + 4, bar_top - 8, str(model.get("name", ""))
                          + (f" ({cached:,.0f} more from the cache)" if cached and rate is not None else "")))
        if rate is None:
            missing = "embeddings from the cache: no rate measured" if cached else "no rate measured"
            parts.append(text(frame.left + 4, bar_top + bar_height / 2, missing))
            continue
        end = frame.x(rate)
        parts += [rect(frame.left, bar_top, end - frame.left, bar_height, model_colour(m)),
                  text(end + 4, bar_top + bar_height / 2, f"{rate:,.1f}/s")]
    return chart("throughput", "".join(parts), "Embedding throughput per model")


# ---------------------------------------------------------------- sections


def interval_level(settings: Mapping[str, Any]) -> str:
    """The confidence level as a percentage, e.g. "95%"."""
    confidence = finite(settings.get("confidence"))
    return f"{confidence:.0%}" if confidence is not None else "n/a"


def header_section(document: Mapping[str, Any]) -> str:
    """Title, date, command, golden set, settings and the models compared."""
    golden, settings = document["golden"], document["settings"]
    threshold = settings.get("rag_threshold")
    golden_text = (f"{golden.get('path')} (split {golden.get('split')}): {golden.get('queries')} queries, "
                   f"{golden.get('documents')} documents, {golden.get('queries_scored')} queries scored")
    setting_items = [
        ("Confidence level", interval_level(settings)),
        ("Bootstrap resamples", settings.get("resamples")),
        ("Permutations (randomization test)", settings.get("permutations")),
        ("Seed", settings.get("seed")),
        ("Significance level α", settings.get("alpha")),
        ("Multiple-comparison correction", f"{str(settings.get('correction', '')).capitalize()}, across the "
                                           "candidates compared with the baseline, metric by metric"),
        ("Cutoffs k", ", ".join(str(k) for k in settings.get("ks") or [])),
        ("Headline metric", settings.get("headline")),
        ("RAG threshold", f"a retrieved document counts as relevant in the threshold variants when its cosine "
                          f"similarity with a judged relevant document is at least {threshold} "
                          f"(RAG metrics at k = {settings.get('rag_k')})"),
    ]
    models = table(["model", "path", "sha256", "precision", "device"],
                   [[m.get("name"), m.get("model"), m.get("sha256"), m.get("precision"), m.get("device")]
                    for m in document.get("models") or []], text_columns=5)
    command = Html(f"<code>{esc(document.get('command'))}</code>")
    verdict_text = verdict_paragraph(document) if document.get("comparisons") else ""
    return ("<header><h1>evalfast comparison report</h1>"
            + (f'<p class="verdict">{esc(verdict_text)}</p>' if verdict_text else "")
            + facts([("Date", document.get("date")), ("Command", command), ("Golden set", golden_text)])
            + "</header>" + section("Settings", facts(setting_items), "<h3>Models</h3>", models))


def model_metric_table(models: Sequence[Mapping[str, Any]], field: str, caption: str) -> str:
    """A row per metric of models[*][field], a column per model, each cell "mean [low, high]"."""
    names = list(dict.fromkeys(key for model in models for key in model.get(field) or {}))
    rows = [[name, *(interval((model.get(field) or {}).get(name)) for model in models)] for name in names]
    return table(["metric", *(str(model.get("name", "")) for model in models)], rows, caption=caption)


def verdict(significant: object) -> Html:
    """A clear mark for a significant difference, a muted one otherwise."""
    if significant is True:
        return Html('<strong class="significant">✔ significant</strong>')
    if significant is False:
        return Html('<span class="not-significant">not significant</span>')
    return Html('<span class="not-significant">n/a</span>')


def comparisons_section(document: Mapping[str, Any]) -> str:
    """One table per comparison: values, difference with interval, p-values and the verdict."""
    settings = document["settings"]
    correction = str(settings.get("correction", "")).capitalize()
    t_test = "t\u2011test"  # a non-breaking hyphen: a narrow header wraps between words only
    headers = ["metric", "baseline", "candidate", "difference [CI]", "p randomization", f"p {t_test}",
               f"{correction} p (randomization / {t_test})", "verdict"]
    parts = [f'<p class="note">Difference = candidate − baseline, with its {interval_level(settings)} confidence '
             f"interval. Significant means a {esc(correction)}-corrected randomization p below α = "
             f"{esc(settings.get('alpha'))}; {esc(correction_note(document))}.</p>"]
    for comparison in document.get("comparisons") or []:
        rows = [[metric, number(cell.get("baseline")), number(cell.get("candidate")),
                 interval(cell, signed=True, centre="difference"), p_value(cell.get("p_randomization")),
                 p_value(cell.get("p_t_test")),
                 f"{p_value(cell.get('p_randomization_holm'))} / {p_value(cell.get('p_t_test_holm'))}",
                 verdict(cell.get("significant"))]
                for metric, cell in (comparison.get("metrics") or {}).items()]
        parts += [f"<h3>{esc(comparison.get('candidate'))} vs {esc(comparison.get('baseline'))} (baseline)</h3>",
                  table(headers, rows)]
    return section("Comparisons", *parts)




def rag_section(document: Mapping[str, Any]) -> str:
    """RAG-style context precision and recall from judged relevance, and the threshold variants."""
    settings = document["settings"]
    note = (f"<p>Context precision and context recall are computed from judged relevance (the golden set's "
            f"relevance judgements) as RAGAS defines them, with no LLM involved: context precision@k is the mean "
            f"of precision@i over the ranks i ≤ k that hold a relevant document, context recall@k the share of "
            f"a query's relevant documents found in the top k. The variants marked “cosine ≥ "
            f"{esc(settings.get('rag_threshold'))}” match by similarity instead, like RAGAS's non-LLM metrics: a "
            f"retrieved document counts as relevant when its cosine similarity with a judged relevant document "
            f"is at least {esc(settings.get('rag_threshold'))}.</p>")
    models = document.get("models") or []
    return section("RAG-style retrieval metrics", note,
                   model_metric_table(models, "rag", f"Mean with {interval_level(settings)} confidence interval"))


def similarity_section(document: Mapping[str, Any]) -> str:
    """The seed's simulated metrics, labelled as what they are."""
    note = ('<p class="note">These are the cosine similarity of queries with their relevant documents and the '
            "seed's “simulated” metrics: rescaled cosine similarity plus seeded noise. They are not RAGAS "
            "metrics and nothing was judged by an LLM.</p>")
    return section(SIMULATED_HEADING, note, model_metric_table(document.get("models") or [], "similarity",
                                                                SIMULATED_HEADING))


def plots_section(document: Mapping[str, Any]) -> str:
    """Metric vs k, per-query differences, score distributions and throughput."""
    settings, models = document["settings"], document.get("models") or []
    comparisons = document.get("comparisons") or []
    level = interval_level(settings)
    by_k = [figure(metric_vs_k_chart(family, ks, models),
                   f"{family}@k: mean per cutoff k, error bars the {level} confidence interval, one line per model.")
            for family, ks in k_families(models, settings.get("ks") or []).items()]
    parts = ["<h3>Metrics by cutoff</h3>", figures(by_k)] if by_k else []
    if comparisons and models:
        parts += ["<h3>Per-query differences</h3>", figures([
            figure(differences_chart(c), f"Per-query {(c.get('per_query_differences') or {}).get('metric')}: "
                                         f"{c.get('candidate')} − {c.get('baseline')}. Solid line at zero, "
                                         f"dashed line at the mean.")
            for c in comparisons])]
    if models:
        parts += ["<h3>Score distributions</h3>", figures([
            figure(scores_chart(m), f"{m.get('name')}: scores of relevant and of non-relevant documents, "
                                    f"each normalised to a density.")
            for m in models]),
                  "<h3>Throughput</h3>",
                  figures([figure(throughput_chart(models), "Texts encoded per second: the texts encoded now over "
                                                           "the embedding time (higher is faster); texts whose "
                                                           "embeddings came from the cache were not encoded.")])]
    return section("Plots", *parts)


def query_tables_section(document: Mapping[str, Any]) -> str:
    """Per comparison the queries that got worse and better, then the hardest queries."""
    headline = document["settings"].get("headline")
    parts = []
    for comparison in document.get("comparisons") or []:
        pair = f"{comparison.get('candidate')} vs {comparison.get('baseline')}"
        for kind in ("worse", "better"):
            rows = [[q.get("query_id"), q.get("text"), number(q.get("baseline")), number(q.get("candidate")),
                     change(q)] for q in comparison.get(kind) or []]
            parts.append(f"<h3>Queries that got {kind}: {esc(pair)}</h3>")
            parts.append(table(["query id", "text", "baseline", "candidate", "change"], rows, text_columns=2,
                               caption=f"Per-query {headline}") if rows else '<p class="note">None.</p>')
    hardest = document.get("hardest") or []
    names = [str(m.get("name", "")) for m in document.get("models") or []]
    names += [n for q in hardest for n in q.get("first_relevant_rank") or {} if n not in names]
    rows = [[q.get("query_id"), q.get("text"), number(q.get("mean")),
             *(rank((q.get("first_relevant_rank") or {}).get(n)) for n in names)] for q in hardest]
    parts += ["<h3>Hardest queries</h3>",
              table(["query id", "text", "mean", *(f"first relevant rank: {n}" for n in names)], rows,
                    text_columns=2, caption="Lowest mean score over the models, and the rank of the first "
                                            "relevant document per model")
              if rows else '<p class="note">None.</p>']
    return section("Queries", *parts)


def change(query: Mapping[str, Any]) -> str:
    """candidate - baseline of one query, signed, "n/a" when either is missing."""
    baseline, candidate = finite(query.get("baseline")), finite(query.get("candidate"))
    return number(candidate - baseline, signed=True) if baseline is not None and candidate is not None else "n/a"


def rank(value: object) -> str:
    """A rank as an integer, "n/a" when missing."""
    v = finite(value)
    return "n/a" if v is None else str(int(v))


def render_html(document: dict) -> str:
    """The whole report: one self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched)."""
    models = document.get("models") or []
    level = interval_level(document["settings"])
    body = [header_section(document),
            section("Retrieval metrics",
                    model_metric_table(models, "metrics", f"Mean with {level} bootstrap confidence interval"))]
    if document.get("comparisons"):
        body.append(comparisons_section(document))
    body += [rag_section(document), similarity_section(document), plots_section(document),
             query_tables_section(document)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>evalfast comparison report, {esc(document.get('date'))}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


# ---------------------------------------------------------------- latency report


def latency_chart(load: Mapping[str, Any]) -> str:
    """Histogram of request latencies (from each request's scheduled time), lines at p50 and p99."""
    histogram = load.get("histogram") or {}
    edges, counts = list(histogram.get("edges_ms") or [0.0, 1.0]), list(histogram.get("counts") or [0])
    x_ticks, y_ticks = nice_ticks(edges[0], edges[-1]), nice_ticks(0.0, max(counts, default=0))
    frame = plot_frame((x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1]))
    parts = [axes(frame, numeric_ticks(x_ticks), numeric_ticks(y_ticks), "latency (ms)", "requests"),
             histogram_bars(frame, edges, counts, PALETTE[0], 0.8)]
    entries = []
    for name, colour in (("p50", PALETTE[2]), ("p99", PALETTE[3])):
        value = finite((load.get("latency_ms") or {}).get(name))
        if value is not None:
            parts.append(line(frame.x(value), frame.top, frame.x(value), frame.bottom, colour, 2, dashed=True))
            entries.append((f"{name} {value:.2f} ms", colour))
    return chart("latency", "".join(parts), "Latency distribution", entries)


def sweep_chart(sweep: Mapping[str, Any]) -> str:
    """p99 latency against the offered rate, with the bound."""
    tried = sorted(sweep.get("tried") or [], key=lambda t: t["qps"])
    points = [(float(t["qps"]), float(t["p99_ms"])) for t in tried if finite(t.get("p99_ms")) is not None]
    bound = float(sweep.get("p99_bound_ms") or 0.0)
    x_ticks = nice_ticks(0.0, max((x for x, _ in points), default=1.0))
    y_ticks = nice_ticks(0.0, max([y for _, y in points] + [bound]))
    frame = plot_frame((x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1]))
    parts = [axes(frame, numeric_ticks(x_ticks), numeric_ticks(y_ticks), "offered rate (queries/s)", "p99 (ms)"),
             line(frame.left, frame.y(bound), frame.right, frame.y(bound), PALETTE[3], 1.5, dashed=True),
             polyline([(frame.x(x), frame.y(y)) for x, y in points], PALETTE[0]),
             *(marker(frame.x(x), frame.y(y), PALETTE[0]) for x, y in points)]
    return chart("sweep", "".join(parts), "p99 latency by offered rate",
                 [("p99 at each rate tried", PALETTE[0]), (f"bound {bound:g} ms", PALETTE[3])])


def render_latency_html(document: dict) -> str:
    """A latency report: what was measured, the percentiles, the distribution and the sweep, self-contained."""
    index, quality, load, settings = document["index"], document["quality"], document["load"], document["settings"]
    k = quality.get("k")
    facts_rows = [("Date", document.get("date")), ("Command", document.get("command")),
                  ("Model", f"{document['model']['path']} ({document['model']['precision']} on "
                            f"{document['model']['device']}, {document['model']['threads']} thread(s))"),
                  ("Index", index_summary(index)),
                  (f"Recall@{k}", number(quality.get(f"recall@{k}"))),
                  (f"nDCG@{k} change", number(quality.get(f"ndcg@{k}_change"), signed=True)),
                  ("Load", f"{settings['arrival']} arrivals at {settings['qps']:g}/s for "
                           f"{settings['duration_seconds']:g} s, {settings['concurrency']} worker(s); "
                           f"{load['completed']} of {load['requests']} answered, {load['errors']} errors, "
                           f"{number(load.get('achieved_qps'))}/s achieved")]
    columns = ["p50", "p90", "p99", "p99.9", "max", "mean"]
    rows = [[name, *(number((load.get(key) or {}).get(c)) for c in columns)]
            for name, key in (("total", "latency_ms"), ("embedding", "embed_ms"), ("search", "search_ms"),
                              ("queued", "queued_ms"))]
    plots = [figure(latency_chart(load), "Latency of each request, from its scheduled time (queueing included).")]
    if document.get("sweep"):
        plots.append(figure(sweep_chart(document["sweep"]), "p99 latency at each rate the sweep tried."))
    body = [section("evalfast latency report", facts(facts_rows)),
            section("Latency (ms)", table(["", *columns], rows)), section("Plots", figures(plots))]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>evalfast latency report, {esc(document.get('date'))}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
