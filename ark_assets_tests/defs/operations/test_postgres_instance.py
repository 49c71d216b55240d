"""The Postgres instance for real: a PostgreSQL server started on 127.0.0.1 for this module, the
sample instance (``ark_assets/deploy/dagster.postgres.yaml``) loaded from a ``DAGSTER_HOME`` with
its credentials in the environment, and the inbox sensor and an ingest run against it.

The server comes from Debian's postgresql (``make postgresql`` installs it when no ``initdb`` is
found); where none can be found the tests are skipped, saying so. initdb refuses to run as root,
so as root the server runs as the ``postgres`` user, in a temporary directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import yaml
from psycopg2 import sql

from ark_assets.defs.ingest.sensors import dialogue_inbox_sensor
from ark_assets.testing.resources import rooted_resources
from ark_assets_tests.conftest import INGEST_SELECTION, SAMPLES, Platform

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "ark_assets" / "deploy" / "dagster.postgres.yaml"
LOCAL = REPO / "dagster.yaml"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "ark"


def _postgres_binaries() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        (p for p in DEBIAN_BINARIES.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: this user, or ``postgres`` when this is root (initdb refuses)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class PostgresServer:
    """A running server: superuser ``ark`` with a password made for this run."""

    port: int
    password: str
    host: str = "127.0.0.1"

    def connect(self, database: str = "postgres") -> Any:
        connection = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
        )
        connection.autocommit = True
        return connection

    def query(self, database: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def new_database(self) -> str:
        name = f"dagster_{secrets.token_hex(4)}"
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        return name


class _Runner:
    """Runs the server's commands as its account, in its directory."""

    def __init__(self, binaries: Path, root: Path, account: pwd.struct_passwd | None) -> None:
        self.binaries, self.root, self.account = binaries, root, account

    def __call__(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        as_account: dict[str, Any] = {}
        if self.account:
            as_account = {
                "user": self.account.pw_uid,
                "group": self.account.pw_gid,
                "extra_groups": [],
            }
        return subprocess.run(
            [str(self.binaries / tool), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            **as_account,
        )


def _started(run: _Runner, data: Path, log: Path) -> int:
    """Start the server on a free loopback port (another process may take the port between
    the probe and the start: then try another)."""
    for _ in range(3):
        port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {run.root} -c fsync=off"
        done = run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options,
                   "start")  # fmt: skip
        if done.returncode == 0:
            return port
    log_text = log.read_text() if log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {done.stdout}{done.stderr}\n{log_text}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL not found (no initdb on PATH or under /usr/lib/postgresql): "
            "`make postgresql` installs Debian's package"
        )
    account = _server_account()
    # The server's account must reach its directory: under /tmp, not a TMPDIR of this user's.
    root = Path(tempfile.mkdtemp(prefix="ark-postgres-", dir="/tmp" if account else None))
    run = _Runner(binaries, root, account)
    password = secrets.token_hex(16)
    password_file = root / "password"
    password_file.write_text(password)
    if account:
        for path in (root, password_file):
            os.chown(path, account.pw_uid, account.pw_gid)
    data, log = root / "data", root / "server.log"
    try:
        done = run("initdb", "-D", str(data), "-U", SUPERUSER, f"--pwfile={password_file}",
                   "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        password_file.unlink()
        port = _started(run, data, log)
        try:
            yield PostgresServer(port=port, password=password)
        finally:
            stopped = run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class PostgresHome:
    """A DAGSTER_HOME holding the sample instance, pointed at a fresh database."""

    home: Path
    database: str


@pytest.fixture
def postgres_home(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> PostgresHome:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(SAMPLE, home / "dagster.yaml")
    database = postgres.new_database()
    credentials = {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": SUPERUSER,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": database,
        "DAGSTER_HOME": str(home),
    }
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    return PostgresHome(home, database)


def test_the_sensor_and_an_ingest_run_keep_their_state_in_postgres(
    postgres: PostgresServer, postgres_home: PostgresHome, tmp_path: Path
) -> None:
    from ark_assets.definitions import defs

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        platform = Platform(tmp_path, instance, rooted_resources(tmp_path), defs())
        platform.drop(SAMPLES / "dialogues_en_sample.jsonl")
        (key,) = platform.sense()
        result = platform.materialize(INGEST_SELECTION, key)
        assert result.success

    database = postgres_home.database
    partitions = postgres.query(
        database,
        "select partition from dynamic_partitions where partitions_def_name = %s",
        "dialogue_batches",
    )
    assert partitions == [(key,)]
    materialized = postgres.query(
        database,
        "select distinct asset_key from event_logs "
        "where dagster_event_type = 'ASSET_MATERIALIZATION' and partition = %s",
        key,
    )
    assert {dg.AssetKey.from_db_string(row[0]) for row in materialized} == {
        dg.AssetKey(name)
        for name in ("raw_dialogues", "quarantined_records", "tagged_dialogues", "tag_collisions")
    }
    (status,) = postgres.query(database, "select status from runs where run_id = %s", result.run_id)
    assert status == ("SUCCESS",)

    # Another process (a fresh instance from the same DAGSTER_HOME) sees the same state: the
    # partition, the materialization, and the sensor skips the file it already registered.
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("dialogue_batches") == [key]
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_dialogues"))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.partition == key
        context = dg.build_sensor_context(
            instance=instance, resources={"inbox": platform.resources["inbox"]}
        )
        assert isinstance(dialogue_inbox_sensor(context), dg.SkipReason)


def test_the_sample_is_the_local_instance_with_postgres_storage_from_the_environment() -> None:
    sample = yaml.safe_load(SAMPLE.read_text())
    storage = sample.pop("storage")
    assert sample == yaml.safe_load(LOCAL.read_text())
    settings = storage["postgres"]["postgres_db"]
    assert settings.pop("scheme") == "postgresql+psycopg2"
    assert set(settings) == {"hostname", "port", "username", "password", "db_name"}
    assert all(set(value) == {"env"} for value in settings.values()), settings
