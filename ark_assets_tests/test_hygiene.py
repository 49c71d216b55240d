"""Secret and access hygiene (docs/security.md): no secret in the repository beyond the audited
baseline, none inlined in resource config, none in what a run logs or stores, and a UI that
listens on loopback only. ``make secrets`` runs this module."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings, transient_settings

from ark_assets.defs.synthesis.assets import _teacher_metadata
from ark_assets.defs.synthesis.resources import build_teacher
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets.lib.ingest.formats import ingest_file
from ark_assets.lib.knowledge.records import KbLimits, SourceFile, build_kb
from ark_assets.testing.scripted_endpoint import ScriptedEndpoint
from ark_assets_tests.conftest import Platform
from ark_assets_tests.defs.synthesis.conftest import build

REPO = Path(__file__).resolve().parents[1]
BASELINE = ".secrets.baseline"
# Unmistakable in any output, and not itself a detect-secrets finding.
SENTINEL = "sentinel-7c1e-must-never-be-shown"
# A field named like a credential: api_key, hf_token, secret, db_password (not max_tokens).
SECRET_FIELD = re.compile(r"(?:^|_)(?:key|token|secret|password)(?:$|_)", re.IGNORECASE)
SECRET_ENV = ("OPENAI_API_KEY", "ARK_EMBEDDER_API_KEY", "ARK_POLICY_API_KEY")
LOOPBACK = "127.0.0.1"
# Workspace entries `dagster dev` starts a code server for on localhost (no host setting).
_SERVED_BY_DAGSTER_DEV = ("python_module", "python_file", "python_package")
# Stands for record text (a patient's words) where a file was expected to hold a name.
RECORD_TEXT = "患者张三说他头疼三天"


def repository_files(root: Path) -> list[str]:
    """Tracked files and untracked ones git does not ignore (so data/ and .venv are skipped)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in set(listed.split("\0")) if name and (root / name).is_file())


def unaudited_secrets(root: Path) -> list[str]:
    """Findings in ``root``'s files that its baseline does not mark as false positives.

    The scan runs with the baseline's own plugins and filters, and never writes the baseline
    (``detect-secrets-hook`` rewrites it when line numbers move, which a test run must not do).
    A finding matches a baseline entry by file, secret hash and type, not by line.
    """
    saved = json.loads((root / BASELINE).read_text())
    config = {key: saved[key] for key in ("plugins_used", "filters_used")}
    with transient_settings(config):
        found = SecretsCollection(root=str(root))
        for name in repository_files(root):
            found.scan_file(name)
    false_positives = {
        (name, secret.secret_hash, secret.type)
        for name, secret in SecretsCollection.load_from_baseline(saved)
        if secret.is_secret is False
    }
    return sorted(
        f"{name}:{secret.line_number}: {secret.type}"
        for name, secret in found
        if (name, secret.secret_hash, secret.type) not in false_positives
    )


def test_the_repository_holds_no_secret_beyond_the_audited_baseline() -> None:
    found = unaudited_secrets(REPO)
    assert not found, (
        "detect-secrets findings: remove the secret (configure it through the environment, "
        f"docs/security.md), or audit a false positive into {BASELINE}: {found}"
    )


def test_the_baseline_records_no_machine_path() -> None:
    saved = json.loads((REPO / BASELINE).read_text())
    assert all(not Path(name).is_absolute() for name in saved["results"])


def test_the_scan_flags_a_planted_secret(tmp_path: Path) -> None:
    # Made at run time so that this file is not itself a finding.
    digest = hashlib.sha256(b"planted").hexdigest()
    aws_key = "AKIA" + digest[:16].upper()
    api_key = digest[16:48]
    planted = tmp_path / "settings.py"
    keyword = "_".join(("api", "key"))
    planted.write_text(f'AWS_ACCESS_KEY_ID = "{aws_key}"\n{keyword} = "{api_key}"\n')
    with default_settings():
        found = SecretsCollection(root=str(tmp_path))
        found.scan_file("settings.py")
    assert {"AWS Access Key", "Secret Keyword"} <= {secret.type for _, secret in found}

    # The same check as `make secrets`, on a repository where the file is newly added.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / BASELINE).write_text((REPO / BASELINE).read_text())
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    assert any(f.startswith("settings.py:1: AWS") for f in unaudited_secrets(tmp_path))


def _secret_fields(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{name}.{field}": getattr(resource, field)
        for name, resource in resources.items()
        if isinstance(resource, dg.ConfigurableResource)
        for field in type(resource).model_fields
        if SECRET_FIELD.search(field)
    }


@pytest.mark.parametrize("env_set", [False, True], ids=["env-unset", "env-set"])
def test_no_resource_config_carries_a_literal_secret(
    monkeypatch: pytest.MonkeyPatch, env_set: bool
) -> None:
    from ark_assets.definitions import defs

    for name in SECRET_ENV:
        if env_set:
            monkeypatch.setenv(name, SENTINEL)
        else:
            monkeypatch.delenv(name, raising=False)
    fields = _secret_fields(dict(defs().resources or {}))
    assert set(fields) >= {"teacher.api_key", "embedder.api_key", "policy.api_key"}
    for field, value in fields.items():
        # A set variable is wired as dg.EnvVar (resolved at run time, shown by name in the UI).
        assert isinstance(value, dg.EnvVar) if env_set else value in ("", None), field


def test_the_teacher_identity_and_metadata_never_show_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARK_TEACHER_BACKEND", "openai")
    monkeypatch.setenv("ARK_TEACHER_MODEL", "scripted")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never called
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    with dg.build_resources({"teacher": build_teacher()}) as built:
        resource = built.teacher
        assert resource.api_key == SENTINEL  # the key is resolved and used, only never shown
        with resource.open() as teacher:
            shown = [
                repr(resource),
                str(resource),
                repr(teacher.identity),
                repr(_teacher_metadata(teacher)),
            ]
    assert not [text for text in shown if SENTINEL in text]


def test_a_run_with_a_keyed_teacher_stores_and_logs_no_key(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = build(platform, "zh", dialogues=2, kb_pairs=50)
    with ScriptedEndpoint() as endpoint:
        monkeypatch.setenv("ARK_DATA_DIR", str(platform.root))
        monkeypatch.setenv("ARK_TEACHER_BACKEND", "openai")
        monkeypatch.setenv("ARK_TEACHER_MODEL", "scripted")
        monkeypatch.setenv("OPENAI_BASE_URL", endpoint.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
        result = run.run(teacher=build_teacher())
        assert result.success and endpoint.requests
    instance = platform.instance
    stored = [
        dg.serialize_value(instance.get_run_by_id(result.run_id)),
        *(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id)),
    ]
    assert not [text for text in stored if SENTINEL in text]
    cache = platform.root / "cache" / "teacher.sqlite"
    assert cache.is_file() and SENTINEL.encode() not in cache.read_bytes()


def _jsonl(record: object) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


_TURN = {"patient": "a", "doctor": "b"}
_LONG_TABLE = "dialogue_id,turn_index,role,text\n"
# File name → (layer, content): record text where a key, header, code or value is expected.
_MISPLACED_TEXT = {
    "language.jsonl": ("ingest", _jsonl({"turns": [_TURN], "language": RECORD_TEXT})),
    "keyed.jsonl": ("ingest", _jsonl({RECORD_TEXT: [_TURN]})),
    "turn_keys.jsonl": ("ingest", _jsonl({"turns": [{RECORD_TEXT: "a", "doctor": "b"}]})),
    "headerless.csv": ("kb", f"{RECORD_TEXT},多喝水\n发烧,多喝水\n"),
    "qa_keys.jsonl": ("kb", _jsonl({RECORD_TEXT: "多喝水"})),
    "roles.csv": ("ingest", f"{_LONG_TABLE}d1,0,{RECORD_TEXT},a\nd1,1,doctor,b\n"),
    "broken.csv": ("ingest", f'{_LONG_TABLE}"{RECORD_TEXT},0,patient\nd2,1,a,b,c,d\n'),
}


@pytest.mark.parametrize("name", list(_MISPLACED_TEXT))
def test_quarantine_messages_quote_no_record_text(name: str) -> None:
    """The ingest and KB assets log the first rejections' messages; the run logs are not
    PHI-tagged, so record text stays in the quarantine table's excerpt only."""
    layer, content = _MISPLACED_TEXT[name]
    data = content.encode()
    if layer == "ingest":
        rejections = ingest_file(name, data, Limits()).rejections
    else:
        kb = build_kb([SourceFile(name, data, "0" * 64)], KbLimits())
        rejections = [rejection for _, rejection in kb.rejections]
    assert rejections
    assert not [r.message for r in rejections if RECORD_TEXT in r.message]


def _recipe(target: str) -> list[str]:
    """The command lines of a Makefile target."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_the_ui_listens_on_loopback_only() -> None:
    (command,) = [line for line in _recipe("ui") if "dagster dev" in line]
    args = shlex.split(command)
    hosts = [args[i + 1] for i, arg in enumerate(args) if arg in ("-h", "--host")]
    assert hosts == [LOOPBACK], command
    # Code servers: `dagster dev` starts one for each python_module/_file/_package entry, on
    # localhost. A grpc_server entry names a host of its own: none is allowed without review.
    (workspace_file,) = [args[i + 1] for i, arg in enumerate(args) if arg in ("-w", "--workspace")]
    entries = yaml.safe_load((REPO / workspace_file).read_text())["load_from"]
    kinds = [kind for entry in entries for kind in entry]
    assert kinds and set(kinds) <= set(_SERVED_BY_DAGSTER_DEV), kinds
    modules = [e["python_module"]["module_name"] for e in entries if "python_module" in e]
    assert modules == ["ark_assets.definitions"], workspace_file
