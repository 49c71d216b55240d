"""Row contracts of the ingest tables (Great Expectations suites and plain checks)."""

import dagster as dg
import great_expectations.expectations as gxe
import polars as pl

from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.quality import gx_check, quarantine_rules_result
from ark_assets.defs.resources import IngestRules
from ark_assets.lib.language import SUPPORTED_LANGUAGES

RAW_DIALOGUES_CONTRACT = "raw_dialogues_contract"
RAW_DIALOGUES_NOT_EMPTY = "raw_dialogues_not_empty"
TAGGED_DIALOGUES_CONTRACT = "tagged_dialogues_contract"
QUARANTINE_RULES_KNOWN = "quarantine_rules_known"

_HEX64 = r"^[0-9a-f]{64}$"


@dg.asset_check(
    asset="raw_dialogues",
    name=RAW_DIALOGUES_CONTRACT,
    blocking=True,
    partitions_def=dialogue_batches,
    description="Required fields present, language in zh/en, turn count within bounds, "
    "one row per record.",
)
def raw_dialogues_contract(
    raw_dialogues: pl.DataFrame, ingest_rules: IngestRules
) -> dg.AssetCheckResult:
    required = ("batch", "source_file", "file_sha256", "record_index", "turns_json", "language")
    return gx_check(
        raw_dialogues,
        RAW_DIALOGUES_CONTRACT,
        [
            *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in required),
            gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(SUPPORTED_LANGUAGES)),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_turns", min_value=1, max_value=ingest_rules.max_turns
            ),
            gxe.ExpectColumnValuesToBeUnique(column="record_index"),
        ],
    )


@dg.asset_check(
    asset="raw_dialogues",
    name=RAW_DIALOGUES_NOT_EMPTY,
    partitions_def=dialogue_batches,
    description="Warns when a file yielded no accepted dialogue at all.",
)
def raw_dialogues_not_empty(raw_dialogues: pl.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=raw_dialogues.height > 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows": raw_dialogues.height},
    )


@dg.asset_check(
    asset="quarantined_records",
    name=QUARANTINE_RULES_KNOWN,
    partitions_def=dialogue_batches,
    description="Every quarantined record names a known rule and carries a message.",
)
def quarantine_rules_known(quarantined_records: pl.DataFrame) -> dg.AssetCheckResult:
    return quarantine_rules_result(quarantined_records)


@dg.asset_check(
    asset="tagged_dialogues",
    name=TAGGED_DIALOGUES_CONTRACT,
    blocking=True,
    partitions_def=dialogue_batches,
    description="Keys are sha256 hex digests, ids unique, duplicate counts positive.",
)
def tagged_dialogues_contract(tagged_dialogues: pl.DataFrame) -> dg.AssetCheckResult:
    return gx_check(
        tagged_dialogues,
        TAGGED_DIALOGUES_CONTRACT,
        [
            gxe.ExpectColumnValuesToBeUnique(column="conversation_id"),
            gxe.ExpectColumnValuesToMatchRegex(column="medark_key", regex=_HEX64),
            gxe.ExpectColumnValuesToMatchRegex(column="dialogue_sha256", regex=_HEX64),
            gxe.ExpectColumnValuesToBeBetween(column="occurrences", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(SUPPORTED_LANGUAGES)),
        ],
    )
