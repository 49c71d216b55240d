"""The package's one layout rule, checked: group = ``defs/`` folder = ``lib/`` folder = test folder.

Also the boundaries that keep it honest: ``lib/`` is pure (no Dagster, no ``defs``), nothing in
``lib/`` or ``defs/`` imports the test doubles, the commands or the benchmarks, and asset
functions stay thin (docs/architecture.md).
"""

import ast
from pathlib import Path

import pytest

from ark_assets.definitions import defs

PACKAGE = Path(__file__).resolve().parents[1] / "ark_assets"
TESTS = Path(__file__).resolve().parent
# Modules at the top of lib/: what every layer shares (and lib/warehouse/__init__.py: the
# warehouse group's folder holds the lock and connections every layer uses).
SHARED_LIB = {"artifacts", "gx", "hashing", "language", "tables"}
MAX_ASSET_LINES = 40


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


# defs/ folders that hold sensors, schedules and checks but no asset (so no group).
ASSETLESS = {"operations"}


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _groups_by_folder() -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    repo = defs().get_repository_def()
    for assets_def in repo.asset_graph.assets_defs:
        if not assets_def.is_executable or not assets_def.keys:  # checks-only definitions
            continue
        module = assets_def.op.compute_fn.decorated_fn.__module__
        folder = module.split(".")[2]
        groups.setdefault(folder, set()).update(
            assets_def.specs_by_key[key].group_name for key in assets_def.keys
        )
    return groups


def test_every_asset_lives_in_the_defs_folder_named_after_its_group() -> None:
    groups = _groups_by_folder()
    assert groups, "no executable asset found"
    for folder, names in groups.items():
        assert names == {folder}, f"defs/{folder}/ defines assets of groups {sorted(names)}"


def test_lib_has_a_folder_per_group_and_only_shared_modules_on_top() -> None:
    groups = set(_groups_by_folder())
    folders = {p.name for p in (PACKAGE / "lib").iterdir() if (p / "__init__.py").exists()}
    assert groups <= folders, f"groups without a lib/ folder: {sorted(groups - folders)}"
    assert folders <= groups | ASSETLESS, f"lib/ folders without a group: {folders - groups}"
    top = {p.stem for p in (PACKAGE / "lib").glob("*.py")} - {"__init__"}
    assert top == SHARED_LIB


def test_tests_mirror_the_layer_folders() -> None:
    for side in ("lib", "defs"):
        layers = {p.name for p in (PACKAGE / side).iterdir() if (p / "__init__.py").exists()}
        tests = {p.name for p in (TESTS / side).iterdir() if (p / "__init__.py").exists()}
        assert layers == tests, (side, layers ^ tests)


@pytest.mark.parametrize("folder", ["lib", "defs"])
def test_product_code_never_imports_test_doubles_commands_or_benchmarks(folder: str) -> None:
    forbidden = ("ark_assets.testing", "ark_assets.cli", "ark_assets.bench")
    for path in _modules(folder):
        bad = {m for m in _imports(path) if m.startswith(forbidden)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_lib_is_pure() -> None:
    for path in _modules("lib"):
        bad = {m for m in _imports(path) if m.split(".")[0] == "dagster" or "ark_assets.defs" in m}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_asset_and_sensor_functions_are_thin_and_typed() -> None:
    decorators = {"asset", "multi_asset", "graph_asset", "sensor", "asset_check"}
    seen = 0
    for path in _modules("defs"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = {
                ast.unparse(d.func if isinstance(d, ast.Call) else d).split(".")[-1]
                for d in node.decorator_list
            }
            if not names & decorators:
                continue
            seen += 1
            where = f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"
            assert node.returns is not None, f"{where} has no return type"
            if names & {"asset", "multi_asset", "graph_asset"}:
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert lines <= MAX_ASSET_LINES, f"{where}: {lines} lines; move logic to lib/"
    assert seen >= 20
