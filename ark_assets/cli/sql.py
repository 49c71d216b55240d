"""``ark sql "select …"``: a read-only query on the warehouse, for looking at tables while runs go
on. A ``duckdb`` shell left open on the file would make every pipeline write wait for it (and
fail after ``ARK_WAREHOUSE_LOCK_TIMEOUT_S``); ``ark sql`` holds the warehouse only for the query,
at most ``--timeout`` seconds, on a connection that cannot write.

Schemas: ``ark`` (the Python assets' tables), ``staging`` and ``marts`` (the dbt models,
docs/warehouse.md). Prints the first ``--max-rows`` rows as a table, CSV or JSON lines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import duckdb
import polars as pl

from ark_assets.defs.resources import data_dir
from ark_assets.lib.warehouse import LockWait, WarehouseLocked
from ark_assets.lib.warehouse.query import QueryResult, QueryTimeout, run_query


def warehouse_database() -> Path:
    """The warehouse file the platform uses: ``ARK_WAREHOUSE``, else under ``ARK_DATA_DIR``."""
    return Path(os.environ.get("ARK_WAREHOUSE", data_dir() / "warehouse.duckdb")).resolve()


def sql_command(args: argparse.Namespace) -> None:
    wait = LockWait(timeout_s=args.wait, log=lambda message: print(message, file=sys.stderr))
    try:
        result = run_query(
            warehouse_database(),
            args.query,
            max_rows=args.max_rows,
            timeout_s=args.timeout,
            wait=wait,
        )
    except (duckdb.Error, QueryTimeout, WarehouseLocked, FileNotFoundError) as error:
        raise SystemExit(f"ark sql: {error}") from error
    write(result, args.format)
    if result.truncated:
        print(f"(first {args.max_rows} rows shown; --max-rows for more)", file=sys.stderr)


def write(result: QueryResult, form: str) -> None:
    if not result.columns:
        print("ok")
    elif form == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif form == "jsonl":
        names = _distinct(result.columns)
        for row in result.rows:
            print(json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False, default=str))
    else:
        print(_table(result))


def _distinct(columns: list[str]) -> list[str]:
    """Column names made distinct (``select 1 as a, 2 as a``): a, a_1."""
    names: list[str] = []
    for name in columns:
        names.append(name if name not in names else f"{name}_{len(names)}")
    return names


def _table(result: QueryResult) -> pl.DataFrame:
    frame = pl.DataFrame(result.rows, schema=_distinct(result.columns), orient="row", strict=False)
    pl.Config.set_tbl_rows(-1)
    pl.Config.set_tbl_cols(-1)
    pl.Config.set_fmt_str_lengths(80)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    return frame
