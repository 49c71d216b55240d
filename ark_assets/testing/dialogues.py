"""A seeded generator of dialogues shaped like the bundled samples (for benchmarks and tests).

Each generated dialogue takes a sample dialogue's turn count and language and recombines real
turns of that language, so lengths, scripts and key order follow the sample while every
dialogue (and so every MedArk key) is new.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ark_assets.lib.artifacts import package_data

SAMPLES = package_data("samples")


def _sample_dialogues() -> list[dict]:
    records: list[dict] = []
    for name in ("dialogues_zh_sample.jsonl", "dialogues_en_sample.jsonl"):
        with (SAMPLES / name).open(encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records


def generate_dialogues(count: int, seed: int = 20250626) -> Iterator[dict]:
    rng = random.Random(seed)
    samples = _sample_dialogues()
    turns_by_language: dict[str, list[dict[str, str]]] = {}
    for record in samples:
        turns_by_language.setdefault(record["language"], []).extend(record["turns"])
    for index in range(count):
        shape = rng.choice(samples)
        pool = turns_by_language[shape["language"]]
        turns = [dict(rng.choice(pool)) for _ in shape["turns"]]
        turns[0]["patient"] = f"{turns[0]['patient']} #{index}"  # unique first turn
        yield {
            "source": "synthetic",
            "source_id": f"gen-{seed}-{index}",
            "language": shape["language"],
            "turns": turns,
        }


def write_jsonl(path: Path, count: int, seed: int = 20250626) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for dialogue in generate_dialogues(count, seed):
            handle.write(json.dumps(dialogue, ensure_ascii=False) + "\n")
    return path


def sample_rows(language: str, limit: int | None = None) -> list[dict[str, Any]]:
    """``tagged_dialogues``-shaped rows of a bundled sample (batch ``<language>-sample``)."""
    from ark_assets.lib.hashing import medark_key

    lines = (SAMPLES / f"dialogues_{language}_sample.jsonl").read_text().splitlines()
    rows = []
    for index, line in enumerate(lines[:limit]):
        turns = json.loads(line)["turns"]
        rows.append(
            {
                "batch": f"{language}-sample",
                "conversation_id": f"{language}-{index:03d}",
                "medark_key": medark_key(turns[0]),
                "language": language,
                "n_turns": len(turns),
                "turns_json": json.dumps(turns, ensure_ascii=False),
            }
        )
    return rows
