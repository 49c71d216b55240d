"""`ark forget TARGET [--by] [--reason] [--rebuild]`: a deletion request from the command line.

``defs/compliance/deletion.py`` does the work; ``deletion_request_job`` is the same from the UI.
"""

from __future__ import annotations

import argparse

import dagster as dg

from ark_assets.cli.instance import dagster_home
from ark_assets.defs.compliance.deletion import forget, rebuild
from ark_assets.defs.resources import WAREHOUSE_SCHEMA
from ark_assets.lib.compliance.targets import InvalidTarget
from ark_assets.lib.compliance.tombstones import TABLE, NothingToForget


def forget_command(args: argparse.Namespace) -> None:
    from ark_assets.definitions import defs

    dagster_home(create=True)
    definitions = defs()
    resources = dict(definitions.resources or {})
    with dg.DagsterInstance.get() as instance:
        try:
            request = forget(
                args.target, resources, instance, requested_by=args.by, reason=args.reason
            )
        except InvalidTarget as err:
            raise SystemExit(str(err)) from err
        except NothingToForget as err:
            raise SystemExit(f"ark forget: {err}") from err
        print(f"deletion request {request.request_id}: {len(request.tombstones)} tombstone(s)")
        for t in request.tombstones:
            name = t.source_name or t.batch
            what = t.conversation_id or f"{name!r} sha256 {t.file_sha256 or '?'}"
            print(f"  {t.kind:<12} {what}" + (f"  (batch {t.batch})" if t.batch else ""))
        for path in request.deleted_files:
            print(f"  deleted copy {path}")
        print(f"  batches to rebuild: {', '.join(request.batches) or 'none'}")
        print(f"  knowledge base to rebuild: {'yes' if request.knowledge_base else 'no'}")
        if args.rebuild:
            runs = rebuild(request, definitions, instance, resources)
            print(f"rebuilt in {len(runs)} run(s); adapters trained before now stay tainted "
                  f"until retrained: `ark audit sft_adapter`")  # fmt: skip
        else:
            print("next: `ark forget ... --rebuild`, or materialize those batches in the UI")
    print(f"audit trail: {WAREHOUSE_SCHEMA}.{TABLE} in {resources['warehouse'].database}")
