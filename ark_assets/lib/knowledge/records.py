"""QA files → validated, normalised, de-duplicated knowledge-base documents.

Accepted files (see docs/knowledge-base.md):

- ``.jsonl``: one ``{"question", "answer", "source"?}`` object per line;
- ``.csv``: a header with ``question`` and ``answer`` (``source`` optional), one pair per row;
- ``.json``: a list of such objects, or MedArk-style ``{"q", "a"}`` objects.

Every record ends up as a document or as a ``Rejection`` naming the rule it broke (the rule
names are the ingest layer's, ``lib.ingest.dialogues.Rule``); exact duplicates (same
``doc_id``) collapse
into the first occurrence, which counts them. So for every build
``records read = documents + duplicates collapsed + quarantined``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ark_assets.lib.ingest.dialogues import (
    RESERVED_TOKENS,
    RecordError,
    Rejection,
    Rule,
    excerpt_of,
    is_blank,
    shown_names,
)
from ark_assets.lib.ingest.formats import (
    Parsed,
    decode_utf8,
    file_suffix,
    read_json_list,
    read_jsonl,
)
from ark_assets.lib.knowledge.text import normalise, normalised_doc_id
from ark_assets.lib.language import detect_language

QA_KEYS = ("question", "answer")
MEDARK_KEYS = ("q", "a")
_BOM = b"\xef\xbb\xbf"
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class KbLimits:
    """Bounds a QA pair must respect (after normalisation) to be accepted."""

    # The sample's longest question is 255 characters; a 1000+ character "question" is a
    # document pasted into the wrong field.
    max_question_chars: int = 1000
    # Retrieved answers are pasted into prompts (k=2 per query, 2 queries per round): an answer
    # of several pages would crowd out the dialogue. The sample's longest is 1066.
    max_answer_chars: int = 4000


@dataclass(frozen=True)
class QaDocument:
    """One accepted QA pair, normalised, as it will be indexed."""

    doc_id: str
    question: str
    answer: str
    source: str | None
    language: str | None  # zh or en; None when the text has no letters at all
    source_file: str
    file_sha256: str
    record_index: int
    source_format: str


@dataclass(frozen=True)
class SourceFile:
    """One QA file as read from the inbox (or its landed copy)."""

    name: str
    data: bytes
    sha256: str


@dataclass
class KbBuild:
    """Every document and rejection of a set of files, with the counts that tie them."""

    documents: list[QaDocument] = field(default_factory=list)
    occurrences: dict[str, int] = field(default_factory=dict)  # doc_id -> records collapsed
    rejections: list[tuple[SourceFile, Rejection]] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(self.occurrences.values()) - len(self.documents)

    @property
    def rule_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, rejection in self.rejections:
            counts[rejection.rule] = counts.get(rejection.rule, 0) + 1
        return dict(sorted(counts.items()))


def build_kb(files: Sequence[SourceFile], limits: KbLimits) -> KbBuild:
    """Parse, validate, normalise and de-duplicate ``files`` (first occurrence wins)."""
    build = KbBuild()
    by_id: dict[str, QaDocument] = {}
    for source in sorted(files, key=lambda f: f.name):
        source_format, items = read_qa_file(source.name, source.data)
        for item in items:
            outcome = (
                item
                if isinstance(item, Rejection)
                else validate_qa(item[0], item[1], source, source_format, limits)
            )
            if isinstance(outcome, Rejection):
                build.rejections.append((source, outcome))
                continue
            build.occurrences[outcome.doc_id] = build.occurrences.get(outcome.doc_id, 0) + 1
            if outcome.doc_id not in by_id:
                by_id[outcome.doc_id] = outcome
                build.documents.append(outcome)
    return build


def read_qa_file(name: str, data: bytes) -> tuple[str, Iterator[Parsed]]:
    """``(format, records)`` of one file; an unknown extension is one rejected record."""
    suffix = file_suffix(name)
    if suffix == "jsonl":
        return "jsonl", read_jsonl(data)
    if suffix == "json":
        return "json", read_json_list(data, "{question, answer} (or MedArk {q, a}) objects")
    if suffix == "csv":
        return "csv", _read_csv(data)
    rejection = Rejection(
        None,
        Rule.UNSUPPORTED_FORMAT,
        f"unsupported file extension {suffix!r}; a knowledge-base file is .jsonl, .csv or .json",
        excerpt_of(data[:120]),
    )
    return "unknown", iter([rejection])


def count_qa_records(name: str, data: bytes) -> int:
    """How many records a file holds, counted without parsing them as QA pairs.

    The independent side of ``records read = documents + duplicates + quarantined``: non-blank
    lines for JSONL, list items for JSON, data rows for CSV, 1 for a file that cannot be read.
    """
    suffix = file_suffix(name)
    body = data.removeprefix(_BOM)
    try:
        if suffix == "jsonl":
            return sum(1 for line in body.splitlines() if line.strip())
        if suffix == "json":  # the reader's own split: a deep or huge item is one record
            return max(1, sum(1 for _ in read_json_list(body, "QA pair")))
        if suffix == "csv":
            rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
            return max(1, sum(1 for row in rows[1:] if any(cell.strip() for cell in row)))
    except (ValueError, csv.Error):
        pass  # unreadable: the whole file is one quarantined record
    return 1


def _read_csv(data: bytes) -> Iterator[Parsed]:
    text = decode_utf8(data)
    if isinstance(text, Rejection):
        yield text
        return
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [key for key in QA_KEYS if key not in header]
        if missing:
            yield Rejection(
                None,
                Rule.WRONG_KEYS,
                f"CSV header lacks {missing} (header: {shown_names(header)}); the columns are "
                "question, answer and optionally source",
                excerpt_of(text[:200]),
            )
            return
        for index, row in enumerate(reader):
            if not any((value or "").strip() for value in row.values()):
                continue  # blank line: layout, not a record
            yield index, {key: row.get(key) for key in (*QA_KEYS, "source")}
    except csv.Error as err:
        yield Rejection(
            None, Rule.UNPARSEABLE_FILE, f"file is not readable CSV: {err}", excerpt_of(text[:200])
        )


def validate_qa(
    record_index: int, raw: Any, source: SourceFile, source_format: str, limits: KbLimits
) -> QaDocument | Rejection:
    """Accept ``raw`` as a normalised QA document or reject it with the first rule it breaks."""
    try:
        question, answer, origin = _fields(raw)
        question = _text("question", question, limits.max_question_chars)
        answer = _text("answer", answer, limits.max_answer_chars)
    except RecordError as err:
        return Rejection(record_index, err.rule, str(err), excerpt_of(raw))
    return QaDocument(
        doc_id=normalised_doc_id(question, answer),
        question=question,
        answer=answer,
        source=origin,
        language=detect_language(f"{question} {answer}"),
        source_file=source.name,
        file_sha256=source.sha256,
        record_index=record_index,
        source_format=source_format,
    )


def _fields(raw: Any) -> tuple[Any, Any, str | None]:
    if not isinstance(raw, dict):
        raise RecordError(
            Rule.WRONG_SHAPE, f"expected a {{question, answer}} object, got {type(raw).__name__}"
        )
    if all(key in raw for key in QA_KEYS):
        question, answer = raw["question"], raw["answer"]
    elif all(key in raw for key in MEDARK_KEYS):
        question, answer = raw["q"], raw["a"]
    else:
        keys = shown_names(sorted(map(str, raw)))
        raise RecordError(
            Rule.WRONG_KEYS,
            f"no question/answer (or MedArk q/a) keys (keys: {keys}); "
            "name the fields 'question' and 'answer'",
        )
    origin = raw.get("source")
    if isinstance(origin, int | float) and not isinstance(origin, bool):
        origin = str(origin)  # numeric source ids are common in exports and unambiguous
    if origin is not None and not isinstance(origin, str):
        raise RecordError(Rule.WRONG_TYPE, f"source must be a string, got {type(origin).__name__}")
    return question, answer, (origin.strip() or None) if origin else None


def _text(field_name: str, value: Any, max_chars: int) -> str:
    if value is None:
        raise RecordError(Rule.EMPTY_TEXT, f"{field_name} is missing (null)")
    if not isinstance(value, str):
        raise RecordError(
            Rule.WRONG_TYPE, f"{field_name} must be a string, got {type(value).__name__}"
        )
    if _REPLACEMENT in value:
        raise RecordError(
            Rule.NOT_UTF8,
            f"{field_name} contains U+FFFD replacement characters: the text was decoded with the "
            "wrong encoding before export; re-export it from the original as UTF-8",
        )
    if is_blank(value):
        raise RecordError(Rule.EMPTY_TEXT, f"{field_name} is empty or whitespace")
    text = normalise(value)
    if len(text) > max_chars:
        raise RecordError(
            Rule.TEXT_TOO_LONG,
            f"{field_name} has {len(text)} characters, over the limit of {max_chars} "
            "(KbLimits; split long articles into several QA pairs)",
        )
    for token in RESERVED_TOKENS:
        if token in text:
            raise RecordError(
                Rule.RESERVED_TOKEN,
                f"{field_name} contains the chat-template token {token!r}; retrieved answers are "
                "pasted into training prompts, where it would be read as a control token",
            )
    return text
