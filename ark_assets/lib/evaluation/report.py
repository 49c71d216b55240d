"""The evaluation leaderboard: a tidy metrics table in, markdown, HTML and PNG plots out.

``scores`` has one row per (test set, system, metric): ``n`` is how many items the metric was
computed on, ``value`` their mean, ``ci_low``/``ci_high`` its 95% bootstrap interval (any of
the three null when the metric could not be computed). ``confusion`` counts, per (test set,
system), the predicted action against the reference action (:class:`Confusion`). ``meta``
(:class:`ReportMeta`) says which run this is and what each metric means.

The report is one folder: ``report.md`` with its images under ``images/`` by relative path,
``report.html`` with the same content and every image embedded (it opens anywhere), and
:func:`metadata_markdown` for Dagster's ``MetadataValue.md``, which shows images only when they
are embedded, kept under :data:`METADATA_BUDGET_BYTES`.

Plots are drawn on matplotlib ``Figure`` objects with the Agg canvas, never through pyplot:
no global figure registry or backend switch, so rendering is safe inside a Dagster run and
the same data gives the same PNG bytes.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final, NamedTuple, NotRequired, TypedDict

import markdown
import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ark_assets.lib.artifacts import atomic_directory, atomic_write_bytes

DPI: Final = 110
BARS_FIGSIZE: Final = (8.0, 4.5)  # inches: 880 × 495 px at DPI
CONFUSION_FIGSIZE: Final = (4.0, 4.0)  # inches: 440 × 440 px at DPI
# Dagster keeps metadata in its event log database; a few MB per materialization adds up.
METADATA_BUDGET_BYTES: Final = 1_500_000

SCORE_COLUMNS: Final = ("test_set", "system", "metric", "n", "value", "ci_low", "ci_high")
IMAGES_DIR: Final = "images"
_BARS_PREFIX: Final = "bars-"
_CONFUSION_PREFIX: Final = "confusion-"
# Without this, matplotlib writes its version into every PNG: a library upgrade would change
# bytes of a report whose data did not change.
_PNG_METADATA: Final = {"Software": None}


@dataclass(frozen=True)
class Confusion:
    """One system's actions on one test set, against the reference action.

    ``no_action`` counts items where the system's reply had no recognisable ask or tell; they
    are in no cell of the 2×2 matrix.
    """

    tp_ask: int  # reference ask, predicted ask
    fn_ask: int  # reference ask, predicted tell
    fp_ask: int  # reference tell, predicted ask
    tn_tell: int  # reference tell, predicted tell
    no_action: int

    @classmethod
    def of(cls, counts: Confusion | Mapping[str, int]) -> Confusion:
        """A ``Confusion`` from itself or from a dict with the same five keys."""
        if isinstance(counts, Confusion):
            return counts
        missing = [key for key in _CONFUSION_KEYS if key not in counts]
        if missing:
            raise ValueError(
                f"confusion counts {dict(counts)} lack {missing}: give all of {_CONFUSION_KEYS}"
            )
        return cls(**{key: int(counts[key]) for key in _CONFUSION_KEYS})

    def matrix(self) -> list[list[int]]:
        """Rows: reference ask, tell; columns: predicted ask, tell."""
        return [[self.tp_ask, self.fn_ask], [self.fp_ask, self.tn_tell]]


_CONFUSION_KEYS: Final = ("tp_ask", "fn_ask", "fp_ask", "tn_tell", "no_action")


class ReportMeta(TypedDict):
    """What the report says about the run beside the numbers."""

    run_id: str
    metric_definitions: Mapping[str, str]  # metric name → one sentence: what it measures
    lower_is_better: NotRequired[Collection[str]]  # metric names; all others: higher is better
    mode: NotRequired[str]  # e.g. "offline (no judge)" or "judge: <model>"
    systems: NotRequired[Mapping[str, str]]  # system name → identity (model, adapter, digest)
    item_counts: NotRequired[Mapping[str, int]]  # test set → items in it
    judge_failures: NotRequired[Mapping[str, int]]  # judge question → requests that failed


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path  # report.md; its images by relative path
    html: Path  # report.html, images embedded
    images: list[Path]  # every PNG, per test set: the bars, then each system's confusion matrix
    markdown_text: str  # the content of report.md


class _Score(NamedTuple):
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None


def render_report(
    scores: pl.DataFrame,
    confusion: Mapping[tuple[str, str], Confusion | Mapping[str, int]],
    meta: ReportMeta,
    out_dir: Path,
) -> ReportFiles:
    """Write the report into ``out_dir``, which is this report's own folder: it is replaced as
    a whole, so a reader sees the previous report or this one, never a mix."""
    table = _read_scores(scores)
    test_sets = list(dict.fromkeys(key[0] for key in table))
    systems = list(dict.fromkeys(key[1] for key in table))
    metrics = list(dict.fromkeys(key[2] for key in table))
    undefined = [m for m in metrics if not meta["metric_definitions"].get(m)]
    if undefined:
        raise ValueError(
            f"metrics {undefined} have no definition in meta['metric_definitions']: add one "
            "sentence per metric saying what it measures; the report's reader needs it"
        )
    lower = set(meta.get("lower_is_better", ()))
    counts = {key: Confusion.of(value) for key, value in confusion.items()}

    images: dict[str, bytes] = {}
    sections: list[str] = []
    pairs = {key[:2] for key in table}
    for set_index, test_set in enumerate(test_sets, 1):
        stem = f"{set_index:02d}-{_slug(test_set)}"
        in_set = [s for s in systems if (test_set, s) in pairs]
        bars = f"{_BARS_PREFIX}{stem}.png"
        images[bars] = _bars_png(test_set, in_set, systems, metrics, lower, table)
        matrices = []
        for system_index, system in enumerate(in_set, 1):
            if (test_set, system) in counts:
                name = f"{_CONFUSION_PREFIX}{stem}-{system_index:02d}-{_slug(system)}.png"
                images[name] = _confusion_png(test_set, system, counts[test_set, system])
                matrices.append((system, name))
        sections.append(_set_section(test_set, in_set, metrics, lower, table, meta, bars, matrices))
    text = "\n".join([_header(meta, test_sets, systems, metrics, lower), *sections])

    with atomic_directory(out_dir) as tmp:
        for name, png in images.items():
            atomic_write_bytes(tmp / IMAGES_DIR / name, png)
        atomic_write_bytes(tmp / "report.md", text.encode())
        embedded = _embed(text, lambda src: images[src.removeprefix(f"{IMAGES_DIR}/")])
        page = _html_page(f"Evaluation report · run {meta['run_id']}", embedded)
        atomic_write_bytes(tmp / "report.html", page.encode())
    return ReportFiles(
        markdown=out_dir / "report.md",
        html=out_dir / "report.html",
        images=[out_dir / IMAGES_DIR / name for name in images],
        markdown_text=text,
    )


def metadata_markdown(files: ReportFiles) -> str:
    """The report's markdown with its images embedded, for ``MetadataValue.md``.

    All plots if they fit in :data:`METADATA_BUDGET_BYTES`; otherwise the bars only, then the
    bars at half size, then no images, saying each time what was left out.
    """
    text = ""
    for stage in _METADATA_STAGES:
        note = (
            f"_{stage.left_out} to keep Dagster's metadata under "
            f"{METADATA_BUDGET_BYTES // 1000} kB; every plot is in {files.html.name}._"
            if stage.left_out
            else ""
        )
        read = partial(_scaled_png, files.markdown.parent, stage.factor)
        body = _embed(files.markdown_text, read, keep=stage.keeps, note=note)
        text = f"{note}\n\n{body}" if note else body
        if len(text.encode()) <= METADATA_BUDGET_BYTES:
            return text
    return text


class _Stage(NamedTuple):
    confusion: bool  # keep the confusion matrices
    bars: bool  # keep the bar charts
    factor: int  # shrink kept images by this factor
    left_out: str  # what the note says was left out

    def keeps(self, src: str) -> bool:
        return self.bars if Path(src).name.startswith(_BARS_PREFIX) else self.confusion


_METADATA_STAGES: Final = (
    _Stage(confusion=True, bars=True, factor=1, left_out=""),
    _Stage(confusion=False, bars=True, factor=1, left_out="Confusion matrices left out"),
    _Stage(
        confusion=False,
        bars=True,
        factor=2,
        left_out="Confusion matrices left out and bar charts at half size",
    ),
    _Stage(confusion=False, bars=False, factor=1, left_out="Plots left out"),
)


def _scaled_png(folder: Path, factor: int, src: str) -> bytes:
    return _downscale((folder / src).read_bytes(), factor)


# --- scores ----------------------------------------------------------------------------------


def _read_scores(scores: pl.DataFrame) -> dict[tuple[str, str, str], _Score]:
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(
            f"scores lack columns {missing}: the report needs one row per (test_set, system, "
            f"metric) with columns {list(SCORE_COLUMNS)}"
        )
    if scores.is_empty():
        raise ValueError("scores is empty: there is nothing to report; compute the metrics first")
    table: dict[tuple[str, str, str], _Score] = {}
    for row in scores.select(SCORE_COLUMNS).iter_rows(named=True):
        key = (str(row["test_set"]), str(row["system"]), str(row["metric"]))
        if key in table:
            raise ValueError(
                f"scores has more than one row for test_set={key[0]!r}, system={key[1]!r}, "
                f"metric={key[2]!r}: aggregate to one row per (test_set, system, metric)"
            )
        table[key] = _Score(
            n=int(row["n"] or 0),
            value=_number(row["value"]),
            ci_low=_number(row["ci_low"]),
            ci_high=_number(row["ci_high"]),
        )
    return table


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _best(
    test_set: str,
    systems: Sequence[str],
    metric: str,
    lower_is_better: bool,
    table: Mapping[tuple[str, str, str], _Score],
) -> float | None:
    """The best value as displayed (3 decimals), so values that print the same are all bold."""
    shown = [
        round(score.value, 3)
        for s in systems
        if (score := table.get((test_set, s, metric))) and score.value is not None
    ]
    if not shown:
        return None
    return min(shown) if lower_is_better else max(shown)


# --- markdown --------------------------------------------------------------------------------

_HOW_TO_READ: Final = (
    "Each cell is a metric's mean over the test set's items, its 95% bootstrap confidence "
    "interval in brackets, and n, the number of items it was computed on (items where a metric "
    "does not apply are not counted). Bold marks the best value of each metric within a test "
    "set, ties all bold; ↓ marks a metric where lower is better, for all others higher is "
    "better; — marks a metric that could not be computed. Intervals that overlap mean the "
    "difference may be noise. The bar chart shows the same means with their intervals as error "
    "bars. Each confusion matrix counts one system's items by the reference action (rows) and "
    "the action it chose (columns); items where it chose no recognisable action are counted in "
    "the title, outside the matrix."
)


def _header(
    meta: ReportMeta,
    test_sets: Sequence[str],
    systems: Sequence[str],
    metrics: Sequence[str],
    lower: Collection[str],
) -> str:
    item_counts = meta.get("item_counts", {})
    identities = meta.get("systems", {})
    sets = ", ".join(
        _md(s) + (f" ({item_counts[s]} items)" if s in item_counts else "") for s in test_sets
    )
    lines = [
        f"# Evaluation report · run {_md(meta['run_id'])}",
        "",
        f"- run: {_md(meta['run_id'])}",
        *([f"- mode: {_md(meta['mode'])}"] if "mode" in meta else []),
        *_judge_failure_lines(meta),
        f"- test sets: {sets}",
        "- systems:",
        *(
            f"    - **{_md(s)}**" + (f": {_md(identities[s])}" if s in identities else "")
            for s in systems
        ),
        "",
        "## How to read this",
        "",
        _HOW_TO_READ,
        "",
        *(
            f"- **{_md(m)}**{' ↓' if m in lower else ''}: {_md(meta['metric_definitions'][m])}"
            for m in metrics
        ),
        "",
    ]
    return "\n".join(lines)


def _set_section(
    test_set: str,
    systems: Sequence[str],
    metrics: Sequence[str],
    lower: Collection[str],
    table: Mapping[tuple[str, str, str], _Score],
    meta: ReportMeta,
    bars: str,
    matrices: Sequence[tuple[str, str]],
) -> str:
    count = meta.get("item_counts", {}).get(test_set)
    heading = f"## {_md(test_set)}" + (f" · {count} items" if count is not None else "")
    best = {m: _best(test_set, systems, m, m in lower, table) for m in metrics}
    header = ["system", *(_md(m) + (" ↓" if m in lower else "") for m in metrics)]
    rows = [
        [f"**{_md(s)}**", *(_cell(table.get((test_set, s, m)), best[m]) for m in metrics)]
        for s in systems
    ]
    lines = [
        heading,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"![{_md(test_set)}: metrics by system, 95% CI]({IMAGES_DIR}/{bars})",
        "",
    ]
    if matrices:
        lines += [
            "Confusion matrices, reference action (rows) × chosen action (columns):",
            "",
            " ".join(
                f"![{_md(test_set)} · {_md(s)}: confusion matrix]({IMAGES_DIR}/{name})"
                for s, name in matrices
            ),
            "",
        ]
    return "\n".join(lines)


def _cell(score: _Score | None, best: float | None) -> str:
    if score is None:
        return "—"
    if score.value is None:
        return f"— (n={score.n})"
    value = f"{score.value:.3f}"
    if best is not None and round(score.value, 3) == best:
        value = f"**{value}**"
    interval = (
        f" [{score.ci_low:.2f}, {score.ci_high:.2f}]"
        if score.ci_low is not None and score.ci_high is not None
        else ""
    )
    return f"{value}{interval} (n={score.n})"


_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]|])")


def _judge_failure_lines(meta: ReportMeta) -> list[str]:
    failures = meta.get("judge_failures") or {}
    if not any(failures.values()):
        return []
    counts = ", ".join(f"{_md(question)} {n}" for question, n in failures.items())
    return [f"- judge requests that failed every attempt (those items have no score): {counts}"]


def _md(text: str) -> str:
    """Names and definitions come from the caller: shown as written, never as markup."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("<", "&lt;").replace("\n", " ")


_IMAGE: Final = re.compile(rf"!\[(?P<alt>(?:\\.|[^\]\\])*)\]\((?P<src>{IMAGES_DIR}/[^)\s]+)\)")


def _embed(
    text: str,
    read: Callable[[str], bytes],
    keep: Callable[[str], bool] = lambda src: True,
    note: str = "",
) -> str:
    """``text`` with each kept image as a base64 data URI; a line whose images are all left out
    becomes ``note``."""
    lines = []
    for line in text.split("\n"):
        sources = [m["src"] for m in _IMAGE.finditer(line)]
        if not sources:
            lines.append(line)
        elif not any(keep(src) for src in sources):
            lines.append(note)
        else:
            lines.append(
                _IMAGE.sub(
                    lambda m: (
                        f"![{m['alt']}]({_data_uri(read(m['src']))})" if keep(m["src"]) else ""
                    ),
                    line,
                ).strip()
            )
    return "\n".join(lines)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_CSS: Final = (
    "body{font-family:system-ui,sans-serif;max-width:75rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45}table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}th{background:#f4f4f4}"
    "img{max-width:100%;vertical-align:top}"
)


def _html_page(title: str, text: str) -> str:
    body = markdown.markdown(text, extensions=["tables"], output_format="html")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("._") or "x"


# --- plots -----------------------------------------------------------------------------------


def _bars_png(
    test_set: str,
    systems: Sequence[str],
    all_systems: Sequence[str],
    metrics: Sequence[str],
    lower: Collection[str],
    table: Mapping[tuple[str, str, str], _Score],
) -> bytes:
    """Metrics on the x axis, one bar per system in each, 95% CI as error bars."""
    figure = Figure(figsize=BARS_FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    palette = _palette(len(all_systems))
    width = 0.8 / max(len(systems), 1)
    x = np.arange(len(metrics), dtype=float)
    for i, system in enumerate(systems):
        scores = [table.get((test_set, system, m)) for m in metrics]
        heights = [s.value if s and s.value is not None else np.nan for s in scores]
        below = [_reach(s, s.ci_low if s else None, upward=False) for s in scores]
        above = [_reach(s, s.ci_high if s else None, upward=True) for s in scores]
        offset = x - 0.4 + width * (i + 0.5)
        axes.bar(
            offset,
            heights,
            width,
            yerr=np.array([below, above]),
            capsize=3,
            label=system,
            color=palette[all_systems.index(system)],
            error_kw={"elinewidth": 1},
        )
        for position, height in zip(offset, heights, strict=True):
            if np.isnan(height):
                axes.annotate(
                    "n/a",
                    (position, 0),
                    xytext=(0, 4),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                )
    axes.set_xticks(x, [m + (" ↓" if m in lower else "") for m in metrics], fontsize=8)
    axes.set_ylabel("mean (95% CI)")
    axes.set_title(test_set, fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    figure.legend(loc="outside right upper", fontsize=8, frameon=False)
    return _png(figure)


def _reach(score: _Score | None, bound: float | None, upward: bool) -> float:
    """How far an error bar reaches from the mean; 0 where there is no interval, or where the
    interval does not contain the mean (a percentile bootstrap of a skewed metric can give that)."""
    if score is None or score.value is None or bound is None:
        return 0.0
    return max(bound - score.value if upward else score.value - bound, 0.0)


def _confusion_png(test_set: str, system: str, counts: Confusion) -> bytes:
    figure = Figure(figsize=CONFUSION_FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    matrix = counts.matrix()
    top = max(max(max(row) for row in matrix), 1)
    axes.imshow(matrix, cmap="Blues", vmin=0, vmax=top)
    for r, row in enumerate(matrix):
        for c, value in enumerate(row):
            color = "white" if value > top / 2 else "black"
            axes.text(c, r, str(value), ha="center", va="center", color=color, fontsize=12)
    axes.set_xticks([0, 1], ["ask", "tell"])
    axes.set_yticks([0, 1], ["ask", "tell"])
    axes.set_xlabel("chosen action")
    axes.set_ylabel("reference action")
    axes.set_title(f"{system}\n{test_set} · no action: {counts.no_action}", fontsize=9)
    return _png(figure)


def _palette(count: int) -> list[tuple[float, float, float, float]]:
    colormap = colormaps["tab10" if count <= 10 else "tab20"]
    return [colormap(i % colormap.N) for i in range(count)]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata=_PNG_METADATA)
    return buffer.getvalue()


def _downscale(png: bytes, factor: int) -> bytes:
    if factor == 1:
        return png
    with Image.open(io.BytesIO(png)) as image:
        smaller = image.reduce(factor)
    buffer = io.BytesIO()
    smaller.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
