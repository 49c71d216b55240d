"""What the warehouse holds, for the demo's closing summary and `ark summary`."""

from __future__ import annotations

from pathlib import Path

from ark_assets.lib.warehouse import read_only, table_exists

_COUNTS = {
    "dialogues accepted": "select count(*) from ark.raw_dialogues",
    "records quarantined": "select count(*) from ark.quarantined_records",
    "dialogues tagged": "select count(*) from ark.tagged_dialogues",
    "key collisions (kept)": "select count(*) from ark.tag_collisions where kind='collision'",
    "exact duplicates collapsed": "select count(*) from ark.tag_collisions where kind='duplicate'",
    "dialogues de-identified": "select count(*) from ark.deidentified_dialogues",
    "  PHI spans replaced": "select count(*) from ark.phi_findings",
    "deletion requests (rows)": "select count(*) from ark.deletion_requests",
    "KB documents": "select count(*) from ark.kb_sources",
    "Ark paths": "select count(*) from ark.ark_paths",
    "  of which ask": "select count(*) from ark.ark_paths where is_asking",
    "Ark path failures (kept)": "select count(*) from ark.ark_failures",
    "SFT examples, train": "select count(*) from ark.sft_records where split='train'",
    "SFT examples, held out": "select count(*) from ark.sft_records where split='heldout'",
    "SFT examples over length": "select count(*) from ark.sft_quarantine",
}


def warehouse_counts(database: Path) -> dict[str, int]:
    if not database.exists():
        return {}
    counts: dict[str, int] = {}
    with read_only(database) as conn:
        for label, sql in _COUNTS.items():
            table = sql.split(" from ark.")[1].split()[0]
            if table_exists(conn, "ark", table):
                row = conn.execute(sql).fetchone()
                counts[label] = int(row[0]) if row else 0
    if "dialogues accepted" in counts and "records quarantined" in counts:
        counts = {
            "dialogues read": counts["dialogues accepted"] + counts["records quarantined"],
            **counts,
        }
    return counts


def rules_quarantined(database: Path) -> dict[str, int]:
    with read_only(database) as conn:
        if not table_exists(conn, "ark", "quarantined_records"):
            return {}
        rows = conn.execute(
            "select rule, count(*) from ark.quarantined_records group by 1 order by 2 desc"
        ).fetchall()
    return {rule: int(n) for rule, n in rows}
