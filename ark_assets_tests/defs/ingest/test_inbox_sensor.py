"""The inbox sensor registers each new content once and requests its ingest run."""

import dagster as dg
import duckdb

from ark_assets.defs.ingest.sensors import dialogue_inbox_sensor
from ark_assets_tests.conftest import BAD_INPUTS, INGEST_SELECTION, Platform


class SensorTicks:
    """Evaluates the sensor tick after tick, carrying its cursor like the daemon does."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=self.platform.instance,
            resources={"inbox": self.platform.resources["inbox"]},
            cursor=self.cursor,
        )
        result = dialogue_inbox_sensor(context)
        self.cursor = context.cursor
        if isinstance(result, dg.SensorResult):
            for request in result.dynamic_partitions_requests or []:
                self.platform.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys or [])
                )
        return result


def test_new_same_renamed_and_modified_files(platform: Platform) -> None:
    ticks = SensorTicks(platform)
    source = BAD_INPUTS / "06_duplicates.jsonl"
    platform.drop(source)
    first = ticks.tick()
    assert isinstance(first, dg.SensorResult)
    (key,) = first.dynamic_partitions_requests[0].partition_keys
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [(key, key)]
    assert dialogue_inbox_sensor.job_name == "ingest_job"

    assert isinstance(ticks.tick(), dg.SkipReason)  # same file again

    (platform.inbox / "renamed.jsonl").write_bytes(source.read_bytes())
    assert isinstance(ticks.tick(), dg.SkipReason)  # same content, other name

    (platform.inbox / source.name).write_bytes(source.read_bytes() + b"\n")
    modified = ticks.tick()
    assert isinstance(modified, dg.SensorResult)
    (new_key,) = modified.dynamic_partitions_requests[0].partition_keys
    assert new_key != key and new_key.startswith("06_duplicates.jsonl__")
    assert sorted(platform.instance.get_dynamic_partitions("dialogue_batches")) == sorted(
        [key, new_key]
    )


def test_in_flight_uploads_wait(platform: Platform) -> None:
    platform.inbox.mkdir(parents=True)
    (platform.inbox / ".upload.jsonl.tmp").write_text("{}")
    (platform.inbox / "upload.jsonl.part").write_text("{}")
    assert isinstance(SensorTicks(platform).tick(), dg.SkipReason)


def test_empty_files_of_every_format_are_each_a_batch(platform: Platform) -> None:
    """#18 item 6: an empty .json/.csv/.parquet has the sha256 of an empty .jsonl."""
    platform.inbox.mkdir(parents=True)
    for suffix in ("jsonl", "json", "csv", "parquet"):
        (platform.inbox / f"empty.{suffix}").write_bytes(b"")
    result = SensorTicks(platform).tick()
    assert isinstance(result, dg.SensorResult)
    keys = result.dynamic_partitions_requests[0].partition_keys or []
    assert sorted(k.split("__")[0] for k in keys) == [
        "empty.csv",
        "empty.json",
        "empty.jsonl",
        "empty.parquet",
    ]


def test_a_quarantined_file_renamed_to_the_right_extension_is_ingested(platform: Platform) -> None:
    ticks = SensorTicks(platform)
    platform.inbox.mkdir(parents=True)
    line = b'{"turns": [{"patient": "I have a cough", "doctor": "Since when?"}]}\n'
    (platform.inbox / "dialogues.txt").write_bytes(line)
    (first,) = ticks.tick().dynamic_partitions_requests[0].partition_keys  # type: ignore[union-attr]
    result = platform.materialize(INGEST_SELECTION, first)
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}[
        "records_accounted"
    ]
    (platform.inbox / "dialogues.txt").rename(platform.inbox / "dialogues.jsonl")
    renamed = ticks.tick()
    assert isinstance(renamed, dg.SensorResult)
    (second,) = renamed.dynamic_partitions_requests[0].partition_keys or []
    assert second.startswith("dialogues.jsonl__")
    platform.materialize(INGEST_SELECTION, second)
    with duckdb.connect(str(platform.root / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute("select batch, count(*) from ark.raw_dialogues group by 1").fetchall()
    assert rows == [(second, 1)]


def test_symbolic_links_are_not_registered_and_are_named(platform: Platform) -> None:
    platform.inbox.mkdir(parents=True)
    (platform.inbox / "passwd.jsonl").symlink_to("/etc/passwd")
    result = SensorTicks(platform).tick()
    assert isinstance(result, dg.SkipReason)
    assert "passwd.jsonl" in (result.skip_message or "")
    assert platform.instance.get_dynamic_partitions("dialogue_batches") == []
