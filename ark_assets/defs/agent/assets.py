"""Agent: the trained student run as MedArk's ask-or-tell agent (retrieve, then ask or tell)."""

import time

import dagster as dg
import polars as pl
from pydantic import Field

from ark_assets.defs.agent.resources import PolicyResource
from ark_assets.defs.knowledge.resources import EmbedderResource, VectorStoreResource
from ark_assets.defs.metadata import (
    PHI_DEIDENTIFIED_TAGS,
    column_schema,
    json_values,
    table_metadata,
)
from ark_assets.defs.partitions import dialogue_batches
from ark_assets.defs.progress import loop_progress
from ark_assets.defs.resources import Warehouse
from ark_assets.defs.synthesis.resources import TeacherResource
from ark_assets.defs.training.resources import BaseModel, latest_adapter
from ark_assets.lib.agent.items import heldout_prefixes, reference_is_asking
from ark_assets.lib.agent.loop import AgentLoop, LoopSettings
from ark_assets.lib.agent.policy import Decoding
from ark_assets.lib.agent.tables import AGENT_RUNS, runs_frame, summary
from ark_assets.lib.synthesis.models import Prefix

GROUP = "agent"
# Runs when a new adapter lands, not on every new dialogue batch or KB rebuild.
ON_NEW_ADAPTER = (
    dg.AutomationCondition.eager().ignore(
        dg.AssetSelection.assets("deidentified_dialogues", "kb_index", "base_model")
    )
).with_label("after a new sft_adapter")


class AgentSmokeConfig(dg.Config):
    max_prefixes: int = Field(
        default=8,
        description="Held-out prefixes of the newest batch to run: enough to see the action "
        "mix and the parse forms, a few minutes for SmolLM2 on 2 CPU cores.",
    )
    heldout_percent: int = Field(default=10, description="As sft_records' split.")
    max_new_tokens: int = Field(default=256, description="Per generation.")
    max_retrievals: int = Field(default=4, description="Then an Ask or Tell is forced.")
    grammar: bool = Field(default=False, description="Constrain every step's tool call.")
    seed: int = Field(default=20250626, description="Picks the prefixes.")


@dg.asset(
    group_name=GROUP,
    code_version="2",
    kinds={"pytorch", "polars", "duckdb"},
    ins={"dialogues": dg.AssetIn("deidentified_dialogues")},
    deps=["sft_adapter", "kb_index", "base_model"],
    tags=PHI_DEIDENTIFIED_TAGS,
    metadata={"dagster/column_schema": column_schema(AGENT_RUNS)},
    automation_condition=ON_NEW_ADAPTER,
    pool="gpu",
)
def agent_smoke(
    context: dg.AssetExecutionContext,
    config: AgentSmokeConfig,
    dialogues: pl.DataFrame,
    policy: PolicyResource,
    base_model: BaseModel,
    teacher: TeacherResource,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
    warehouse: Warehouse,
) -> dg.Output[pl.DataFrame]:
    """The newest batch's held-out prefixes through the latest SFT adapter as an agent (one
    batched loop: retrieve from the KB, then ask or tell): one row per prefix with every step,
    the final action and its log-probabilities; action mix, parse forms, failure rate and
    throughput in the metadata. Shows in the UI that the adapter runs, not that it is good."""
    from transformers import AutoTokenizer

    batch, items = _newest_heldout_prefixes(context, config, dialogues, warehouse)
    adapter = latest_adapter(context.instance)
    if adapter is None:
        context.log.warning("no sft_adapter yet: running the base model")
    settings = LoopSettings(
        max_retrievals=config.max_retrievals,
        grammar=config.grammar,
        decoding=Decoding(max_new_tokens=config.max_new_tokens),
    )
    student = policy.open(base_model.local_path(), adapter)
    tokenizer = AutoTokenizer.from_pretrained(base_model.local_path())
    started = time.perf_counter()
    with teacher.open() as refiner:
        retriever = vector_store.index(embedder).retriever()
        on_step = loop_progress(context.log, f"agent_smoke {batch}", len(items))
        loop = AgentLoop(student, tokenizer, retriever, refiner, settings, on_step)
        runs = loop.run(items)
    stats = summary(runs, time.perf_counter() - started)
    frame = runs_frame(runs, student.identity, settings, [reference_is_asking(p) for p in items])
    context.log.info(f"{batch}: {stats['ok']}/{stats['prefixes']} final actions, {stats}")
    facts = {"batch": batch, "adapter": str(adapter or "(base model)")}
    meta = {**table_metadata(frame, AGENT_RUNS), **json_values(stats), **facts}
    return dg.Output(frame, metadata=meta)


def _newest_heldout_prefixes(
    context: dg.AssetExecutionContext,
    config: AgentSmokeConfig,
    dialogues: pl.DataFrame,
    warehouse: Warehouse,
) -> tuple[str, list[Prefix]]:
    """The newest batch and a seeded sample of its held-out prefixes (not forgotten)."""
    batch = dialogue_batches.get_partition_keys(dynamic_partitions_store=context.instance)[-1]
    rows = warehouse.forgotten().exclude(dialogues.filter(pl.col("batch") == batch))
    limit, seed = config.max_prefixes, config.seed
    return batch, heldout_prefixes(rows.iter_rows(named=True), config.heldout_percent, limit, seed)
