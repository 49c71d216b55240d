"""Record ↔ row conversions: what the SFT stage reads back is what the loop wrote."""

from ark_assets.lib.synthesis.backends.rules import RulesBackend
from ark_assets.lib.synthesis.entities import regenerate
from ark_assets.lib.synthesis.loop import ArkLoop
from ark_assets.lib.synthesis.tables import (
    ARK_ENTITIES,
    ARK_PATHS,
    entities_frame,
    failures_frame,
    path_from_row,
    paths_frame,
)
from ark_assets.lib.synthesis.teacher import Teacher
from ark_assets.testing.retriever import MemoryRetriever
from ark_assets_tests.lib.synthesis.conftest import sample_prefixes


def test_paths_round_trip_through_their_table(kb: MemoryRetriever) -> None:
    outcome = ArkLoop(Teacher(RulesBackend()), kb, "kb-x").run(sample_prefixes("zh", 3))
    frame = paths_frame(outcome.paths)
    assert frame.columns == [c.name for c in ARK_PATHS] and frame.height == len(outcome.paths)
    restored = [path_from_row(row) for row in frame.iter_rows(named=True)]
    assert restored == outcome.paths
    assert frame["n_rounds"].to_list() == [len(p.rounds) for p in outcome.paths]
    assert set(frame["teacher_backend"]) == {"rules"}


def test_entity_and_failure_frames_are_typed_even_when_empty(kb: MemoryRetriever) -> None:
    assert failures_frame([]).height == 0 and entities_frame([]).columns == [
        c.name for c in ARK_ENTITIES
    ]
    outcome = ArkLoop(Teacher(RulesBackend()), kb, "kb").run(sample_prefixes("zh", 3))
    rows = paths_frame(outcome.paths).iter_rows(named=True)
    records = regenerate(Teacher(RulesBackend()), list(rows)).records
    frame = entities_frame(records)
    assert frame.height == sum(p.is_asking for p in outcome.paths)
    assert frame["n_entities"].min() >= 1  # type: ignore[operator]
    assert str(frame.schema["symptom"]) == "List(String)"
