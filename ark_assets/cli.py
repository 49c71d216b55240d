"""The `ark` command: demo (what `make demo` runs), summary, audit (lineage), forget."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ark_assets.defs.resources import data_dir
from ark_assets.summary import rules_quarantined, warehouse_counts


def _print_summary(root: Path) -> None:
    database = Path(os.environ.get("ARK_WAREHOUSE", root / "warehouse.duckdb"))
    print("\nWarehouse", database)
    for label, value in warehouse_counts(database).items():
        print(f"  {label:<28} {value:>8}")
    rules = rules_quarantined(database) if database.exists() else {}
    if rules:
        print("  quarantined by rule:", ", ".join(f"{r}={n}" for r, n in rules.items()))
    print("\nOutputs")
    print(f"  DuckDB warehouse      {database}  (schema ark; e.g. ark.tagged_dialogues)")
    adapters = sorted(
        (root / "artifacts" / "adapters" / "sft").glob("*/training_card.json"),
        key=lambda card: card.stat().st_mtime,
    )
    for label, path in (
        ("MedArk tagged.pkl", root / "artifacts" / "exports" / "tagged.pkl"),
        ("landed source files", root / "landing"),
        ("knowledge base", root / "chroma"),
        ("student checkpoint", root / "models" / "base"),
        ("SFT adapter + card", adapters[-1].parent if adapters else root / "missing"),
        ("compliance audit", root / "artifacts" / "compliance" / "audit.md"),
    ):
        if path.exists():
            print(f"  {label:<21} {path}")
    print(f"  Dagster instance      {os.environ.get('DAGSTER_HOME', '(DAGSTER_HOME unset)')}")
    print("\nBrowse the graph, runs and checks: make ui  →  http://127.0.0.1:3000")


def demo(_: argparse.Namespace) -> None:
    from ark_assets.demo import run_demo

    os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    outcome = run_demo()
    print(
        f"\nark demo: dropped {len(outcome['dropped'])} sample files, registered "
        f"{len(outcome['new_partitions'])} new batches, launched {outcome['runs']} runs."
    )
    _print_summary(Path(outcome["data_dir"]))


def summary(_: argparse.Namespace) -> None:
    _print_summary(data_dir())


def audit(args: argparse.Namespace) -> None:
    from ark_assets.audit import audit_command

    audit_command(args)


def forget(args: argparse.Namespace) -> None:
    from ark_assets.forget import forget_command

    forget_command(args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ark", description=__doc__)
    commands = parser.add_subparsers(required=True)
    audit_parser = commands.add_parser(
        "audit", help="lineage audit of an asset, an artifact file or an adapter directory"
    )
    audit_parser.add_argument("target", help="asset key (e.g. sft_adapter) or a path under data/")
    audit_parser.add_argument(
        "--out", type=Path, help="folder for <target>.audit.json/.md (default data/compliance/)"
    )
    audit_parser.set_defaults(run=audit)
    forget_parser = commands.add_parser(
        "forget", help="deletion request: tombstone a conversation key or a source file"
    )
    forget_parser.add_argument("target", help="conversation key, or a source file (path or name)")
    forget_parser.add_argument("--by", help="who asks (default: the OS user)")
    forget_parser.add_argument("--reason", default="", help="why, e.g. a ticket number")
    forget_parser.add_argument(
        "--rebuild",
        action="store_true",
        help="re-materialize the affected tables and the index now (adapters stay tainted "
        "until retrained)",
    )
    forget_parser.set_defaults(run=forget)
    commands.add_parser(
        "demo", help="materialize the whole graph on the bundled samples"
    ).set_defaults(run=demo)
    commands.add_parser("summary", help="print what the warehouse holds").set_defaults(run=summary)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
