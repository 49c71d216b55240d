"""De-identifying tables: dialogues and knowledge-base documents in, redacted rows and findings out.

``lib/compliance/phi.py`` finds and replaces PHI in one dialogue; this module applies it to
warehouse frames and scans derived text (training examples, KB documents) for anything a
detector still finds, which is what the blocking "PHI-free" checks assert. Findings carry
positions and types only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import polars as pl

from ark_assets.lib.compliance.phi import EN, find_phi, redact_dialogue
from ark_assets.lib.ingest.tables import TAGGED_DIALOGUES
from ark_assets.lib.language import detect_language
from ark_assets.lib.tables import Column, frame

DEIDENTIFIED_DIALOGUES = (
    *(c for c in TAGGED_DIALOGUES if c.name != "turns_json"),
    Column(
        "turns_json",
        pl.Utf8,
        "The dialogue with every PHI span replaced by a typed placeholder ([NAME_1], [PHONE_1]…), "
        "consistent within the dialogue; turn keys in their original order.",
    ),
    Column("phi_findings", pl.Int64, "Spans replaced in this dialogue (see phi_findings)."),
)

PHI_FINDINGS = (
    Column("batch", pl.Utf8, "Dialogue batch (partition key)."),
    Column("conversation_id", pl.Utf8, "tagged_dialogues.conversation_id."),
    Column("turn", pl.Int64, "0-based turn of the dialogue."),
    Column("role", pl.Utf8, "patient or doctor."),
    Column("type", pl.Utf8, "PHONE, ID, MRN, EMAIL, URL, IP, DATE, ADDRESS, HOSPITAL or NAME."),
    Column("start", pl.Int64, "Offset of the span in the original turn text."),
    Column("end", pl.Int64, "End offset (exclusive) in the original turn text."),
    Column("length", pl.Int64, "Characters replaced."),
    Column("detector", pl.Utf8, "Detector that found it (lib/compliance/phi.py REGISTRY)."),
    Column("placeholder", pl.Utf8, "What replaced it, e.g. [PHONE_1]. Never the raw value."),
)


@dataclass(frozen=True)
class Deidentified:
    dialogues: pl.DataFrame  # DEIDENTIFIED_DIALOGUES
    findings: pl.DataFrame  # PHI_FINDINGS

    def counts_by_type(self) -> dict[str, int]:
        return dict(sorted(Counter(self.findings["type"].to_list()).items()))


def deidentify_dialogues(tagged: pl.DataFrame, *, use_presidio: bool = False) -> Deidentified:
    """Redact every dialogue of a ``tagged_dialogues`` frame; one findings row per span."""
    rows, findings = [], []
    for row in tagged.iter_rows(named=True):
        turns = json.loads(row["turns_json"])
        redacted, found = redact_dialogue(turns, row["language"], use_presidio=use_presidio)
        rows.append(
            {
                **row,
                "turns_json": json.dumps(redacted, ensure_ascii=False),
                "phi_findings": len(found),
            }
        )
        findings += [
            {"batch": row["batch"], "conversation_id": row["conversation_id"], **asdict(f)}
            for f in found
        ]
    return Deidentified(frame(rows, DEIDENTIFIED_DIALOGUES), frame(findings, PHI_FINDINGS))


def deidentify_documents(documents: pl.DataFrame) -> tuple[pl.DataFrame, Counter[str]]:
    """Knowledge-base documents (``kb_sources``) with PHI replaced in question and answer.

    A QA pair is one short dialogue (the patient's question, the doctor's answer), so it is
    redacted like one: a name found in the question is also replaced in the answer. ``doc_id``
    stays the digest of the original pair, the document's identity. Returns the frame and the
    replaced spans by type.
    """
    by_type: Counter[str] = Counter()
    questions, answers = [], []
    for question, answer, language in documents.select(
        "question", "answer", "language"
    ).iter_rows():
        turn = {"question": question, "answer": answer}
        (redacted,), found = redact_dialogue([turn], language or EN)
        questions.append(redacted["question"])
        answers.append(redacted["answer"])
        by_type.update(f.type for f in found)
    return documents.with_columns(
        pl.Series("question", questions, pl.Utf8), pl.Series("answer", answers, pl.Utf8)
    ), by_type


def residual_phi(texts: Iterable[str]) -> Counter[str]:
    """What the detectors still find in already de-identified text, by ``type/detector``.

    Each distinct text is scanned once, in its detected language. The counts never carry the
    values; an empty counter is what the blocking PHI-free checks require.
    """
    found: Counter[str] = Counter()
    for text in set(texts):
        if not text:
            continue
        for finding in find_phi(text, detect_language(text) or EN):
            found[f"{finding.type}/{finding.detector}"] += 1
    return found


def turn_texts(turns_json: Iterable[str]) -> Iterable[str]:
    """Every turn text of dialogues stored as JSON (``turns_json``)."""
    for dialogue in turns_json:
        for turn in json.loads(dialogue):
            yield from turn.values()


def message_texts(messages_json: Iterable[str]) -> Iterable[str]:
    """Every message content of chat transcripts stored as JSON (sft_records.messages_json)."""
    for transcript in messages_json:
        for message in json.loads(transcript):
            content = message.get("content")
            if isinstance(content, str):
                yield content
            for call in message.get("tool_calls") or []:
                arguments = call.get("function", {}).get("arguments")
                if arguments:
                    yield arguments if isinstance(arguments, str) else json.dumps(arguments)
