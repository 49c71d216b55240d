"""The whole code location loads, and its lineage is pinned by a reviewed snapshot.

For a compliance product every change to an asset's dependencies, group, tags, code version,
description, automation, checks, jobs or sensors must show up as a diff in review: update the
snapshot with `pytest ark_assets_tests/test_definitions.py --snapshot-update` and commit it with
the change.

The snapshot also pins, per asset, ``source_digest``: a digest of the asset function's own source
and of every ``ark_assets.lib`` module it calls (directly or through the lib modules those
import). A logic change therefore shows up as a changed digest; when its ``code_version`` did not
change in the same diff, the reviewer asks for the bump (docs/architecture.md, "Code versions").
"""

import ast
import hashlib
import importlib
import inspect
import types
from collections.abc import Iterator
from functools import cache
from typing import Any

import dagster as dg

from ark_assets.definitions import defs

LIB = "ark_assets.lib"


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _called_modules(fn: Any) -> set[str]:
    """The lib modules whose names the function's body (nested functions included) uses; a
    module named by a string constant (a script run through Pipes) counts too."""
    names = {name for code in _code_objects(fn.__code__) for name in code.co_names}
    found = set()
    for name in names:
        value = fn.__globals__.get(name)
        if isinstance(value, str) and value.startswith(LIB):
            found.add(value)
            continue
        module = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(module, str) and module.startswith(LIB):
            found.add(module)
    return found


@cache
def _lib_imports(module: str) -> frozenset[str]:
    """The lib modules ``module`` imports (module-level and local imports)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(LIB):
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                try:
                    importlib.import_module(candidate)
                except ImportError:
                    continue
                found.add(candidate)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(LIB)}
    return frozenset(found)


def _closure(modules: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _lib_imports(module) - seen
    return seen


def _with_local_helpers(fn: Any) -> list[Any]:
    """The function and the helpers of its own module it calls, transitively."""
    found = [fn]
    for current in found:
        for code in _code_objects(current.__code__):
            for name in code.co_names:
                value = current.__globals__.get(name)
                local = inspect.isfunction(value) and value.__module__ == fn.__module__
                if local and value not in found:
                    found.append(value)
    return found


def source_digest(fn: Any) -> str:
    """sha256 (first 16 hex digits) of the function's source, of the helpers of its module it
    calls, and of the lib modules they call."""
    functions = _with_local_helpers(fn)
    digest = hashlib.sha256()
    for function in functions:
        digest.update(inspect.getsource(function).encode())
    called = set().union(*(_called_modules(f) for f in functions))
    for module in sorted(_closure(called)):
        digest.update(module.encode() + b"\0")
        digest.update(inspect.getsource(importlib.import_module(module)).encode())
    return digest.hexdigest()[:16]


def _spec(spec: dg.AssetSpec, pool: str | None, digest: str | None) -> dict[str, Any]:
    schema = spec.metadata.get("dagster/column_schema")
    condition = spec.automation_condition
    return {
        "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
        "group": spec.group_name,
        "code_version": _code_version(spec.code_version),
        "kinds": sorted(spec.kinds),
        "tags": {k: v for k, v in sorted(spec.tags.items()) if not k.startswith("dagster/kind")},
        "partitions": getattr(spec.partitions_def, "name", None)
        or (type(spec.partitions_def).__name__ if spec.partitions_def else None),
        "partition_expr": spec.metadata.get("partition_expr"),
        "columns": [c.name for c in schema.columns] if schema else None,
        "automation": condition.get_label() or str(condition) if condition else None,
        "description": spec.description,
        "source_digest": digest,
        "pool": pool,
    }


def _code_version(version: str | None) -> str | None:
    """Ours as they are; dbt's (40-hex file checksums) labelled and cut to 12 digits, which show
    a change as well and do not read to detect-secrets as a key."""
    if version is None or len(version) <= 16:
        return version
    return f"dbt checksum {version[:12]}"


def _graph(definitions: dg.Definitions) -> dict[str, Any]:
    repo = definitions.get_repository_def()
    pools = {
        key: assets_def.op.pool
        for assets_def in repo.asset_graph.assets_defs
        if assets_def.is_executable
        for key in assets_def.keys
    }
    digests = {
        key: source_digest(assets_def.op.compute_fn.decorated_fn)
        for assets_def in repo.asset_graph.assets_defs
        if assets_def.is_executable
        for key in assets_def.keys
    }
    specs = {
        spec.key.to_user_string(): _spec(spec, pools.get(spec.key), digests.get(spec.key))
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
    ingest = loaded.resolve_job_def("ingest_job")
    selected = {k.to_user_string() for k in ingest.asset_layer.executable_asset_keys}
    assert {"raw_dialogues", "quarantined_records", "tagged_dialogues"} <= selected
    assert "sft_adapter" not in selected  # training never runs with the data assets
    training = loaded.resolve_job_def("training_job")
    assert training.executor_def is dg.in_process_executor


def test_every_asset_has_code_version_description_and_group() -> None:
    for spec in defs().resolve_all_asset_specs():
        assert spec.code_version, spec.key
        assert spec.description, spec.key
        assert spec.group_name and spec.group_name != "default", spec.key


def test_lineage_snapshot(snapshot: Any) -> None:
    assert _graph(defs()) == snapshot
