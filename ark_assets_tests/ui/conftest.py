"""The UI test's world: an instance built from the bundled samples in a temp DAGSTER_HOME,
``dagster-webserver`` serving it on 127.0.0.1, and Debian's Chromium driven by Selenium.

The webserver runs without the daemon on purpose: no sensor or automation condition launches
runs behind the test's back, so what the UI shows is exactly what the fixture materialized.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from ark_assets.defs.training.resources import BaseModel
from ark_assets.testing.resources import rooted_resources
from ark_assets_tests.conftest import INGEST_SELECTION, SAMPLES, Platform

# The evaluation tests' scripted student: the report's numbers are not the point here.
from ark_assets_tests.defs.evaluation.test_evaluation_assets import ScriptedPolicyResource

NO_BROWSER = (
    "the UI test needs Debian's chromium and chromium-driver and Selenium (the ui extra): "
    "`make test-ui` installs them"
)
# The code location imports torch, transformers and Chroma: a minute on two busy cores.
SERVER_READY_S = 300
LOCATION = "ark_assets.definitions"  # workspace.yaml's module

COMPLIANCE = dg.AssetSelection.assets("deidentified_dialogues", "phi_findings")
KB = dg.AssetSelection.assets("kb_sources", "kb_quarantined_records", "kb_index")
REPORT = dg.AssetSelection.assets("heldout_eval_items", "eval_predictions", "eval_report")
# A handful of held-out items keeps the report's agent loop to seconds.
REPORT_CONFIG = {"ops": {"eval_predictions": {"config": {"items_per_set": 3}}}}


@dataclass(frozen=True)
class Home:
    """The temp DAGSTER_HOME and ARK_DATA_DIR the fixture and the webserver share."""

    dagster: Path
    data: Path


@dataclass(frozen=True)
class Materialized:
    """What the fixture materialized, as the UI must show it."""

    groups: tuple[str, ...]  # every asset group of the code location
    assets: dict[str, tuple[str, ...]]  # group -> its materialized assets
    runs: dict[str, str]  # asset -> run id of its latest materialization
    checks: dict[str, dict[str, bool]]  # asset -> check name -> passed
    report: dict[str, Any]  # eval_report's metadata


def _build(home: Home, tiny_model: Path) -> Materialized:
    """One sample file through ingest, tagging and de-identification; the sample KB indexed;
    the tiny student as base model; and the offline evaluation report on the held-out split."""
    from ark_assets.definitions import defs

    definitions = defs()
    resources = rooted_resources(home.data)
    resources["base_model"] = BaseModel(model=str(tiny_model), models_dir=str(home.data / "models"))
    resources["policy"] = ScriptedPolicyResource()
    kb_inbox = Path(resources["kb_inbox"].path)
    kb_inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "kb_qa_sample.jsonl", kb_inbox)
    checks: dict[str, dict[str, bool]] = {}
    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        platform = Platform(home.data, instance, resources, definitions)
        platform.drop(SAMPLES / "dialogues_zh_sample.jsonl")
        (batch,) = platform.sense()
        steps: list[tuple[dg.AssetSelection, str | None, dict[str, Any]]] = [
            (INGEST_SELECTION, batch, {}),
            (dg.AssetSelection.assets("tagged_pkl"), None, {}),
            (COMPLIANCE, batch, {}),
            (KB, None, {}),
            (dg.AssetSelection.assets("base_model"), None, {}),
            (REPORT, None, REPORT_CONFIG),
        ]
        for selection, partition, run_config in steps:
            result = platform.materialize(selection, partition, run_config=run_config)
            assert result.success, selection
            for evaluation in result.get_asset_check_evaluations():
                asset = evaluation.asset_key.to_user_string()
                checks.setdefault(asset, {})[evaluation.check_name] = evaluation.passed
        graph = definitions.resolve_asset_graph()
        events = {
            node.key.to_user_string(): instance.get_latest_materialization_event(node.key)
            for node in graph.asset_nodes
        }
    runs = {asset: event.run_id for asset, event in events.items() if event is not None}
    assets: dict[str, tuple[str, ...]] = {}
    for node in sorted(graph.asset_nodes, key=lambda n: n.key.to_user_string()):
        if node.key.to_user_string() in runs:
            assets[node.group_name] = (*assets.get(node.group_name, ()), node.key.to_user_string())
    report = events["eval_report"]
    assert report is not None and report.asset_materialization is not None
    return Materialized(
        groups=tuple(sorted({node.group_name for node in graph.asset_nodes})),
        assets=assets,
        runs=runs,
        checks=checks,
        report={k: v.value for k, v in report.asset_materialization.metadata.items()},
    )


@pytest.fixture(scope="package")
def home(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Home:
    found = Home(tmp_path_factory.mktemp("dagster_home"), tmp_path_factory.mktemp("data"))
    shutil.copy(pytestconfig.rootpath / "dagster.yaml", found.dagster / "dagster.yaml")
    return found


@pytest.fixture(scope="package")
def materialized(home: Home, tiny_model: Path) -> Materialized:
    return _build(home, tiny_model)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
# The UI's first page offers a newsletter dialog over everything until this is called.
_NUX_SEEN = "mutation { setNuxSeen }"


def _graphql(url: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def _location_status(url: str) -> tuple[str, str]:
    """(load status, error) of the code location, through the webserver's GraphQL API."""
    workspace = _graphql(url, _LOCATIONS)["workspaceOrError"]
    for entry in workspace.get("locationEntries", []):
        if entry["name"] == LOCATION:
            error = entry["locationOrLoadError"] or {}
            return entry["loadStatus"], error.get("message", "")
    return "ABSENT", ""


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="package")
def server(home: Home, pytestconfig: pytest.Config) -> Iterator[Server]:
    """dagster-webserver on a free 127.0.0.1 port, started early: its code location loads (a
    minute) while the fixture materializes."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARK_", "OPENAI_"))}
    env.update(DAGSTER_HOME=str(home.dagster), ARK_DATA_DIR=str(home.data))
    log = home.dagster / "webserver.log"
    repo = pytestconfig.rootpath
    executable, workspace = (
        Path(sys.executable).parent / "dagster-webserver",
        repo / "workspace.yaml",
    )
    command = [str(executable), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=repo, env=env, stdout=out, stderr=out)
    try:
        yield Server(f"http://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def webserver(server: Server, materialized: Materialized) -> str:
    """The URL of the webserver once it serves the code location and the fixture's instance."""
    deadline = time.monotonic() + SERVER_READY_S
    status, error = "NOT_STARTED", ""
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            status, error = _location_status(server.url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = "NOT_STARTED"
        if status == "LOADED" or error:
            break
        time.sleep(1)
    if status != "LOADED" or error:
        tail = server.log.read_text(errors="replace")[-3000:]
        pytest.fail(f"the webserver did not load {LOCATION} ({status}) {error}\n{tail}")
    _graphql(server.url, _NUX_SEEN)
    return server.url


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (Selenium never downloads a driver when
    it is given one)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(f"no chromium or chromedriver on PATH: {NO_BROWSER}")
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"no selenium: {NO_BROWSER}")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # --no-sandbox: Chromium's sandbox refuses to start as root (CI runs as root).
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1440,900",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield session
    finally:
        session.quit()
