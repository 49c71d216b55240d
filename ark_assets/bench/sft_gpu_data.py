"""The examples ``bench.sft_gpu`` trains on, written here for a GPU machine that has no demo.

    python -m ark_assets.bench.sft_gpu_data [--out data/bench/sft_gpu_examples.json]

After ``make demo``: the demo's Ark paths (less those under a deletion request) rendered and
tokenized by ``sft_records``' own code with the exact Qwen2.5 tokenizer — what ``sft_records``
holds when the base model is a Qwen2.5 checkpoint — and the Qwen2.5 model shapes the GPU bench
builds (``ark_assets.testing.tiny``). Only lengths travel: the tokens of each train example and
of its prompt (the rest is labelled), no text, so nothing of the dialogues leaves this machine.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from ark_assets.defs.resources import WAREHOUSE_SCHEMA, data_dir

DEFAULT_OUT = Path("data") / "bench" / "sft_gpu_examples.json"  # bench.sft_gpu's default
SHAPES = ("1.5b", "tiny")


def examples_document(examples: Sequence[tuple[int, int]], source: dict[str, Any]) -> dict:
    """What bench.sft_gpu reads: ``[tokens, prompt tokens]`` per example, and the config of
    each Qwen2.5 shape (``transformers.Qwen2Config.to_dict()``)."""
    from ark_assets.testing.tiny import qwen2_config

    return {
        "source": source,
        "configs": {shape: qwen2_config(shape).to_dict() for shape in SHAPES},
        "examples": [[int(n), int(prompt)] for n, prompt in examples],
    }


def demo_examples(database: Path) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """The demo's train examples as ``sft_records`` renders them with the Qwen2.5 tokenizer, in
    its order, and where they came from."""
    from ark_assets.lib.compliance.tombstones import Identifiers, read_requests
    from ark_assets.lib.training.render import chat_template
    from ark_assets.lib.training.sft_records import RecordSettings, build_records
    from ark_assets.lib.training.tokenizer import build_qwen25_tokenizer

    with duckdb.connect(str(database), read_only=True) as conn:
        forgotten = Identifiers.of(read_requests(conn, WAREHOUSE_SCHEMA))
        paths = conn.execute(f"select * from {WAREHOUSE_SCHEMA}.ark_paths").pl()
        entities = conn.execute(f"select * from {WAREHOUSE_SCHEMA}.ark_entities").pl()
    paths, entities = forgotten.exclude(paths), forgotten.exclude(entities)
    tokenizer = build_qwen25_tokenizer(chat_template())
    settings = RecordSettings()
    records, quarantined = build_records(paths, entities, tokenizer, settings)
    train = records.filter(records["split"] == "train").sort(
        "conversation_id", "turn_index", "step"
    )
    source = {
        "what": "the demo's sft_records train split rendered with the exact Qwen2.5 tokenizer",
        "paths": paths.height,
        "train_examples": train.height,
        "over_length_quarantined": quarantined.height,
        "max_length": settings.max_length,
    }
    return list(zip(train["n_tokens"], train["prompt_tokens"], strict=True)), source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    database = data_dir() / "warehouse.duckdb"
    if not database.exists():
        raise SystemExit(
            f"bench.sft_gpu_data renders the demo's Ark paths: no {database}, run `make demo` first"
        )
    examples, source = demo_examples(database)
    if not examples:
        raise SystemExit(
            "bench.sft_gpu_data: the demo has no train examples: run `make demo` first"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(examples_document(examples, source)))
    lengths = [n for n, _ in examples]
    print(
        f"{args.out}: {len(examples)} train examples (tokens: mean "
        f"{sum(lengths) / len(lengths):.0f}, max {max(lengths)}; "
        f"{source['over_length_quarantined']} over {source['max_length']} left out). On the GPU "
        f"machine: make bench-gpu, carrying {args.out.parent} (docs/benchmarks.md, sft-gpu)."
    )


if __name__ == "__main__":
    main()
