"""Synthesis: teacher-explained action paths behind every doctor reply (MedArk stages 1–3)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.knowledge.resources import EmbedderResource, VectorStoreResource
from ark_assets.defs.metadata import PHI_DEIDENTIFIED_TAGS, table_metadata, table_out
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.progress import counted_progress
from ark_assets.defs.quality import failure_rate_result
from ark_assets.defs.resources import Warehouse
from ark_assets.defs.synthesis.resources import TeacherResource
from ark_assets.lib.knowledge.store import KnowledgeIndex
from ark_assets.lib.synthesis.entities import regenerate
from ark_assets.lib.synthesis.loop import ArkLoop, LoopSettings, prefixes
from ark_assets.lib.synthesis.summary import (
    accounted,
    accounting,
    expected_prefixes,
    failure_summary,
    keys,
    path_summary,
)
from ark_assets.lib.synthesis.tables import (
    ARK_ENTITIES,
    ARK_FAILURES,
    ARK_PATHS,
    entities_frame,
    failures_frame,
    paths_frame,
)
from ark_assets.lib.synthesis.teacher import Teacher

GROUP = "synthesis"
# The dialogues the Ark loop explains: de-identified (compliance layer), never raw.
INPUT_DIALOGUES = "deidentified_dialogues"
KB_INDEX = "kb_index"
PREFIXES_ACCOUNTED = "ark_prefixes_accounted"
PATH_FAILURE_RATE = "ark_path_failure_rate"
ASKING_HAVE_ENTITIES = "ark_asking_have_entities"
ENTITY_FAILURE_RATE = "ark_entity_failure_rate"
StepEvents = Iterator[dg.Output[pl.DataFrame] | dg.AssetCheckResult]
# One synthesis step at a time (pool limit 1, dagster.yaml), so the teacher's concurrency and
# requests-per-minute limits hold for the whole deployment, not per step.
TEACHER_POOL = "teacher"
# New batches flow through on their own. A knowledge-base rebuild does not silently re-bill
# every batch: re-synthesize on purpose (the cache keeps unchanged answers free).
ON_NEW_DIALOGUES = (
    dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(KB_INDEX))
    & ~dg.AutomationCondition.any_deps_missing()
).with_label("eager on new dialogues, not on kb_index rebuilds")


class ArkPathsConfig(dg.Config):
    k: int = Field(default=2, description="Knowledge-base hits per query (MedArk: 2).")
    min_shared_chars: int = Field(
        default=3, description="A hit must share this many characters with its query (MedArk: 3)."
    )
    min_rounds: int = Field(
        default=0,
        description="Retrieval rounds every path must have (MedArk: 1, its data has no "
        "zero-round path). 0: a first request asking for nothing ends with no round; ≥ 1: such "
        "a request is re-asked (repair message), and a prefix still asking for nothing fails.",
    )
    max_failure_rate: float = Field(
        default=0.05,
        description="Blocking: downstream stops when the failed share of prefixes is, at 95% "
        "confidence (Wilson lower bound), above this.",
    )


class ArkEntitiesConfig(dg.Config):
    max_failure_rate: float = Field(
        default=0.05,
        description="Blocking: downstream stops when the failed share of asking replies is, at "
        "95% confidence (Wilson lower bound), above this.",
    )


def _out(
    description: str, columns: tuple, automation: dg.AutomationCondition, code_version: str
) -> dg.AssetOut:
    return table_out(
        description,
        columns,
        code_version=code_version,
        tags=PHI_DEIDENTIFIED_TAGS,
        automation=automation,
    )


def _check(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)


@dg.multi_asset(
    outs={
        "ark_paths": _out(
            "One row per dialogue prefix ending in a doctor reply: the teacher's hidden path "
            "(retrieval rounds, checks, stop reason) and the reply as an ask or a tell.",
            ARK_PATHS,
            ON_NEW_DIALOGUES,
            code_version="2",
        ),
        "ark_failures": _out(
            "Every prefix the teacher could not complete, with the stage, the error and the "
            "path so far (kept, never dropped).",
            ARK_FAILURES,
            ON_NEW_DIALOGUES,
            code_version="2",
        ),
    },
    ins={"dialogues": dg.AssetIn(INPUT_DIALOGUES)},
    deps=[KB_INDEX],
    partitions_def=dialogue_batches,
    group_name=GROUP,
    pool=TEACHER_POOL,
    check_specs=[
        _check(PREFIXES_ACCOUNTED, "ark_paths", "Every prefix has a path or a failure, once."),
        _check(
            PATH_FAILURE_RATE,
            "ark_paths",
            "Failed prefixes not above max_failure_rate at 95% confidence (Wilson lower bound).",
        ),
    ],
)
def ark_paths(
    context: dg.AssetExecutionContext,
    config: ArkPathsConfig,
    dialogues: pl.DataFrame,
    teacher: TeacherResource,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
    warehouse: Warehouse,
) -> StepEvents:
    """Runs the Ark loop over every prefix of the batch's dialogues against the knowledge base
    (``kb_index``), through the cached teacher; dialogues under a deletion request are left out."""
    dialogues = warehouse.forgotten().exclude(dialogues)
    index = vector_store.index(embedder)
    kb = _kb_metadata(context, index)
    items = [p for row in dialogues.iter_rows(named=True) for p in prefixes(row)]
    settings = LoopSettings(**config.model_dump(include={"k", "min_shared_chars", "min_rounds"}))
    with teacher.open() as ark_teacher:
        loop = ArkLoop(ark_teacher, index.retriever(), kb["kb"], settings)
        outcome = loop.run(items, counted_progress(context.log, "ark_paths", "prefixes"))
    paths, failures = paths_frame(outcome.paths), failures_frame(outcome.failures)
    counts = accounting(expected_prefixes(dialogues), paths, failures)
    context.log.info(f"{paths.height} paths, {failures.height} failures of {len(items)} prefixes")
    paths_metadata = {**table_metadata(paths, ARK_PATHS), **kb, **_json(path_summary(paths))}
    yield dg.Output(
        paths,
        output_name="ark_paths",
        metadata={**paths_metadata, **_teacher_metadata(ark_teacher)},
    )
    yield dg.Output(
        failures,
        output_name="ark_failures",
        metadata={**table_metadata(failures, ARK_FAILURES), **_json(failure_summary(failures))},
    )
    yield _accounted(PREFIXES_ACCOUNTED, "ark_paths", counts)
    yield failure_rate_result(
        PATH_FAILURE_RATE, "ark_paths", failures.height, len(items), config.max_failure_rate
    )


@dg.multi_asset(
    outs={
        "ark_entities": _out(
            "MedArk stage 2: the seven entity lists (disease, symptom, medcine, surgery, "
            "body_part, medical_check, concept) of every asking doctor reply; all empty for an "
            'ask about nothing they name ("多久了？").',
            ARK_ENTITIES,
            dg.AutomationCondition.eager(),
            code_version="2",
        ),
        "ark_entity_failures": _out(
            "Every asking reply whose entities the teacher could not extract, with the error.",
            ARK_FAILURES,
            dg.AutomationCondition.eager(),
            code_version="2",
        ),
    },
    ins={"ark_paths": dg.AssetIn()},
    partitions_def=dialogue_batches,
    group_name=GROUP,
    pool=TEACHER_POOL,
    check_specs=[
        _check(
            ASKING_HAVE_ENTITIES,
            "ark_entities",
            "Every asking path has an entity row (its lists may be empty) or a failure, once.",
        ),
        _check(
            ENTITY_FAILURE_RATE,
            "ark_entities",
            "Failed replies not above max_failure_rate at 95% confidence (Wilson lower bound).",
        ),
    ],
)
def ark_entities(
    context: dg.AssetExecutionContext,
    config: ArkEntitiesConfig,
    ark_paths: pl.DataFrame,
    teacher: TeacherResource,
    warehouse: Warehouse,
) -> StepEvents:
    """Asks the teacher what each asking reply asks about; entities must occur in the reply."""
    asking = warehouse.forgotten().exclude(ark_paths).filter(pl.col("is_asking"))
    with teacher.open() as ark_teacher:
        outcome = regenerate(ark_teacher, list(asking.iter_rows(named=True)))
    records, failures = entities_frame(outcome.records), failures_frame(outcome.failures)
    counts = accounting(keys(asking), records, failures)
    without = int((records["n_entities"] == 0).sum()) if records.height else 0
    yield dg.Output(
        records,
        output_name="ark_entities",
        metadata={
            **table_metadata(records, ARK_ENTITIES),
            "asks_without_entities": without,
            **_teacher_metadata(ark_teacher),
        },
    )
    yield dg.Output(
        failures,
        output_name="ark_entity_failures",
        metadata={**table_metadata(failures, ARK_FAILURES), **_json(failure_summary(failures))},
    )
    yield _accounted(ASKING_HAVE_ENTITIES, "ark_entities", counts)
    yield failure_rate_result(
        ENTITY_FAILURE_RATE, "ark_entities", failures.height, asking.height, config.max_failure_rate
    )


def _accounted(name: str, asset: str, counts: dict[str, int]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, asset_key=asset, passed=accounted(counts), metadata=counts
    )


def _teacher_metadata(teacher: Teacher) -> dict[str, Any]:
    """Who taught, and what it cost: calls made / served from cache / retried / failed."""
    totals = teacher.stats.totals()
    return {
        "teacher_backend": teacher.identity.backend,
        "teacher_model": teacher.identity.model,
        "teacher_note": teacher.identity.note,
        "calls_made": totals.calls,
        "calls_cached": totals.cached,
        "calls_retried": totals.retried,
        "calls_failed": totals.failed,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "peak_in_flight": teacher.stats.peak_in_flight,
        "calls_by_stage": dg.MetadataValue.json(teacher.stats.as_dict()),
        "teacher_cache": dg.MetadataValue.path(str(teacher.cache.path if teacher.cache else "")),
    }


def _kb_metadata(context: dg.AssetExecutionContext, index: KnowledgeIndex) -> dict[str, Any]:
    """Which knowledge base the queries ran against: collection, embedder, size, snapshot."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(KB_INDEX))
    materialization = event.asset_materialization if event else None
    version = materialization.tags.get("dagster/data_version") if materialization else None
    documents = index.count()
    if documents == 0:
        context.log.warning(f"knowledge base {index.name} is empty: materialize {KB_INDEX} first")
    label = f"{index.name}@{version[:12]}" if version else index.name
    return {
        "kb": label,
        "kb_collection": index.name,
        "kb_embedder": index.embedder.identity,
        "kb_documents": documents,
        "kb_data_version": version or "",
    }


def _json(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        key: dg.MetadataValue.json(value) if isinstance(value, dict) else value
        for key, value in summary.items()
    }
