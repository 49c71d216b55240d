"""Exact duplicates collapse, collisions are kept under stable disambiguated ids."""

import hashlib

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from ark_assets.lib.hashing import dialogue_sha256, medark_key
from ark_assets.lib.ingest.tagging import (
    COLLISION,
    DUPLICATE,
    KEY_COLUMNS,
    Holder,
    collision_id,
    tag_batch,
    tag_keys,
)

FIRST = {"patient": "我最近老是头疼", "doctor": "多久了？"}
A = [FIRST, {"patient": "三天", "doctor": "先休息。"}]
B = [FIRST, {"patient": "两周", "doctor": "去医院看看。"}]  # same first turn, other dialogue
C = [{"patient": "咳嗽", "doctor": "有痰吗？"}]


def _records(*dialogues: list[dict[str, str]]) -> list[tuple[int, str, str]]:
    return [(i, medark_key(d[0]), dialogue_sha256(d)) for i, d in enumerate(dialogues)]


def key_of(dialogue: list[dict[str, str]]) -> str:
    return hashlib.sha256(str(dialogue[0]).encode()).hexdigest()


def test_unique_dialogues_get_their_medark_key() -> None:
    rows, events = tag_batch("b1", _records(A, C))
    assert [r.conversation_id for r in rows] == [key_of(A), key_of(C)]
    assert events == []


def test_exact_duplicates_collapse_and_are_counted() -> None:
    rows, events = tag_batch("b1", _records(A, C, A, A))
    assert [(r.conversation_id, r.occurrences) for r in rows] == [(key_of(A), 3), (key_of(C), 1)]
    assert [(e.kind, e.record_index, e.other_conversation_id) for e in events] == [
        (DUPLICATE, 2, key_of(A)),
        (DUPLICATE, 3, key_of(A)),
    ]


def test_collision_keeps_both_under_disambiguated_id() -> None:
    rows, events = tag_batch("b1", _records(A, B))
    assert rows[0].conversation_id == key_of(A)
    assert rows[1].conversation_id == collision_id(key_of(B), rows[1].dialogue_sha256)
    assert rows[1].medark_key == key_of(A)
    (event,) = events
    assert (event.kind, event.record_index, event.other_conversation_id) == (
        COLLISION,
        1,
        key_of(A),
    )


def test_other_batches_hold_keys_and_absorb_duplicates() -> None:
    first_rows, _ = tag_batch("b1", _records(A))
    holders = [Holder(r.conversation_id, r.medark_key, r.dialogue_sha256, "b1") for r in first_rows]
    rows, events = tag_batch("b2", _records(B, A, C), holders)
    assert [r.conversation_id for r in rows] == [
        collision_id(key_of(B), rows[0].dialogue_sha256),
        key_of(C),
    ]
    assert [(e.kind, e.other_batch) for e in events] == [(COLLISION, "b1"), (DUPLICATE, "b1")]


def test_retagging_a_batch_is_stable() -> None:
    """b1 holds the key, b2 collides; re-tagging b1 against b2's output keeps b1's plain key."""
    b1_rows, _ = tag_batch("b1", _records(A))
    b1 = [Holder(r.conversation_id, r.medark_key, r.dialogue_sha256, "b1") for r in b1_rows]
    b2_rows, _ = tag_batch("b2", _records(B), b1)
    b2 = [Holder(r.conversation_id, r.medark_key, r.dialogue_sha256, "b2") for r in b2_rows]
    again, events = tag_batch("b1", _records(A), b2)
    assert [r.conversation_id for r in again] == [key_of(A)]
    assert [e.kind for e in events] == [COLLISION]


KEYS = st.sampled_from(["k1", "k2", "k3", "k4"])
DIGESTS = st.sampled_from(["d1", "d2", "d3", "d4", "d5"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(KEYS, DIGESTS), max_size=8),
    st.lists(st.tuples(st.sampled_from(["b0", "b2"]), KEYS, DIGESTS, st.booleans()), max_size=4),
)
def test_tag_keys_gives_what_tag_batch_gives(
    batch: list[tuple[str, str]], held: list[tuple[str, str, str, bool]]
) -> None:
    """The frame path (plain rows decided at once, the rest through tag_batch) agrees with
    tag_batch over every record, against any holders."""
    records = [(i * 3, key, digest) for i, (key, digest) in enumerate(batch)]
    holders = [
        Holder(collision_id(k, d) if disambiguated else k, k, d, b)
        for b, k, d, disambiguated in held
    ]
    rows, events = tag_batch(
        "b1", records, sorted(holders, key=lambda h: (h.batch, h.conversation_id))
    )
    keys = pl.DataFrame(records, schema=list(KEY_COLUMNS), orient="row")
    others = pl.DataFrame(
        [(h.conversation_id, h.medark_key, h.dialogue_sha256, h.batch) for h in holders],
        schema=["conversation_id", "medark_key", "dialogue_sha256", "batch"],
        orient="row",
    )
    ids, frame_events = tag_keys("b1", keys, others)
    assert ids.rows() == [(r.record_index, r.conversation_id, r.occurrences) for r in rows]
    assert sorted(frame_events, key=lambda e: e.record_index) == sorted(
        events, key=lambda e: e.record_index
    )
