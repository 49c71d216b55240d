"""``ark audit TARGET [--out DIR]``: the audit of one artifact from the command line.

The exit status is the verdict, so a release script or CI step can stop on it; the codes are
listed in ``ark audit --help`` and docs/compliance.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg

from ark_assets.cli.instance import dagster_home
from ark_assets.defs.compliance.audit import build_audit, write_report
from ark_assets.defs.compliance.audit_lineage import AuditError
from ark_assets.defs.resources import data_dir
from ark_assets.lib.compliance import audit_report as report

_AUDIT_RESOURCES = ("warehouse", "inbox", "kb_inbox", "artifacts")

CLEAN = 0  # not tainted, no findings
NOT_RUN = 1  # no Dagster instance, or an unreadable sources manifest
UNKNOWN_TARGET = 2  # argparse's status for a bad argument
TAINTED = 3  # a deletion request matches data the artifact holds (wins over FINDINGS)
FINDINGS = 4  # not tainted, but something needs a human


def audit_command(args: argparse.Namespace) -> None:
    """``ark audit TARGET [--out DIR]``: print the verdict and findings, write
    ``<name>.audit.json|md``; exit with TAINTED or FINDINGS unless the artifact is clean."""
    from ark_assets.definitions import defs

    home = dagster_home()
    if not home.is_dir():
        _fail(
            NOT_RUN,
            f"ark audit: no Dagster instance at {home}: run `make demo` first or set DAGSTER_HOME",
        )
    definitions = defs()
    configured = {k: v for k, v in (definitions.resources or {}).items() if k in _AUDIT_RESOURCES}
    with dg.DagsterInstance.get() as instance, dg.build_resources(configured) as built:
        try:
            audit = build_audit(
                args.target, instance, definitions, {k: getattr(built, k) for k in configured}
            )
        except AuditError as err:
            _fail(UNKNOWN_TARGET, str(err))
        except report.ManifestError as err:
            _fail(NOT_RUN, f"ark audit {args.target}: {err}")
    name = audit["target"]["asset"] or Path(args.target).resolve().name
    out = args.out or data_dir() / "compliance"
    json_path, markdown_path = write_report(
        out, f"{name}.audit", audit, report.render_markdown(audit)
    )
    status, verdict = _verdict(audit)
    print(f"ark audit {args.target}: {verdict}")
    for finding in audit["findings"]:
        print(f"  - {finding}")
    print(f"  {json_path}\n  {markdown_path}")
    if status != CLEAN:
        raise SystemExit(status)


def _verdict(audit: dict[str, Any]) -> tuple[int, str]:
    findings = len(audit["findings"])
    if audit["deletion"]["tainted"]:
        requests = len(audit["deletion"]["requests"])
        return TAINTED, f"TAINTED by {requests} deletion request(s), {findings} finding(s)"
    if findings:
        return FINDINGS, f"not tainted, {findings} finding(s)"
    return CLEAN, "clean (not tainted, no findings)"


def _fail(status: int, message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(status)
