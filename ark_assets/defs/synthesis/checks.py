"""Row contracts of the synthesis tables (Great Expectations suites)."""

import dagster as dg
import great_expectations.expectations as gxe
import polars as pl

from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.quality import gx_check
from ark_assets.defs.synthesis.resources import BACKENDS
from ark_assets.lib.language import SUPPORTED_LANGUAGES
from ark_assets.lib.synthesis.loop import RETRIEVAL_STAGE
from ark_assets.lib.synthesis.models import (
    DEDUCIBLE,
    MAX_QUERIES,
    NO_NEW_QUERY,
    TOO_MANY_RETRIEVALS,
)
from ark_assets.lib.synthesis.prompts import STAGES

ARK_PATHS_CONTRACT = "ark_paths_contract"
ARK_FAILURES_CONTRACT = "ark_failures_contract"
ARK_ENTITIES_CONTRACT = "ark_entities_contract"

_KEY = ["conversation_id", "turn_index"]
# Which stop reasons each number of rounds allows: "too many retrievals" only after both rounds,
# "deducible" after at least one, "no new query request" before a round could run.
_STOPS_BY_ROUNDS = [
    (DEDUCIBLE, 1),
    (DEDUCIBLE, 2),
    (TOO_MANY_RETRIEVALS, 2),
    (NO_NEW_QUERY, 0),
    (NO_NEW_QUERY, 1),
]


@dg.asset_check(
    asset="ark_paths",
    name=ARK_PATHS_CONTRACT,
    blocking=True,
    partitions_def=dialogue_batches,
    description="Stop reasons from the allowed set and consistent with the rounds, ≤ 2 rounds "
    "and ≤ 2 queries per round, one row per prefix, teacher identity present.",
)
def ark_paths_contract(ark_paths: pl.DataFrame) -> dg.AssetCheckResult:
    required = ("conversation_id", "medark_key", "doctor_reply", "response_json", "is_asking")
    return gx_check(
        ark_paths,
        ARK_PATHS_CONTRACT,
        [
            *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in required),
            gxe.ExpectColumnValuesToBeInSet(
                column="stop_reason", value_set=[DEDUCIBLE, TOO_MANY_RETRIEVALS, NO_NEW_QUERY]
            ),
            gxe.ExpectColumnValuesToBeBetween(column="n_rounds", min_value=0, max_value=2),
            gxe.ExpectColumnValuesToBeBetween(
                column="max_queries_per_round", min_value=0, max_value=MAX_QUERIES
            ),
            gxe.ExpectColumnPairValuesToBeInSet(
                column_A="stop_reason", column_B="n_rounds", value_pairs_set=_STOPS_BY_ROUNDS
            ),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=_KEY),
            gxe.ExpectColumnValuesToBeInSet(column="teacher_backend", value_set=list(BACKENDS)),
            gxe.ExpectColumnValuesToBeInSet(column="language", value_set=list(SUPPORTED_LANGUAGES)),
        ],
    )


@dg.asset_check(
    asset="ark_failures",
    name=ARK_FAILURES_CONTRACT,
    partitions_def=dialogue_batches,
    description="Every failure names a known stage and carries its error.",
)
def ark_failures_contract(ark_failures: pl.DataFrame) -> dg.AssetCheckResult:
    return gx_check(
        ark_failures,
        ARK_FAILURES_CONTRACT,
        [
            gxe.ExpectColumnValuesToBeInSet(column="stage", value_set=[*STAGES, RETRIEVAL_STAGE]),
            gxe.ExpectColumnValuesToNotBeNull(column="error"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=_KEY),
        ],
    )


@dg.asset_check(
    asset="ark_entities",
    name=ARK_ENTITIES_CONTRACT,
    blocking=True,
    partitions_def=dialogue_batches,
    description="One row per asking reply, its entity count ≥ 0 (an ask about nothing the seven "
    "lists name is a valid row with none).",
)
def ark_entities_contract(ark_entities: pl.DataFrame) -> dg.AssetCheckResult:
    return gx_check(
        ark_entities,
        ARK_ENTITIES_CONTRACT,
        [
            gxe.ExpectColumnValuesToBeBetween(column="n_entities", min_value=0),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=_KEY),
            gxe.ExpectColumnValuesToNotBeNull(column="doctor_reply"),
        ],
    )
