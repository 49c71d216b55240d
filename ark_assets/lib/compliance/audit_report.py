"""The compliance audit of an artifact, as data: sources manifest, deletion taint, findings and
the markdown report.

``defs/compliance/audit*.py`` collects the facts from Dagster's instance and the warehouse into one
JSON-serialisable dict (layout below); everything here is pure and works on that dict. An audit
holds identifiers only (asset keys, run ids, hashes, partition keys, file names, conversation
keys), never dialogue text nor PHI values.

Audit layout (``SCHEMA``): ``target``, ``generated_at``, ``artifact``, ``upstream`` (one entry per
upstream asset: code versions, the materializations used, their partitions), ``checks``,
``sources`` (files with sha256, arrival, source and licence from the manifest),
``conversations``, ``teacher``, ``knowledge_base``, ``base_model``, ``phi``, ``deletion``
(tainted + matching requests), ``reproduce`` (with ``built_with``: the git commit and package
versions recorded when the artifact was built) and ``findings``. ``ark-audit/2`` replaced
``/1``'s ``reproduce.environment_at_audit`` (the auditor's environment) with ``built_with``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from ark_assets.lib.compliance.tombstones import Identifiers

SCHEMA = "ark-audit/2"
UNLISTED = "unlisted"
# A field named like a credential (api_key, hf_token, db_password; not max_tokens).
_SECRET = re.compile(r"(?:^|_)(?:key|token|secret|password|credentials?)(?:$|_)", re.IGNORECASE)
_DAGSTER_TAG = "dagster/"  # Dagster's own tags (run_key, partition) are never secrets
_REQUIRED_SOURCE_FIELDS = ("pattern", "source", "licence")


# --- sources manifest -------------------------------------------------------------------------


class ManifestError(ValueError):
    """The sources manifest is missing or malformed; the message names the fix."""


@dataclass(frozen=True)
class SourceEntry:
    """Where files matching ``pattern`` (a glob on the arrived file name) come from."""

    pattern: str
    source: str
    licence: str
    url: str = ""
    attribution: str = ""
    corpora: tuple[dict[str, Any], ...] = ()

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "source": self.source,
            "licence": self.licence,
            "url": self.url,
            "manifest_pattern": self.pattern,
        }
        if self.attribution:
            described["attribution"] = self.attribution
        if self.corpora:
            described["corpora"] = [dict(c) for c in self.corpora]
        return described


@dataclass(frozen=True)
class SourcesManifest:
    path: str
    entries: tuple[SourceEntry, ...] = ()

    def match(self, file_name: str) -> SourceEntry | None:
        """The first entry whose pattern matches ``file_name`` (case-sensitive glob)."""
        for entry in self.entries:
            if fnmatch.fnmatchcase(file_name, entry.pattern):
                return entry
        return None

    def describe(self, file_name: str) -> dict[str, Any]:
        """Source, licence and url of ``file_name``, or ``source: unlisted``."""
        entry = self.match(file_name)
        if entry is None:
            return {"source": UNLISTED, "licence": None, "url": None, "listed": False}
        return {**entry.describe(), "listed": True}


def load_manifest(path: Path) -> SourcesManifest:
    """Read a sources manifest (YAML: ``sources: [{pattern, source, licence, url, …}]``).

    Raises ManifestError naming the file and the entry to fix.
    """
    if not path.is_file():
        raise ManifestError(
            f"sources manifest {path} does not exist: point ARK_SOURCES_MANIFEST at yours "
            "(ark_assets/samples/sources.yaml shows the format)"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ManifestError(f"sources manifest {path}: not valid YAML ({err})") from err
    raw = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise ManifestError(
            f"sources manifest {path}: expected a top-level 'sources:' list of entries with "
            f"{', '.join(_REQUIRED_SOURCE_FIELDS)}"
        )
    entries = []
    for index, item in enumerate(raw):
        missing = [
            name
            for name in _REQUIRED_SOURCE_FIELDS
            if not isinstance(item, dict) or not item.get(name)
        ]
        if missing:
            raise ManifestError(
                f"sources manifest {path}: entry {index} lacks {', '.join(missing)}; every entry "
                f"needs {', '.join(_REQUIRED_SOURCE_FIELDS)} (url, attribution, corpora optional)"
            )
        entries.append(
            SourceEntry(
                pattern=str(item["pattern"]),
                source=str(item["source"]),
                licence=str(item["licence"]),
                url=str(item.get("url") or ""),
                attribution=str(item.get("attribution") or "").strip(),
                corpora=tuple(dict(c) for c in item.get("corpora") or ()),
            )
        )
    return SourcesManifest(str(path), tuple(entries))


# --- deletion taint ---------------------------------------------------------------------------


def taint(
    built_at: datetime | None, holdings: Identifiers, requests: pl.DataFrame
) -> dict[str, Any]:
    """Which deletion requests name something the artifact holds, and whether it is tainted.

    A matching request recorded after the build means the artifact predates it: tainted until
    rebuilt. One recorded before the build means the artifact still holds what the request
    names (an upstream layer did not drop it): tainted too, and the upstream layer must be
    rebuilt first. ``built_at`` None (no materialization known) counts every match as after.
    """
    built, matches = _utc(built_at), []
    for row in requests.iter_rows(named=True):
        matched_on = holdings.matched_on(row)
        if not matched_on:
            continue
        requested_at = _utc(row["requested_at"])
        after = built is None or requested_at is None or requested_at > built
        matches.append(
            {
                "request_id": row["request_id"],
                "kind": row["kind"],
                "target": row["target"],
                "matched_on": matched_on,
                "requested_at": iso_time(requested_at),
                "requested_by": row["requested_by"],
                "reason": row["reason"],
                "after_build": after,
            }
        )
    return {"tainted": bool(matches), "requests": matches, "requests_checked": requests.height}


# --- identifiers and safety -------------------------------------------------------------------


def redact(value: Any) -> Any:
    """``value`` with anything under a secret-looking key (api_key, token, …) replaced."""
    if isinstance(value, Mapping):
        return {
            str(k): "***" if _is_secret_field(str(k)) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _is_secret_field(name: str) -> bool:
    return not name.startswith(_DAGSTER_TAG) and bool(_SECRET.search(name))


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def iso_time(value: float | datetime | None) -> str | None:
    """An event timestamp (epoch seconds) or a datetime as ISO 8601 UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return datetime.fromtimestamp(value, UTC).isoformat()


# --- findings ---------------------------------------------------------------------------------


def findings(audit: Mapping[str, Any]) -> list[str]:
    """What a reviewer must act on, one line each (empty when the artifact is clean)."""
    found: list[str] = []
    artifact = audit.get("artifact") or {}
    if not artifact.get("materialized"):
        found.append(
            "no Dagster materialization records this artifact: lineage comes from its own "
            "files only"
            if artifact.get("path")
            else "never materialized: nothing to audit"
        )
    if artifact.get("materialized") and artifact.get("code_version") != artifact.get(
        "code_version_current"
    ):
        found.append(
            f"built with code version {artifact.get('code_version')}, now "
            f"{artifact.get('code_version_current')}: stale, rematerialize"
        )
    if artifact.get("superseded"):
        found.append("a newer materialization of this asset exists: this audit is of an older one")
    if artifact.get("lineage_path_refused"):
        found.append(
            f"the training card names a lineage file outside the artifact store "
            f"({artifact['lineage_path_refused']}): not read; check where this adapter came from"
        )
    if artifact.get("matches_disk") is False:
        found.append(
            f"the file at {artifact.get('path')} no longer matches the recorded sha256: it was "
            "changed or rebuilt after this materialization"
        )
    deletion = audit.get("deletion") or {}
    for request in deletion.get("requests", []):
        when = (
            "recorded after this build: rebuild it"
            if request["after_build"]
            else "recorded before this build, yet its data is still in it: rebuild upstream"
        )
        found.append(
            f"tainted by deletion request {request['request_id']} ({request['kind']} "
            f"{request['target']}, matched on {', '.join(request['matched_on'])}): {when}"
        )
    for source in (audit.get("sources") or {}).get("files", []):
        if not source.get("listed"):
            found.append(
                f"unlisted source file {source['name']} (sha256 {source['sha256'][:12]}…): add "
                "it to the sources manifest with its licence"
            )
    for upstream in audit.get("upstream", []):
        if upstream.get("code_changed_since"):
            found.append(
                f"{upstream['asset']}: code version {upstream['code_version']} now, built with "
                f"{', '.join(upstream['code_versions_recorded'])}: stale, rematerialize"
            )
        if upstream.get("missing_partitions"):
            found.append(
                f"{upstream['asset']}: no materialization of "
                f"{', '.join(upstream['missing_partitions'])} before this build"
            )
    for check in audit.get("checks", []):
        if check["failed"]:
            found.append(
                f"check {check['asset']}:{check['check']} failed on {check['failed']} of the "
                "materializations used"
            )
    base = audit.get("base_model") or {}
    if base.get("sha256_consistent") is False:
        found.append("the adapter's recorded base-model sha256 differs from base_model's")
    return found


# --- markdown ---------------------------------------------------------------------------------


def render_markdown(audit: Mapping[str, Any], level: int = 1) -> str:
    """The audit as a markdown report (identifiers only; conversation keys as count + digest)."""
    h = "#" * level
    artifact = audit.get("artifact") or {}
    target = audit["target"]
    deletion = audit.get("deletion") or {}
    status = "TAINTED" if deletion.get("tainted") else "not tainted"
    lines = [
        f"{h} Compliance audit: {target['asset'] or target['query']}",
        "",
        f"Target `{target['query']}` ({target['resolved_as']}), generated {audit['generated_at']}"
        f" — **{status}**, {len(audit.get('findings', []))} finding(s).",
        "",
    ]
    lines += _section(h, "Findings", [f"- {f}" for f in audit.get("findings", [])] or ["None."])
    lines += _section(h, "Artifact", _key_values(artifact, skip=("metadata",)))
    lines += _section(h, "Upstream assets", _upstream_table(audit.get("upstream", [])))
    lines += _section(h, "Source files", _sources_table(audit.get("sources") or {}))
    lines += _section(h, "Conversations", _conversations(audit.get("conversations") or {}))
    lines += _section(h, "Teacher", _records_table(audit.get("teacher", [])))
    kb = audit.get("knowledge_base") or {}
    lines += _section(
        h,
        "Knowledge base",
        [*_records_table(kb.get("snapshots", [])), "", *_records_table(kb.get("queried", []))],
    )
    lines += _section(h, "Base model", _key_values(audit.get("base_model") or {}))
    lines += _section(h, "PHI findings", _phi(audit.get("phi") or {}))
    lines += _section(h, "Checks", _checks_table(audit.get("checks", [])))
    lines += _section(h, "Deletion requests", _deletion(deletion))
    lines += _section(
        h,
        "Reproduce",
        [
            "Everything needed to rebuild this artifact: the same inputs (source files and "
            "conversation keys above), code versions, run configuration, seeds and settings.",
            "",
            *_reproduce_summary(audit.get("reproduce") or {}),
            "",
            "```json",
            json.dumps(audit.get("reproduce") or {}, indent=1, ensure_ascii=False, default=str),
            "```",
        ],
    )
    return "\n".join(lines).rstrip() + "\n"


def render_collection(collection: Mapping[str, Any]) -> str:
    """Several artifacts' audits (the ``compliance_audit`` asset) as one markdown document."""
    audits: Mapping[str, Any] = collection["artifacts"]
    tainted = [key for key, audit in audits.items() if (audit.get("deletion") or {}).get("tainted")]
    lines = [
        "# Compliance audit",
        "",
        f"Generated {collection['generated_at']} for {len(audits)} artifacts; tainted: "
        f"{', '.join(tainted) or 'none'}.",
        "",
        "| artifact | materialized | tainted | findings |",
        "|---|---|---|---|",
    ]
    for key, audit in audits.items():
        artifact = audit.get("artifact") or {}
        lines.append(
            f"| {key} | {artifact.get('materialized_at') or 'never'} | "
            f"{'yes' if (audit.get('deletion') or {}).get('tainted') else 'no'} | "
            f"{len(audit.get('findings', []))} |"
        )
    lines.append("")
    return "\n".join(lines) + "\n" + "\n".join(render_markdown(a, level=2) for a in audits.values())


def _section(h: str, title: str, body: Sequence[str]) -> list[str]:
    return [f"{h}# {title}", "", *body, ""]


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list | tuple | set):
        return ", ".join(_cell(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _key_values(values: Mapping[str, Any], skip: Sequence[str] = ()) -> list[str]:
    rows = [f"- {key}: {_cell(value)}" for key, value in values.items() if key not in skip]
    return rows or ["None."]


def _records_table(records: Sequence[Mapping[str, Any]]) -> list[str]:
    if not records:
        return ["None."]
    columns = list(dict.fromkeys(key for record in records for key in record))
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in records),
    ]


def _upstream_table(upstream: Sequence[Mapping[str, Any]]) -> list[str]:
    if not upstream:
        return ["None."]
    header = "| asset | group | code version (now / built) | data version | runs | built at |"
    rows = [f"{header} partitions |", "|---|---|---|---|---|---|---|"]
    for entry in upstream:
        used = entry.get("materializations", [])
        recorded = ", ".join(entry.get("code_versions_recorded", [])) or "—"
        flag = " ⚠ changed" if entry.get("code_changed_since") else ""
        versions = sorted({str(m.get("data_version") or "")[:12] for m in used} - {""})
        runs = sorted({m["run_id"][:8] for m in used})
        times = sorted(m["materialized_at"] for m in used)
        span = f"{times[0]} … {times[-1]}" if len(times) > 1 else (times[0] if times else "never")
        partitions = [m["partition"] for m in used if m.get("partition")]
        rows.append(
            f"| {entry['asset']} | {_cell(entry.get('group'))} | "
            f"{_cell(entry.get('code_version'))} / {recorded}{flag} | {_cell(versions)} | "
            f"{_cell(runs)} | {span} | {len(partitions) if partitions else '—'} |"
        )
    return rows


def _sources_table(sources: Mapping[str, Any]) -> list[str]:
    files = sources.get("files", [])
    if not files:
        return ["None."]
    rows = [
        f"Manifest: `{sources.get('manifest')}`; {len(files)} file(s), "
        f"{sum(not f.get('listed') for f in files)} unlisted.",
        "",
        "| kind | file | sha256 | batch | landed at | source | licence |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in files:
        rows.append(
            f"| {f['kind']} | {_cell(f['name'])} | `{f['sha256']}` | {_cell(f.get('batch'))} | "
            f"{_cell(f.get('landed_at'))} | {_cell(f.get('source'))} | {_cell(f.get('licence'))} |"
        )
    attributions = sorted({f["attribution"] for f in files if f.get("attribution")})
    if attributions:
        rows += ["", "Attribution required:", *(f"- {a}" for a in attributions)]
    return rows


def _conversations(conversations: Mapping[str, Any]) -> list[str]:
    if not conversations:
        return ["None (this artifact is not built from dialogues)."]
    return [
        f"- count: {conversations.get('count', 0)}",
        f"- sha256 of the sorted keys: `{conversations.get('sha256')}`",
        f"- from: {conversations.get('origin')}",
        f"- batches: {_cell(conversations.get('batches'))}",
        "",
        "The keys themselves are listed in the JSON report.",
    ]


def _phi(phi: Mapping[str, Any]) -> list[str]:
    if not phi:
        return ["None."]
    rows = []
    if phi.get("by_type") is None:
        rows.append(f"- warehouse: {phi.get('note', 'no phi_findings table')}")
    else:
        rows.append(f"- replaced spans now in ark.phi_findings: {phi.get('total', 0)}")
        rows += [f"  - {kind}: {count}" for kind, count in phi["by_type"].items()]
    for asset, counts in (phi.get("replaced_at_build") or {}).items():
        rows.append(f"- replaced when built, {asset}: {_cell(counts)}")
    return rows


def _checks_table(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    if not checks:
        return ["None."]
    rows = [
        "| asset | check | blocking | status | passed | failed | not evaluated |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        rows.append(
            f"| {c['asset']} | {c['check']} | {'yes' if c['blocking'] else 'no'} | {c['status']} "
            f"| {c['passed']} | {c['failed']} | {c['not_evaluated']} |"
        )
    return rows


def _reproduce_summary(reproduce: Mapping[str, Any]) -> list[str]:
    inputs = reproduce.get("inputs") or {}
    rows = [
        f"- inputs: {len(inputs.get('source_files', []))} source file(s), "
        f"{len(inputs.get('batches') or [])} batch(es), conversations sha256 "
        f"`{inputs.get('conversations_sha256')}`",
        f"- runs: {len(reproduce.get('runs', {}))}, each with its run configuration below",
        f"- built with: {_built_with(reproduce)}",
    ]
    training = reproduce.get("training") or {}
    settings, provenance = training.get("settings") or {}, training.get("provenance") or {}
    if training:
        rows.append(
            f"- training: seed {settings.get('seed')}, fingerprint {provenance.get('fingerprint')}"
            f", train data sha256 `{provenance.get('train_data_sha256')}`, "
            f"{training.get('global_step')} steps"
        )
    return rows


def _built_with(reproduce: Mapping[str, Any]) -> str:
    """The build's code and packages, as recorded when it was built (never the auditor's)."""
    built = reproduce.get("built_with")
    if not built:
        return "not recorded (built before ark-assets recorded its build environment)"
    git = built.get("git") or {}
    code = f"git {git.get('commit')}" if git else "no git checkout"
    if git.get("dirty"):
        code += " with uncommitted changes"
    packages = ", ".join(f"{k} {v}" for k, v in (built.get("packages") or {}).items() if v)
    return (
        f"{code}, Python {built.get('python')}; {packages} "
        f"(from the {reproduce.get('built_with_from')})"
    )


def _deletion(deletion: Mapping[str, Any]) -> list[str]:
    if not deletion:
        return ["None."]
    rows = [
        f"**{'Tainted' if deletion.get('tainted') else 'Not tainted'}**: "
        f"{len(deletion.get('requests', []))} of {deletion.get('requests_checked', 0)} "
        "deletion request(s) name something this artifact holds."
    ]
    if deletion.get("requests"):
        rows += ["", *_records_table(deletion["requests"])]
    return rows
