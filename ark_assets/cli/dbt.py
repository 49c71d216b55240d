"""``ark dbt ARGS…``: dbt on the warehouse project (``dbt_like_sql/``) with the platform's paths
and its lock — ``ark dbt build -s dialogue_stats``, ``ark dbt docs generate`` (what ``make
warehouse-docs`` runs), ``ark dbt docs serve``.

dbt gets the warehouse file and data folder the platform uses (``ARK_WAREHOUSE``,
``ARK_DATA_DIR``, made absolute), and every command that opens the warehouse runs holding its
lock, as the ``warehouse_models`` step does, so it never collides with a run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import nullcontext

from ark_assets.cli.sql import warehouse_database
from ark_assets.defs.resources import data_dir
from ark_assets.lib.warehouse import LockWait, WarehouseLocked, held
from ark_assets.lib.warehouse.project import dbt_executable, needs_database, project_dir


def dbt_command(args: argparse.Namespace) -> None:
    root = project_dir()
    database = warehouse_database()
    env = {
        **os.environ,
        "ARK_DATA_DIR": str(data_dir()),
        "ARK_WAREHOUSE": str(database),
        "DBT_PROJECT_DIR": str(root),
        "DBT_PROFILES_DIR": str(root),
    }
    wait = LockWait(log=lambda message: print(message, file=sys.stderr))
    lock = held(database, wait) if needs_database(args.dbt_args) else nullcontext()
    try:
        with lock:
            done = subprocess.run([dbt_executable(), *args.dbt_args], cwd=root, env=env)
    except WarehouseLocked as error:
        raise SystemExit(f"ark dbt: {error}") from error
    raise SystemExit(done.returncode)
