"""Column contracts of the ingest tables: raw_dialogues, quarantined_records, tagged_dialogues
(a view: raw_dialogues joined with dialogue_tags), tag_collisions."""

from __future__ import annotations

import polars as pl

from ark_assets.lib.tables import (
    BATCH,
    DIALOGUE_SHA256,
    FILE_SHA256,
    MEDARK_KEY,
    RECORD_INDEX,
    SOURCE_FILE,
    TURNS_JSON,
    Column,
)

RAW_DIALOGUES = (
    BATCH,
    SOURCE_FILE,
    FILE_SHA256,
    RECORD_INDEX,
    Column("source", pl.Utf8, "Corpus the dialogue comes from, when the record says."),
    Column("source_id", pl.Utf8, "Id of the dialogue in its corpus, when the record says."),
    Column("language", pl.Utf8, "zh or en."),
    Column("language_detected", pl.Boolean, "True when the language was detected, not given."),
    Column("source_format", pl.Utf8, "jsonl, json, long_table_csv or long_table_parquet."),
    Column("n_turns", pl.Int64, "Number of patient/doctor turns."),
    TURNS_JSON,
    MEDARK_KEY,
    DIALOGUE_SHA256,
    Column("ingested_at", pl.Datetime("us", "UTC"), "When this batch was materialized."),
)

QUARANTINED_RECORDS = (
    BATCH,
    SOURCE_FILE,
    FILE_SHA256,
    Column("record_index", pl.Int64, "As in raw_dialogues; null when the whole file failed."),
    Column("rule", pl.Utf8, "Name of the quarantine rule the record broke."),
    Column("message", pl.Utf8, "What is wrong and how to fix it."),
    Column("excerpt", pl.Utf8, "The start of the raw record (bounded)."),
    Column("quarantined_at", pl.Datetime("us", "UTC"), "When the record was quarantined."),
)

TAGGED_DIALOGUES = (
    BATCH,
    Column(
        "conversation_id",
        pl.Utf8,
        "Unique id: the MedArk key, or <key>~<digest prefix> for a colliding dialogue.",
    ),
    MEDARK_KEY,
    DIALOGUE_SHA256,
    SOURCE_FILE,
    RECORD_INDEX,
    Column("source", pl.Utf8, "As in raw_dialogues."),
    Column("source_id", pl.Utf8, "As in raw_dialogues."),
    Column("language", pl.Utf8, "zh or en."),
    Column("n_turns", pl.Int64, "Number of patient/doctor turns."),
    TURNS_JSON,
    Column("occurrences", pl.Int64, "Records of this batch collapsed into this row (1 = unique)."),
)

# What tagging stores per kept dialogue; ``tagged_dialogues`` is the view that joins it to the
# batch's ``raw_dialogues`` rows, so a dialogue's text is stored once.
DIALOGUE_TAGS = (
    BATCH,
    RECORD_INDEX,
    Column("conversation_id", pl.Utf8, "As in tagged_dialogues."),
    Column("occurrences", pl.Int64, "As in tagged_dialogues."),
)

TAG_COLLISIONS = (
    BATCH,
    Column("kind", pl.Utf8, "collision (same key, other dialogue: kept) or duplicate (collapsed)."),
    Column("medark_key", pl.Utf8, "The shared MedArk key."),
    Column("dialogue_sha256", pl.Utf8, "Digest of this record's dialogue."),
    SOURCE_FILE,
    RECORD_INDEX,
    Column("conversation_id", pl.Utf8, "Where this record's dialogue lives now."),
    Column("other_conversation_id", pl.Utf8, "The dialogue it collided with or duplicated."),
    Column("other_batch", pl.Utf8, "Batch holding that other dialogue."),
)
