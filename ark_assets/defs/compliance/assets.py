"""Compliance: PHI de-identification between tagging and every layer that trains or indexes, and
the deletion requests (tombstones) every dialogue layer honours."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.metadata import PHI_DEIDENTIFIED_TAGS, column_schema, table_metadata, table_out
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.quality import phi_free_result
from ark_assets.defs.resources import Warehouse
from ark_assets.lib.compliance.deidentify import (
    DEIDENTIFIED_DIALOGUES,
    PHI_FINDINGS,
    deidentify_dialogues,
    turn_texts,
)
from ark_assets.lib.compliance.tombstones import DELETION_REQUESTS, TABLE

GROUP = "compliance"
NO_PHI_LEFT = "deidentified_dialogues_phi_free"

deletion_requests = dg.AssetSpec(
    TABLE,
    group_name=GROUP,
    description="Tombstones recorded by `ark forget` (who, when, why, what: conversation keys, "
    "content digests, source files). Every dialogue layer drops what they match on its next "
    "materialization; `ark forget` reports a materialization here for each request.",
    kinds={"duckdb"},
    code_version="1",
    metadata={"dagster/column_schema": column_schema(DELETION_REQUESTS)},
)


class DeidentifyConfig(dg.Config):
    use_presidio: bool = Field(
        default=False,
        description="Add Microsoft Presidio's findings (needs presidio-analyzer and a spaCy "
        "model per language installed; measure its precision first, see docs/compliance.md).",
    )


@dg.multi_asset(
    outs={
        "deidentified_dialogues": table_out(
            "tagged_dialogues with every PHI span replaced by a typed placeholder ([NAME_1], "
            "[PHONE_1]…), consistent within each dialogue: the only dialogues synthesis, "
            "training and evaluation read.",
            DEIDENTIFIED_DIALOGUES,
            code_version="2",  # 2: phonenumbers, stdnum's resident-ID date and region checks
            tags=PHI_DEIDENTIFIED_TAGS,
            automation=dg.AutomationCondition.eager(),
        ),
        "phi_findings": table_out(
            "One row per replaced span: type, turn, role, offsets, detector, placeholder. Never "
            "the raw value, nor a hash of it.",
            PHI_FINDINGS,
            code_version="2",
            automation=dg.AutomationCondition.eager(),
        ),
    },
    ins={"tagged_dialogues": dg.AssetIn()},
    partitions_def=dialogue_batches,
    group_name=GROUP,
    check_specs=[
        dg.AssetCheckSpec(
            NO_PHI_LEFT,
            asset="deidentified_dialogues",
            blocking=True,
            description="No detector fires on the redacted turns.",
        )
    ],
)
def deidentified_dialogues(
    context: dg.AssetExecutionContext,
    config: DeidentifyConfig,
    tagged_dialogues: pl.DataFrame,
    warehouse: Warehouse,
) -> Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]:
    """Redacts the batch's dialogues (lib/compliance/phi.py) and records what was replaced;
    dialogues under a deletion request are dropped."""
    dialogues = warehouse.forgotten().exclude(tagged_dialogues)
    result = deidentify_dialogues(dialogues, use_presidio=config.use_presidio)
    by_type = result.counts_by_type()
    counts: dict[str, Any] = {
        "dialogues": result.dialogues.height,
        "forgotten": tagged_dialogues.height - dialogues.height,
        "dialogues_with_phi": int((result.dialogues["phi_findings"] > 0).sum()),
        "phi_findings": result.findings.height,
        "phi_by_type": dg.MetadataValue.json(by_type),
    }
    context.log.info(f"{result.findings.height} spans replaced: {by_type}")
    yield dg.Output(
        result.dialogues,
        output_name="deidentified_dialogues",
        metadata={**table_metadata(result.dialogues, DEIDENTIFIED_DIALOGUES), **counts},
    )
    yield dg.Output(
        result.findings,
        output_name="phi_findings",
        metadata={**table_metadata(result.findings, PHI_FINDINGS), **counts},
    )
    yield phi_free_result(
        turn_texts(result.dialogues["turns_json"]),
        check_name=NO_PHI_LEFT,
        asset_key="deidentified_dialogues",
    )
