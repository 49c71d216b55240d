"""The leaderboard: tables with the right values in bold, valid fixed-size PNGs that re-render
byte for byte, a self-contained HTML page and metadata markdown within its budget."""

import base64
import re
import struct
from pathlib import Path

import polars as pl
import pytest

from ark_assets.lib.evaluation import report
from ark_assets.lib.evaluation.report import (
    BARS_FIGSIZE,
    CONFUSION_FIGSIZE,
    DPI,
    METADATA_BUDGET_BYTES,
    Confusion,
    ReportFiles,
    ReportMeta,
    metadata_markdown,
    render_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRICS = ("action_accuracy", "ask_f1", "similarity", "refusal_rate")

# (test_set, system) → one (value, ci_low, ci_high, n) per metric in METRICS.
Score = tuple[float | None, float | None, float | None, int]
VALUES: dict[tuple[str, str], list[Score]] = {
    ("zh_med_ask", "medark"): [
        (0.812, 0.78, 0.84, 240),
        (0.9, 0.85, 0.95, 200),
        (0.4004, 0.38, 0.42, 240),
        (0.10, 0.07, 0.13, 240),
    ],
    ("zh_med_ask", "ours"): [
        (0.85, 0.82, 0.88, 240),
        (None, None, None, 0),  # ask_f1 could not be computed
        (0.4001, 0.37, 0.43, 240),  # ties medark's 0.4004 as displayed: both bold
        (0.05, 0.03, 0.08, 240),  # lowest refusal rate: the best
    ],
    ("zh_med_ask", "base"): [
        (0.7, 0.66, 0.74, 240),
        (0.5, 0.44, 0.56, 200),
        (0.3, 0.28, 0.32, 240),
        (0.2, 0.16, 0.25, 240),
    ],
    ("non_zh_med_tell", "medark"): [
        (0.6, 0.5, 0.7, 80),
        (0.3, 0.2, 0.4, 80),
        (0.25, 0.2, 0.3, 80),
        (0.02, 0.0, 0.05, 80),  # lowest refusal rate
    ],
    ("non_zh_med_tell", "ours"): [
        (0.65, 0.55, 0.75, 80),
        (0.45, 0.35, 0.55, 80),  # best ask_f1
        (0.35, 0.3, 0.4, 80),  # best similarity
        (0.04, 0.01, 0.08, 80),
    ],
    ("non_zh_med_tell", "base"): [
        (0.7, 0.6, 0.8, 80),  # best action accuracy
        (0.1, None, None, 80),  # a mean without an interval
        (0.2, 0.15, 0.25, 80),
        (0.3, 0.2, 0.4, 80),
    ],
}

CONFUSION_KEYS = ("tp_ask", "fn_ask", "fp_ask", "tn_tell", "no_action")


def _counts(*values: int) -> dict[str, int]:
    return dict(zip(CONFUSION_KEYS, values, strict=True))


CONFUSION: dict[tuple[str, str], Confusion | dict[str, int]] = {
    ("zh_med_ask", "medark"): Confusion(tp_ask=180, fn_ask=40, fp_ask=0, tn_tell=0, no_action=20),
    ("zh_med_ask", "ours"): _counts(200, 30, 0, 0, 10),
    ("zh_med_ask", "base"): _counts(150, 80, 0, 0, 10),
    ("non_zh_med_tell", "medark"): _counts(0, 0, 30, 48, 2),
    ("non_zh_med_tell", "ours"): _counts(0, 0, 28, 52, 0),
    ("non_zh_med_tell", "base"): _counts(0, 0, 24, 56, 0),
}

META: ReportMeta = {
    "run_id": "run-0042",
    "mode": "offline (no judge)",
    "item_counts": {"zh_med_ask": 240, "non_zh_med_tell": 80},
    "systems": {"medark": "MedArk-7B (published)", "ours": "adapter 3f2a9c", "base": "Qwen2.5-7B"},
    "lower_is_better": {"refusal_rate"},
    "metric_definitions": {
        "action_accuracy": "share of items where the chosen action matches the reference",
        "ask_f1": "F1 of the ask action against the reference",
        "similarity": "similarity of the reply to the doctor's reply",
        "refusal_rate": "share of replies that refuse to help",
    },
}


def _scores() -> pl.DataFrame:
    rows = [
        {
            "test_set": test_set,
            "system": system,
            "metric": metric,
            "n": n,
            "value": value,
            "ci_low": low,
            "ci_high": high,
        }
        for (test_set, system), values in VALUES.items()
        for metric, (value, low, high, n) in zip(METRICS, values, strict=True)
    ]
    schema = {
        "test_set": pl.String,
        "system": pl.String,
        "metric": pl.String,
        "n": pl.Int64,
        "value": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return render_report(_scores(), CONFUSION, META, tmp_path_factory.mktemp("a") / "report")


def _tables(text: str) -> dict[str, list[str]]:
    """Heading of each test set's section → its table's lines."""
    tables: dict[str, list[str]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
        elif line.startswith("|"):
            tables.setdefault(heading, []).append(line)
    return tables


def test_one_table_per_test_set_with_the_best_values_in_bold(files: ReportFiles) -> None:
    header = "| system | action\\_accuracy | ask\\_f1 | similarity | refusal\\_rate ↓ |"
    assert _tables(files.markdown_text) == {
        "## zh\\_med\\_ask · 240 items": [
            header,
            "|---|---|---|---|---|",
            "| **medark** | 0.812 [0.78, 0.84] (n=240) | **0.900** [0.85, 0.95] (n=200) "
            "| **0.400** [0.38, 0.42] (n=240) | 0.100 [0.07, 0.13] (n=240) |",
            "| **ours** | **0.850** [0.82, 0.88] (n=240) | — (n=0) "
            "| **0.400** [0.37, 0.43] (n=240) | **0.050** [0.03, 0.08] (n=240) |",
            "| **base** | 0.700 [0.66, 0.74] (n=240) | 0.500 [0.44, 0.56] (n=200) "
            "| 0.300 [0.28, 0.32] (n=240) | 0.200 [0.16, 0.25] (n=240) |",
        ],
        "## non\\_zh\\_med\\_tell · 80 items": [
            header,
            "|---|---|---|---|---|",
            "| **medark** | 0.600 [0.50, 0.70] (n=80) | 0.300 [0.20, 0.40] (n=80) "
            "| 0.250 [0.20, 0.30] (n=80) | **0.020** [0.00, 0.05] (n=80) |",
            "| **ours** | 0.650 [0.55, 0.75] (n=80) | **0.450** [0.35, 0.55] (n=80) "
            "| **0.350** [0.30, 0.40] (n=80) | 0.040 [0.01, 0.08] (n=80) |",
            "| **base** | **0.700** [0.60, 0.80] (n=80) | 0.100 (n=80) "
            "| 0.200 [0.15, 0.25] (n=80) | 0.300 [0.20, 0.40] (n=80) |",
        ],
    }
    assert files.markdown.read_text() == files.markdown_text


def test_how_to_read_this_defines_every_metric(files: ReportFiles) -> None:
    text = files.markdown_text
    assert "## How to read this" in text
    assert "- **refusal\\_rate** ↓: share of replies that refuse to help" in text
    assert "- **ask\\_f1**: F1 of the ask action against the reference" in text
    assert "- **medark**: MedArk-7B (published)" in text
    assert "- mode: offline (no judge)" in text


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_every_image_is_referenced_and_a_png_of_the_figure_size(files: ReportFiles) -> None:
    names = [path.name for path in files.images]
    assert len(names) == 2 + 6  # bars per test set, a confusion matrix per (set, system)
    referenced = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", files.markdown_text)
    assert referenced == [f"images/{name}" for name in names]
    bars = (round(BARS_FIGSIZE[0] * DPI), round(BARS_FIGSIZE[1] * DPI))
    confusion = (round(CONFUSION_FIGSIZE[0] * DPI), round(CONFUSION_FIGSIZE[1] * DPI))
    assert bars == (880, 495)
    for path in files.images:
        assert (files.markdown.parent / "images" / path.name) == path
        size = _png_size(path.read_bytes())
        assert size == (bars if path.name.startswith("bars-") else confusion), path.name
    assert sum(name.startswith("bars-") for name in names) == 2


def test_the_html_embeds_every_image_and_references_no_file(files: ReportFiles) -> None:
    page = files.html.read_text()
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    prefix = "data:image/png;base64,"
    assert [base64.b64decode(link.removeprefix(prefix)) for link in links] == [
        path.read_bytes() for path in files.images
    ]
    assert all(link.startswith(prefix) for link in links)
    assert "url(" not in page
    assert "<table>" in page
    assert page.count("<table>") == 2
    assert "<strong>0.850</strong>" in page
    assert "<li><strong>medark</strong>: MedArk-7B (published)</li>" in page  # the nested list


def test_a_re_render_gives_the_same_bytes(files: ReportFiles, tmp_path: Path) -> None:
    again = render_report(_scores(), CONFUSION, META, tmp_path / "report")
    assert [p.name for p in again.images] == [p.name for p in files.images]
    for first, second in zip(files.images, again.images, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name
        assert b"Software" not in first.read_bytes()
    assert again.html.read_bytes() == files.html.read_bytes()
    assert again.markdown_text == files.markdown_text


def test_a_re_render_into_the_same_folder_replaces_it(tmp_path: Path) -> None:
    out = tmp_path / "report"
    render_report(_scores(), CONFUSION, META, out)
    (out / "images" / "stale.png").write_bytes(b"old")
    fewer = {key: value for key, value in CONFUSION.items() if key[1] != "base"}
    files = render_report(_scores(), fewer, META, out)
    assert sorted((out / "images").iterdir()) == sorted(files.images)
    assert len(files.images) == 2 + 4


def test_metadata_markdown_embeds_every_plot_within_budget(files: ReportFiles) -> None:
    text = metadata_markdown(files)
    assert len(text.encode()) <= METADATA_BUDGET_BYTES
    assert text.count("](data:image/png;base64,") == len(files.images)
    assert "](images/" not in text
    assert "left out" not in text


def test_metadata_markdown_over_budget_keeps_the_bars_and_says_so(
    files: ReportFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = len(metadata_markdown(files).encode())
    monkeypatch.setattr(report, "METADATA_BUDGET_BYTES", full - 1)
    text = metadata_markdown(files)
    assert len(text.encode()) <= full - 1
    assert text.count("](data:image/png;base64,") == 2
    assert text.startswith("_Confusion matrices left out")
    assert "every plot is in report.html" in text

    bars_only = len(text.encode())
    # Not - 1: the note quotes the budget, and a shorter number is a shorter note.
    monkeypatch.setattr(report, "METADATA_BUDGET_BYTES", bars_only - 10)
    text = metadata_markdown(files)
    assert text.startswith("_Confusion matrices left out and bar charts at half size")
    halved = [
        base64.b64decode(uri) for uri in re.findall(r"\]\(data:image/png;base64,([^)]+)\)", text)
    ]
    assert [_png_size(png) for png in halved] == [(440, 248), (440, 248)]

    monkeypatch.setattr(report, "METADATA_BUDGET_BYTES", len(files.markdown_text) + 2000)
    text = metadata_markdown(files)
    assert "data:image" not in text
    assert text.startswith("_Plots left out")


def test_a_metric_without_a_definition_is_refused(tmp_path: Path) -> None:
    meta: ReportMeta = {**META, "metric_definitions": {"action_accuracy": "matches"}}
    with pytest.raises(ValueError, match=r"\['ask_f1', 'similarity', 'refusal_rate'\]"):
        render_report(_scores(), CONFUSION, meta, tmp_path / "report")
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (_scores().drop("ci_low"), r"lack columns \['ci_low'\]"),
        (pl.concat([_scores(), _scores().head(1)]), "more than one row for test_set='zh_med_ask'"),
        (_scores().clear(), "scores is empty"),
    ],
)
def test_malformed_scores_are_refused(scores: pl.DataFrame, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        render_report(scores, CONFUSION, META, tmp_path / "report")


def test_confusion_counts_need_all_five_keys() -> None:
    with pytest.raises(ValueError, match=r"lack \['no_action'\]"):
        Confusion.of({"tp_ask": 1, "fn_ask": 2, "fp_ask": 3, "tn_tell": 4})
