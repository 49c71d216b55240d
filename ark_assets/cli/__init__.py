"""The `ark` command: demo (what `make demo` runs), ingest (files from the command line), summary,
audit (lineage), forget, chat and serve (the agent), eval, sql (read-only queries) and dbt (the
warehouse project)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ark_assets.cli.summary import rules_quarantined, warehouse_counts
from ark_assets.defs.resources import data_dir


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
        ("evaluation report", root / "artifacts" / "reports" / "eval" / "report.html"),
    ):
        if path.exists():
            print(f"  {label:<21} {path}")
    print(f"  Dagster instance      {os.environ.get('DAGSTER_HOME', '(DAGSTER_HOME unset)')}")
    print("\nBrowse the graph, runs and checks: make ui  →  http://127.0.0.1:3000")


def _demo_command(_: argparse.Namespace) -> None:
    from ark_assets.cli.demo import report_failures, run_demo
    from ark_assets.cli.instance import dagster_home

    dagster_home(create=True)
    outcome = run_demo()
    print(
        f"\nark demo: dropped {len(outcome['dropped'])} sample files, registered "
        f"{len(outcome['new_partitions'])} new batches, launched {outcome['runs']} runs."
    )
    _print_summary(Path(outcome["data_dir"]))
    if outcome["failed"]:
        report_failures(outcome["failed"])
        raise SystemExit(1)


def _ingest_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.ingest import ingest_command

    ingest_command(args)


def _summary_command(_: argparse.Namespace) -> None:
    _print_summary(data_dir())


def _audit_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.audit import audit_command

    audit_command(args)


def _forget_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.forget import forget_command

    forget_command(args)


def _chat_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.chat import chat as run_chat

    run_chat(args)


def _serve_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.serve import serve as run_serve

    run_serve(args)


def _eval_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.eval import eval_command

    eval_command(args)


def _sql_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.sql import sql_command

    sql_command(args)


def _dbt_command(args: argparse.Namespace) -> None:
    from ark_assets.cli.dbt import dbt_command

    dbt_command(args)


def _agent_parser(commands: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """The options ``ark chat`` and ``ark serve`` share: which student, which server."""
    parser = commands.add_parser(name, help=help_text)
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory (default: none)")
    parser.add_argument("--base-model", type=Path, help="student checkpoint (default: base_model)")
    parser.add_argument("--policy-url", help="an OpenAI-compatible server's /v1 URL instead")
    parser.add_argument("--policy-model", help="the served model or adapter name")
    parser.add_argument("--language", default="zh", choices=["zh", "en"])
    parser.add_argument("--grammar", action="store_true", help="constrain every tool call")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ark", description=__doc__)
    commands = parser.add_subparsers(required=True)
    audit_parser = commands.add_parser(
        "audit",
        help="lineage audit of an asset, an artifact file or an adapter directory",
        description="Prints a one-line verdict and the findings; writes <target>.audit.json/.md.",
        epilog="exit status:\n"
        "  0  clean: not tainted, no findings\n"
        "  1  the audit could not run (no Dagster instance, unreadable sources manifest)\n"
        "  2  unknown target (the message lists the valid ones)\n"
        "  3  tainted by a deletion request (even with other findings)\n"
        "  4  findings that need a human (unlisted sources, changed code, failed checks, ...)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit_parser.add_argument("target", help="asset key (e.g. sft_adapter) or a path under data/")
    audit_parser.add_argument(
        "--out", type=Path, help="folder for <target>.audit.json/.md (default data/compliance/)"
    )
    audit_parser.set_defaults(run=_audit_command)
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
    forget_parser.set_defaults(run=_forget_command)
    _agent_parser(commands, "chat", "talk to the agent in the terminal (stdin)").set_defaults(
        run=_chat_command
    )
    serve_parser = _agent_parser(commands, "serve", "the agent in a browser (Gradio, 127.0.0.1)")
    serve_parser.add_argument("--host", default="127.0.0.1", help="bind address")
    serve_parser.add_argument("--port", type=int, default=7860)
    serve_parser.set_defaults(run=_serve_command)
    eval_parser = _agent_parser(commands, "eval", "evaluate an adapter on one test file")
    eval_parser.add_argument("--items", type=Path, required=True, help="an eval-inbox file")
    eval_parser.add_argument(
        "--items-per-set", type=int, default=0, help="a seeded sample per test set (0: all)"
    )
    eval_parser.add_argument("--max-new-tokens", type=int, default=192)
    eval_parser.add_argument("--seed", type=int, default=20250626)
    eval_parser.add_argument("--out", type=Path, help="report folder (default under data/)")
    eval_parser.set_defaults(run=_eval_command)
    commands.add_parser(
        "demo", help="materialize the whole graph on the bundled samples"
    ).set_defaults(run=_demo_command)
    ingest_parser = commands.add_parser(
        "ingest",
        help="ingest dialogue files: register their batches and run ingest_job for each",
        description="Copies the files into the inbox, registers their batches as the inbox "
        "sensor does and materializes the ingest assets; prints read/accepted/quarantined per "
        "file. Exit status 1: a run failed; 2: a path is not a file.",
    )
    ingest_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest_parser.set_defaults(run=_ingest_command)
    commands.add_parser("summary", help="print what the warehouse holds").set_defaults(
        run=_summary_command
    )
    sql_parser = commands.add_parser(
        "sql", help="a read-only query on the warehouse that never blocks a run for long"
    )
    sql_parser.add_argument("query", help='e.g. "from marts.dialogue_stats"')
    sql_parser.add_argument("--max-rows", type=int, default=200, help="rows printed")
    sql_parser.add_argument("--timeout", type=float, default=30.0, help="stop after seconds")
    sql_parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait while a step holds the warehouse"
    )
    sql_parser.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    sql_parser.set_defaults(run=_sql_command)
    dbt_parser = commands.add_parser(
        "dbt",
        help="dbt on the warehouse project (dbt_like_sql/) with the platform's paths and lock",
    )
    dbt_parser.add_argument("dbt_args", nargs=argparse.REMAINDER, help="e.g. docs generate")
    dbt_parser.set_defaults(run=_dbt_command)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
