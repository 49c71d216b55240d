"""Resources and the warehouse IO manager, configured from the environment.

Every setting has a working local default under ``ARK_DATA_DIR`` (default ``data/``); when the
environment variable is set it is wired as a ``dg.EnvVar`` so the UI shows where a value came
from. Nothing secret has a default.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_polars import DuckDBPolarsIOManager
from dagster_duckdb_polars.duckdb_polars_type_handler import DuckDBPolarsTypeHandler
from pydantic import Field

from ark_assets.lib import warehouse
from ark_assets.lib.compliance.tombstones import Identifiers, read_requests
from ark_assets.lib.ingest.batches import INGEST_MEMORY_LIMIT
from ark_assets.lib.ingest.dialogues import Limits

WAREHOUSE_SCHEMA = "ark"


def data_dir() -> Path:
    return Path(os.environ.get("ARK_DATA_DIR", "data")).resolve()


def env_setting(env_name: str, default: Any) -> Any:
    """``dg.EnvVar`` when the variable is set (typed like ``default``), else ``default``."""
    if env_name not in os.environ:
        return default
    return dg.EnvVar.int(env_name) if isinstance(default, int) else dg.EnvVar(env_name)


class _LockedDuckDbClient(DuckDbClient):
    """DuckDB client whose connections are exclusive and transactional (lib.warehouse)."""

    @staticmethod
    @contextmanager
    def connect(context, _) -> Iterator[duckdb.DuckDBPyConnection]:
        config = context.resource_config
        wait = lock_wait(config.get("lock_timeout_s", warehouse.DEFAULT_LOCK_TIMEOUT_S))
        with warehouse.connect(config["database"], wait) as conn:
            yield conn

    @staticmethod
    def delete_table_slice(context, table_slice: TableSlice, connection) -> None:
        # The stock client catches the missing-table error, which would abort our transaction.
        if warehouse.table_exists(connection, table_slice.schema, table_slice.table):
            DuckDbClient.delete_table_slice(context, table_slice, connection)


class _TypedPolarsHandler(DuckDBPolarsTypeHandler):
    """Stores empty frames too, so a table with no rows yet (no quarantine) still exists."""

    def handle_output(self, context, table_slice: TableSlice, obj: pl.DataFrame, connection):
        if obj.is_empty():
            empty = obj.to_arrow()  # noqa: F841  (read by name in the SQL below)
            connection.execute(
                f"create table if not exists {table_slice.schema}.{table_slice.table} "
                "as select * from empty"
            )
            context.add_output_metadata({"row_count": 0})
            return
        super().handle_output(context, table_slice, obj, connection)


def lock_wait(timeout_s: float) -> warehouse.LockWait:
    """How long a warehouse connection waits for the lock; the reason goes to the run's log."""
    return warehouse.LockWait(timeout_s=timeout_s, log=dg.get_dagster_logger().warning)


class WarehouseIOManager(DuckDBPolarsIOManager):
    """Polars frames in the DuckDB warehouse, one writer at a time, each write atomic."""

    lock_timeout_s: int = Field(
        default=warehouse.DEFAULT_LOCK_TIMEOUT_S,
        description="Seconds a write waits for the warehouse (another step, an open DuckDB "
        "session) before it fails (ARK_WAREHOUSE_LOCK_TIMEOUT_S).",
    )

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_TypedPolarsHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_LockedDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="WarehouseIOManager",
        )


class Warehouse(dg.ConfigurableResource):
    """Direct SQL access to the warehouse, for assets that query across partitions."""

    database: str
    schema_name: str = WAREHOUSE_SCHEMA
    lock_timeout_s: int = Field(
        default=warehouse.DEFAULT_LOCK_TIMEOUT_S,
        description="Seconds a connection waits for the warehouse (another step, an open DuckDB "
        "session) before it fails (ARK_WAREHOUSE_LOCK_TIMEOUT_S).",
    )

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.database, lock_wait(self.lock_timeout_s)) as conn:
            yield conn

    @contextmanager
    def held(self) -> Iterator[None]:
        """The warehouse locked for a subprocess that opens it itself (a dbt build)."""
        with warehouse.held(self.database, lock_wait(self.lock_timeout_s)):
            yield

    def tables(self) -> set[str]:
        """The tables of the platform's schema (``ark``) that exist now."""
        with self.connect() as conn:
            return warehouse.existing_tables(conn, self.schema_name)

    def relations(self) -> set[tuple[str, str]]:
        """Every ``(schema, table or view)`` of the warehouse (dbt's models included)."""
        with self.connect() as conn:
            return warehouse.relations(conn)

    def read(self, table: str, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame | None:
        """Run ``sql`` (which may name ``{table}``) if the table exists; None otherwise."""
        with self.connect() as conn:
            if not warehouse.table_exists(conn, self.schema_name, table):
                return None
            qualified = f"{self.schema_name}.{table}"
            return conn.execute(sql.format(table=qualified), list(params)).pl()

    def forgotten(self) -> Identifiers:
        """Everything under a deletion request (``ark forget``): rows to drop on rebuild."""
        with self.connect() as conn:
            return Identifiers.of(read_requests(conn, self.schema_name))


class DialogueInbox(dg.ConfigurableResource):
    """The drop folder for dialogue files and the landing area that keeps what arrived."""

    path: str
    landing_path: str


class IngestRules(dg.ConfigurableResource):
    """Bounds a dialogue must respect to be accepted; shared by the ingest asset and its checks."""

    max_turn_chars: int = Limits.max_turn_chars
    max_turns: int = Limits.max_turns
    duckdb_memory_limit: str = Field(
        default=INGEST_MEMORY_LIMIT,
        description="DuckDB memory of the ingest and tagging steps; a long file's rows beyond "
        "it go to disk, so the steps' memory does not grow with the file "
        "(ARK_INGEST_DUCKDB_MEMORY).",
    )

    def limits(self) -> Limits:
        return Limits(max_turn_chars=self.max_turn_chars, max_turns=self.max_turns)


class ArtifactStore(dg.ConfigurableResource):
    """Root folder for file artifacts (exports, indexes, checkpoints, reports)."""

    root: str

    def path(self, *parts: str) -> Path:
        return Path(self.root, *parts)


def build_resources() -> dict[str, Any]:
    """The shared resources for the environment (``ARK_DATA_DIR`` and the variables below)."""
    base = data_dir()
    setting = env_setting
    database = setting("ARK_WAREHOUSE", str(base / "warehouse.duckdb"))
    lock_timeout_s = setting("ARK_WAREHOUSE_LOCK_TIMEOUT_S", warehouse.DEFAULT_LOCK_TIMEOUT_S)
    return {
        "io_manager": WarehouseIOManager(
            database=database, schema=WAREHOUSE_SCHEMA, lock_timeout_s=lock_timeout_s
        ),
        "warehouse": Warehouse(database=database, lock_timeout_s=lock_timeout_s),
        "inbox": DialogueInbox(
            path=setting("ARK_INBOX_DIR", str(base / "inbox")),
            landing_path=str(base / "landing"),
        ),
        "ingest_rules": IngestRules(
            max_turn_chars=setting("ARK_MAX_TURN_CHARS", Limits.max_turn_chars),
            max_turns=setting("ARK_MAX_TURNS", Limits.max_turns),
            duckdb_memory_limit=setting("ARK_INGEST_DUCKDB_MEMORY", INGEST_MEMORY_LIMIT),
        ),
        "artifacts": ArtifactStore(root=str(base / "artifacts")),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
