"""`ark demo` goes on past a failed batch: what does not depend on it still runs, and the
failures are named with their reason (#18 item 12)."""

import dagster as dg
import pytest

from ark_assets.cli.demo import materialize_graph, report_failures

batches = dg.DynamicPartitionsDefinition(name="batches")


@dg.asset(partitions_def=batches)
def ingested(context: dg.AssetExecutionContext) -> None:
    if context.partition_key == "tricky":
        raise ValueError("tricky.jsonl record 3: a rule the test breaks")


@dg.asset
def corpus() -> None:
    """Unpartitioned, independent of the batches."""


@dg.asset(deps=[corpus])
def index() -> None:
    """Puts the per-batch synthesis in a later stretch than ingest, as kb_index does."""


@dg.asset(partitions_def=batches, deps=[ingested, index])
def synthesized() -> None:
    """Per batch, after ingest: must still run for the good batch."""


@dg.asset(deps=[synthesized])
def trained() -> None:
    """Reads every batch: runs on the ones that succeeded."""


@dg.asset
def broken() -> None:
    raise RuntimeError("the index could not be built")


@dg.asset(deps=[broken])
def searched() -> None:
    """Downstream of a failed unpartitioned asset: not run (index, beside it, runs)."""


def test_one_failed_batch_does_not_stop_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    definitions = dg.Definitions(
        assets=[ingested, corpus, index, synthesized, trained, broken, searched]
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", ["tricky", "good"])
        runs = materialize_graph(definitions, instance, {})
        done = {
            name: instance.get_materialized_partitions(dg.AssetKey(name))
            for name in ("ingested", "synthesized")
        }
        assert done == {"ingested": {"good"}, "synthesized": {"good"}}
        for name, ran in (
            ("corpus", True),
            ("index", True),
            ("trained", True),
            ("searched", False),
        ):
            event = instance.get_latest_materialization_event(dg.AssetKey(name))
            assert (event is not None) == ran, name
    failed = {(f.assets, f.partition): f for f in runs.failed}
    assert set(failed) == {
        ("ingested", "tricky"),
        ("synthesized", "tricky"),
        ("broken", None),
        ("searched", None),
    }
    assert "tricky.jsonl record 3: a rule the test breaks" in failed["ingested", "tricky"].reason
    assert failed["ingested", "tricky"].run_id
    assert failed["synthesized", "tricky"].reason == "not run: ingested failed"
    assert failed["searched", None].reason == "not run: broken failed"

    report_failures(runs.failed)
    out = capsys.readouterr().out
    assert "4 run(s) failed or did not start" in out
    assert "[broken]: step broken: RuntimeError: the index could not be built" in out


@dg.asset(partitions_def=batches)
def arrived() -> None:
    """Per batch, like raw_dialogues."""


@dg.asset(deps=[arrived])
def export() -> None:
    """Unpartitioned, reads every batch (like tagged_pkl): reruns after a new batch."""


@dg.asset(deps=[corpus])
def kb() -> None:
    """Unpartitioned, beside `export` in one stretch (like kb_index): must not rerun."""


@dg.asset(deps=[kb])
def kb_eval() -> None:
    """Downstream of `kb` only: must not rerun either."""


@dg.asset(deps=[export, kb])
def trained_on_both() -> None:
    """Downstream of `export`: reruns."""


def test_a_new_batch_reruns_only_what_depends_on_it() -> None:
    """#17: a dialogue-only change reran the knowledge base (113 s on the demo's second run)."""
    definitions = dg.Definitions(assets=[arrived, export, corpus, kb, kb_eval, trained_on_both])
    names = ("arrived", "export", "corpus", "kb", "kb_eval", "trained_on_both")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", ["first"])
        materialize_graph(definitions, instance, {})

        def stamps() -> dict[str, float]:
            events = {n: instance.get_latest_materialization_event(dg.AssetKey(n)) for n in names}
            return {n: e.timestamp for n, e in events.items() if e is not None}

        before = stamps()
        assert set(before) == set(names)
        assert materialize_graph(definitions, instance, {}).launched == 0  # nothing changed
        instance.add_dynamic_partitions("batches", ["second"])
        materialize_graph(definitions, instance, {})
        after = stamps()
    rerun = {n for n in names if after[n] != before[n]}
    assert rerun == {"arrived", "export", "trained_on_both"}
