"""``ark audit TARGET [--out DIR]``: the audit of one artifact from the command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import dagster as dg

from ark_assets.audit.build import build_audit, write_report
from ark_assets.audit.targets import AuditError
from ark_assets.defs.resources import data_dir
from ark_assets.lib import audit_report as report

_AUDIT_RESOURCES = ("warehouse", "inbox", "kb_inbox")


def audit_command(args: argparse.Namespace) -> None:
    """``ark audit TARGET [--out DIR]``: print the findings, write ``<name>.audit.json|md``."""
    from ark_assets.definitions import defs

    os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    if not home.is_dir():
        raise SystemExit(
            f"ark audit: no Dagster instance at {home}: run `make demo` first or set DAGSTER_HOME"
        )
    definitions = defs()
    configured = {k: v for k, v in (definitions.resources or {}).items() if k in _AUDIT_RESOURCES}
    with dg.DagsterInstance.get() as instance, dg.build_resources(configured) as built:
        try:
            audit = build_audit(
                args.target, instance, definitions, {k: getattr(built, k) for k in configured}
            )
        except (AuditError, report.ManifestError) as err:
            raise SystemExit(str(err)) from None
    name = audit["target"]["asset"] or Path(args.target).resolve().name
    out = args.out or data_dir() / "compliance"
    json_path, markdown_path = write_report(
        out, f"{name}.audit", audit, report.render_markdown(audit)
    )
    deletion = audit["deletion"]
    print(f"ark audit {args.target}: {'TAINTED' if deletion['tainted'] else 'not tainted'}, "
          f"{len(audit['findings'])} finding(s)")  # fmt: skip
    for finding in audit["findings"]:
        print(f"  - {finding}")
    print(f"  {json_path}\n  {markdown_path}")
