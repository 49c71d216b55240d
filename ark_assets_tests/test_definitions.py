"""The whole code location loads, and its lineage is pinned by a reviewed snapshot.

For a compliance product every change to an asset's dependencies, group, tags, code version,
automation, checks, jobs or sensors must show up as a diff in review: update the snapshot with
`pytest ark_assets_tests/test_definitions.py --snapshot-update` and commit it with the change.
"""

from typing import Any

import dagster as dg

from ark_assets.definitions import defs


def _spec(spec: dg.AssetSpec, pool: str | None) -> dict[str, Any]:
    schema = spec.metadata.get("dagster/column_schema")
    condition = spec.automation_condition
    return {
        "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
        "group": spec.group_name,
        "code_version": spec.code_version,
        "kinds": sorted(spec.kinds),
        "tags": {k: v for k, v in sorted(spec.tags.items()) if not k.startswith("dagster/kind")},
        "partitions": getattr(spec.partitions_def, "name", None)
        or (type(spec.partitions_def).__name__ if spec.partitions_def else None),
        "partition_expr": spec.metadata.get("partition_expr"),
        "columns": [c.name for c in schema.columns] if schema else None,
        "automation": condition.get_label() or str(condition) if condition else None,
        "has_description": bool(spec.description),
        "pool": pool,
    }


def _graph(definitions: dg.Definitions) -> dict[str, Any]:
    repo = definitions.get_repository_def()
    pools = {
        key: assets_def.op.pool
        for assets_def in repo.asset_graph.assets_defs
        if assets_def.is_executable
        for key in assets_def.keys
    }
    specs = {
        spec.key.to_user_string(): _spec(spec, pools.get(spec.key))
        for spec in definitions.resolve_all_asset_specs()
    }
    checks = {
        f"{key.asset_key.to_user_string()}:{key.name}": {
            "blocking": spec.blocking,
            "description": spec.description,
        }
        for assets_def in repo.asset_graph.assets_defs
        for spec in assets_def.check_specs
        for key in [spec.key]
    }
    jobs = {
        job.name: sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
        for job in repo.get_all_jobs()
        if not job.name.startswith("__")
    }
    sensors = {
        s.name: {
            "targets": sorted(t.job_name for t in s.targets),
            "status": s.default_status.value,
        }
        for s in repo.sensor_defs
    }
    return {
        "assets": dict(sorted(specs.items())),
        "checks": dict(sorted(checks.items())),
        "jobs": jobs,
        "sensors": dict(sorted(sensors.items())),
        "resources": sorted(definitions.resources or {}),
    }


def test_definitions_load_and_validate() -> None:
    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    assert loaded.resolve_job_def("ingest_job") is not None


def test_every_asset_has_code_version_description_and_group() -> None:
    for spec in defs().resolve_all_asset_specs():
        assert spec.code_version, spec.key
        assert spec.description, spec.key
        assert spec.group_name and spec.group_name != "default", spec.key


def test_lineage_snapshot(snapshot: Any) -> None:
    assert _graph(defs()) == snapshot
