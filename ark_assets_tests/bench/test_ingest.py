"""The ingest benchmark measures both paths on one file and agrees on what came out."""

from pathlib import Path

from ark_assets.bench.ingest import _measure, _report, median_run
from ark_assets.testing.dialogues import write_jsonl


def test_both_paths_read_every_dialogue_and_the_report_has_the_ratios(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bench.jsonl", 300)
    bare = _measure("bare", path, tmp_path / "unused.duckdb")
    ark = _measure("ark", path, tmp_path / "warehouse.duckdb")
    assert bare["dialogues"] == ark["dialogues"] == 300
    assert set(ark["phases"]) == {
        "read + validate (chunks)",
        "store raw_dialogues (DuckDB, committed)",
        "tag (dialogue_tags; tagged_dialogues is a view)",
    }
    assert all(seconds > 0 for seconds in ark["phases"].values())
    report = _report([300], [(300, 0.5, median_run([bare]), median_run([ark]))], 1)
    assert f"**{ark['seconds'] / bare['seconds']:.2f}×**" in report


def test_the_median_run_gives_the_time_and_the_highest_peak_is_the_memory() -> None:
    runs = [
        {"seconds": 3.0, "peak_rss_mib": 100.0, "phases": {"a": 3.0}},
        {"seconds": 9.0, "peak_rss_mib": 120.0, "phases": {"a": 9.0}},
        {"seconds": 4.0, "peak_rss_mib": 110.0, "phases": {"a": 4.0}},
    ]
    median = median_run(runs)
    assert (median["seconds"], median["phases"]) == (4.0, {"a": 4.0})
    assert median["peak_rss_mib"] == 120.0 and median["all_seconds"] == [3.0, 9.0, 4.0]
