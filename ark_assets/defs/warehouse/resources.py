"""Warehouse resources: ``dbt``, the dbt CLI on the project in ``dbt_like_sql/``.

The warehouse file, its lock and the landing and artifact folders the models read are not set
here: the dbt step takes them from the ``warehouse``, ``inbox`` and ``artifacts`` resources (the
ones the IO manager and the other layers use) and passes them to dbt as ``--vars``, so a build
always reads and writes the platform's own warehouse. ``ARK_DBT_PROJECT_DIR`` points at another
copy of the project.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from ark_assets.lib.warehouse.project import dbt_executable, project_dir


def build_warehouse_resources() -> dict[str, Any]:
    root = project_dir()
    return {
        "dbt": DbtCliResource(
            project_dir=str(root), profiles_dir=str(root), dbt_executable=dbt_executable()
        )
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_warehouse_resources())
