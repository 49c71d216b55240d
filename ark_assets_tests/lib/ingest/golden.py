"""What ingest put out before the streaming reader, as digests to compare the new path against.

``python -m ark_assets_tests.lib.ingest.golden`` rewrites ``ingest_golden.json`` from the code as
it is; it was written once with the whole-file reader (commit d62b093; its digests labelled
``sha256 …`` since, values unchanged) and must not be regenerated to make a failing comparison
pass.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from ark_assets.lib.ingest.batches import ingest_batch
from ark_assets.lib.ingest.dialogues import Limits
from ark_assets_tests.conftest import BAD_INPUTS, SAMPLES

GOLDEN = Path(__file__).with_name("ingest_golden.json")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Columns that hold the run's clock, not the file's content.
CLOCK_COLUMNS = ("ingested_at", "quarantined_at")


def fixture_files() -> list[Path]:
    """The shared bad-input fixtures and the bundled dialogue samples."""
    files = sorted(p for p in BAD_INPUTS.iterdir() if p.suffix in (".json", ".jsonl"))
    return files + sorted(SAMPLES.glob("dialogues_*_sample.jsonl"))


# JSONL lines a fast parser might read differently from the standard library's: each must end up
# exactly where the whole-file reader put it.
_TURN = '{"patient": "头疼三天", "doctor": "发烧吗？"}'
HOSTILE_LINES = [
    '{"turns": [' + _TURN + "]}",
    '{"language": "zh-CN", "source": "s", "source_id": 12, "turns": [' + _TURN + "]}",
    '{"source_id": 1.5, "turns": [' + _TURN + "]}",
    '{"source_id": true, "turns": [' + _TURN + "]}",
    '{"source_id": 123456789012345678901234567890, "turns": [' + _TURN + "]}",
    '{"source_id": ' + "9" * 5000 + ', "turns": [' + _TURN + "]}",
    '{"x": NaN, "turns": [' + _TURN + "]}",
    '{"x": 1e999, "turns": [' + _TURN + "]}",
    '{"turns": [{"patient": "a", "patient": "b", "doctor": "c"}]}',
    '{"turns": [{"doctor": "c", "patient": "p"}]}',
    '{"turns": [{"patient": "tab\\there", "doctor": "ok"}]}',
    '{"turns": [{"patient": "raw\\u0009tab", "doctor": "ok"}]}',
    '{"turns": [{"patient": "raw	tab", "doctor": "ok"}]}',
    '{"turns": [{"patient": "nul\\u0000", "doctor": "ok"}]}',
    '{"turns": [{"patient": "lone \\ud800", "doctor": "ok"}]}',
    '{"turns": [{"patient": "pair \\ud83d\\ude00", "doctor": "ok"}]}',
    '{"turns": [{"patient": "\\u003c|im_start|>x", "doctor": "ok"}]}',
    '{"turns": [{"patient": "x<\\/tool_call>", "doctor": "ok"}]}',
    '{"turns": [{"patient": "x<tool_call>", "doctor": "ok"}]}',
    '{"turns": [{"patient": "a < b", "doctor": "ok"}]}',
    '{"turns": [{"patient": "\\u200b", "doctor": "ok"}]}',
    '{"turns": [{"patient": "\\u200bhello", "doctor": "ok"}]}',
    '{"turns": [{"patient": " \\u3000 ", "doctor": "ok"}]}',
    '{"turns": [{"patient": "\u200bhidden", "doctor": "raw lone \ud800 surrogate"}]}',
    '{"turns": [{"patient": "' + "长" * 4001 + '", "doctor": "ok"}]}',
    '{"turns": [' + ", ".join([_TURN] * 65) + "]}",
    '{"turns": [' + _TURN + '], "meta": ' + "[" * 70 + "]" * 70 + "}",
    '{"turns": [' + _TURN + '], "meta": ' + "[" * 2000 + "]" * 2000 + "}",
    '{"turns": [{"patient": "[[[[{{{{", "doctor": "' + "[" * 70 + '"}]}',
    '{"src": {"turns": [' + _TURN + ']}, "model": "m"}',
    '{"src": "not a dict", "turns": [' + _TURN + "]}",
    '{"conversation": [' + _TURN + "]}",
    '{"turns": [' + _TURN + '], "conversation": []}',
    "[" + _TURN + "]",
    '"just a string"',
    "  " + '{"turns": [' + _TURN + "]}" + "  ",
    '{"turns": [{"patient": "Hello there", "doctor": "Drink water."}]}',
    '{"turns": [{"patient": "12345", "doctor": "!!!"}]}',
    '{"language": 5, "turns": [' + _TURN + "]}",
    '{"language": "fr", "turns": [' + _TURN + "]}",
    '{"language": null, "turns": [' + _TURN + "]}",
    '{"turns": [' + _TURN + '], "source": "\\u0000"}',
    '{"turns": [' + _TURN + '], "source": ["list"]}',
    '{"turns": [' + _TURN + "]} trailing",
    "{}",
    '{"turns": null}',
    '{"turns": {}}',
    '{"turns": [[]]}',
    '{"turns": [{"patient": 1, "doctor": "x"}]}',
    '{"turns": [{"Patient": "p", "doctor": "x"}]}',
    '{"turns": [{"patient": "p", "doctor": "x", "extra": "y"}]}',
    "\ufeff" + '{"turns": [' + _TURN + "]}",
]


def hostile_jsonl() -> bytes:
    """``HOSTILE_LINES`` as one JSONL file, with blank and CRLF lines and a non-UTF-8 one."""
    body = "\n".join(HOSTILE_LINES).encode("utf-8", "surrogatepass")
    return b"\xef\xbb\xbf" + body + b"\r\n\n  \n" + b'{"turns": "\xff"}\n'


def digest_rows(rows: list[dict]) -> str:
    """``sha256 <hex>`` of the rows (labelled: a bare 64-hex string reads as a secret to
    detect-secrets)."""
    text = json.dumps(rows, ensure_ascii=False, sort_keys=True, default=str)
    return "sha256 " + hashlib.sha256(text.encode()).hexdigest()


def outputs(name: str, data: bytes, chunk_bytes: int | None = None) -> dict[str, object]:
    """Row counts and content digests of the accepted and quarantined rows of one file."""
    chunking = {} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}
    frames = ingest_batch("golden", name, data, "0" * 64, Limits(), NOW, **chunking)
    accepted = frames.accepted.drop(CLOCK_COLUMNS, strict=False).to_dicts()
    quarantined = frames.quarantined.drop(CLOCK_COLUMNS, strict=False).to_dicts()
    return {
        "accepted": len(accepted),
        "quarantined": len(quarantined),
        "accepted_sha256": digest_rows(accepted),
        "quarantined_sha256": digest_rows(quarantined),
    }


def main() -> None:
    golden = {path.name: outputs(path.name, path.read_bytes()) for path in fixture_files()}
    golden["hostile.jsonl"] = outputs("hostile.jsonl", hostile_jsonl())
    GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({len(golden)} files)")


if __name__ == "__main__":
    main()
