"""Warehouse: the dbt models of ``dbt_like_sql/`` as assets of the one lineage graph.

Every model is an asset of group ``warehouse``; its upstream assets are the Python assets whose
tables it reads (the dbt source ``ark``: table ``ark.<name>`` is asset ``<name>``) and, for the
two models that read files, the assets that write them (``meta.ark.reads_assets``). Every dbt
test is an asset check on the model it tests. A build runs ``dbt build`` on the selected models
holding the warehouse lock (``Warehouse.held``, the lock the IO manager takes), so no other step
opens the file while dbt writes it.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from ark_assets.defs.resources import ArtifactStore, DialogueInbox, Warehouse
from ark_assets.lib.warehouse import count_rows
from ark_assets.lib.warehouse.project import (
    MANIFEST_DIR,
    dbt_vars,
    exclusions,
    prepare_manifest,
    project_dir,
    read_manifest,
    unbuilt_tests,
)

GROUP = "warehouse"

# A model runs when a table or model it reads was updated (any batch's partition, a rebuild after
# `ark forget`) or when it is new, once nothing upstream is still running; the automation
# sensor puts the models of one tick in one run, so a mart follows its staging views at once.
# Unlike plain eager(), a dependency with a missing partition (a batch whose run failed) does
# not hold every mart back; models over a table never written are left out of the build.
WAREHOUSE_AUTOMATION = (
    dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .with_label("eager_allow_missing")
)


class WarehouseTranslator(DagsterDbtTranslator):
    """dbt sources are the Python assets of the same name; models keep their dbt names."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return GROUP

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        # The yml's description only: the SQL is in the code version and the model's file.
        return str(dbt_resource_props.get("description") or dbt_resource_props["name"])

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition:
        return WAREHOUSE_AUTOMATION

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        meta = props.get("config", {}).get("meta") or props.get("meta") or {}
        reads = meta.get("ark", {}).get("reads_assets", [])
        return spec.merge_attributes(deps=[dg.AssetKey(name) for name in reads]) if reads else spec


PROJECT_DIR = project_dir()
# `dbt parse` when the project's files changed since the manifest was last built (every step
# process loads the code location; an unchanged project costs one digest of its files).
MANIFEST = prepare_manifest(PROJECT_DIR)
MANIFEST_JSON = read_manifest(MANIFEST.path)
PROJECT = DbtProject(project_dir=PROJECT_DIR, target_path=MANIFEST_DIR)
TRANSLATOR = WarehouseTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=MANIFEST_JSON,
    project=PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    name="warehouse_models",
)
def warehouse_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    inbox: DialogueInbox,
    artifacts: ArtifactStore,
) -> Iterator[Any]:
    """Builds the selected dbt models and runs their tests (``dbt build``) on the platform's
    warehouse, holding its lock; a model over a source table not written yet is left out, not
    failed, with a warning naming the table."""
    left_out = exclusions(MANIFEST_JSON, warehouse.tables())
    if left_out:
        context.log.warning(
            f"left out until their tables exist (materialize those assets first): {left_out}"
        )
    selected = {key.path[-1] for key in context.selected_asset_keys}
    waiting = unbuilt_tests(MANIFEST_JSON, selected, warehouse.relations())
    if waiting:
        context.log.info(f"tests left for a build with all their models: {waiting}")
    left_out += waiting
    args = ["build", "--vars", dbt_vars(warehouse.database, inbox.landing_path, artifacts.root)]
    args += ["--exclude", " ".join(left_out)] if left_out else []
    # The events are yielded once the build has released the lock: their row counts need a
    # connection of their own, and the lock is not re-entrant.
    with TemporaryDirectory() as target, warehouse.held():
        invocation = dbt.cli(args, context=context, target_path=Path(target), raise_on_error=False)
        events = list(invocation.stream())
        error = invocation.get_error()
    yield from _with_row_counts(events, warehouse)
    if error:
        raise error


def _with_row_counts(events: list[Any], warehouse: Warehouse) -> Iterator[Any]:
    """The build's events, each table model's materialization with its ``dagster/row_count``
    (views are not counted: that would run their query)."""
    nodes = MANIFEST_JSON["nodes"]
    tables = {
        unique_id: (nodes[unique_id]["schema"], nodes[unique_id]["alias"])
        for unique_id in filter(None, map(_unique_id, events))
        if nodes[unique_id]["config"].get("materialized") == "table"
    }
    counts: dict[tuple[str, str], int] = {}
    if tables:
        with warehouse.connect() as conn:
            counts = count_rows(conn, tables.values())
    for event in events:
        relation = tables.get(_unique_id(event) or "")
        if relation in counts:
            event = event.with_metadata({**event.metadata, "dagster/row_count": counts[relation]})
        yield event


def _unique_id(event: Any) -> str | None:
    """The dbt node a model's materialization event is for (None for check results)."""
    if isinstance(event, dg.Output) and "unique_id" in event.metadata:
        return str(event.metadata["unique_id"].value)
    return None
