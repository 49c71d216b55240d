"""What a dialogue record is, and the rules that accept it or send it to quarantine.

A *record* is one candidate dialogue as read from a file (a JSONL line, an element of a JSON
list, a group of long-table rows). ``validate_record`` turns it into either an accepted
``Dialogue`` or a ``Rejection`` naming the rule it broke; nothing is dropped on the way, so for
every file ``records read = accepted + quarantined``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ark_assets.lib.language import SUPPORTED_LANGUAGES, detect_language, normalise_language

TURN_KEYS = ("patient", "doctor")
EXCERPT_CHARS = 240

# Text that would be read as chat-template control tokens when a record is rendered for
# training; a turn carrying them would corrupt label masks or inject fake tool calls.
RESERVED_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)
_TURN_KEY_SET = frozenset(TURN_KEYS)
_RESERVED = re.compile("|".join(re.escape(token) for token in RESERVED_TOKENS))
# A file-supplied name a message may quote: ASCII, identifier-like, short (see shown_name).
_SHOWABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_SHOWN_NAMES = 8
# Characters no text field may hold: NUL (C-string tools and many exporters end the text there)
# and lone surrogates (JSON's "\ud800" escape: not a character and not encodable as UTF-8, so
# hashing or storing the record would fail).
_INVALID_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


class Rule:
    """Quarantine rule names: stable identifiers stored with every quarantined record."""

    UNSUPPORTED_FORMAT = "unsupported_format"
    UNPARSEABLE_FILE = "unparseable_file"
    UNPARSEABLE_RECORD = "unparseable_record"
    NOT_UTF8 = "not_utf8"
    WRONG_SHAPE = "wrong_shape"
    WRONG_KEYS = "wrong_keys"
    WRONG_TYPE = "wrong_type"
    NO_TURNS = "no_turns"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    TOO_MANY_TURNS = "too_many_turns"
    INVALID_LANGUAGE = "invalid_language"
    RESERVED_TOKEN = "reserved_token"
    ROLE_ORDER = "role_order"
    INVALID_CHARACTER = "invalid_character"

    ALL = (
        UNSUPPORTED_FORMAT,
        UNPARSEABLE_FILE,
        UNPARSEABLE_RECORD,
        NOT_UTF8,
        WRONG_SHAPE,
        WRONG_KEYS,
        WRONG_TYPE,
        NO_TURNS,
        EMPTY_TEXT,
        TEXT_TOO_LONG,
        TOO_MANY_TURNS,
        INVALID_LANGUAGE,
        RESERVED_TOKEN,
        ROLE_ORDER,
        INVALID_CHARACTER,
    )


@dataclass(frozen=True)
class Limits:
    """Bounds a dialogue must respect to be accepted."""

    # Long enough for any real consultation turn; a 300k-character paste is an export error.
    max_turn_chars: int = 4000
    # Online consultations in the samples have at most ~30 turns; 64 leaves headroom.
    max_turns: int = 64


@dataclass(frozen=True)
class Dialogue:
    """An accepted dialogue: turns keep the key order they were read with."""

    record_index: int
    turns: list[dict[str, str]]
    language: str
    language_detected: bool
    source: str | None
    source_id: str | None
    source_format: str


@dataclass(frozen=True)
class Rejection:
    """A quarantined record: where it was, which rule it broke and what to do about it."""

    record_index: int | None  # None: the whole file
    rule: str
    message: str
    excerpt: str


class RecordError(ValueError):
    """Raised inside validation; carries the rule the record broke."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def excerpt_of(raw: Any) -> str:
    """A bounded, printable excerpt of a raw record for the quarantine table.

    Whatever ``raw`` is, the excerpt is valid UTF-8 text without NUL (it is stored like any other
    text): lone surrogates and NUL are shown as backslash escapes, and a value nested too deep to
    serialise is described instead of shown.
    """
    if isinstance(raw, bytes):
        text = repr(raw[: EXCERPT_CHARS * 2])
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, ensure_ascii=False, default=str)
        except (RecursionError, ValueError):
            text = f"<a {type(raw).__name__} nested too deep to show>"
    text = printable(text[: EXCERPT_CHARS + 1])
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def printable(text: str) -> str:
    """``text`` with lone surrogates and NUL as backslash escapes: storable, still readable."""
    if not _INVALID_CHARACTERS.search(text):
        return text
    escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return escaped.replace("\x00", "\\x00")


def shown_name(value: Any) -> str:
    """A file-supplied name or code (key, header cell, language) as a message may quote it.

    Messages reach the run logs, which are not PHI-tagged, and a headerless CSV or a shifted
    column puts record text where a name was expected: only identifier-like ASCII names are
    quoted, anything else is described by its length (the quarantine excerpt has the content).
    """
    text = str(value)
    if _SHOWABLE.fullmatch(text):
        return repr(text)
    return f"<{len(text)} characters, not shown>"


def shown_names(values: Iterable[Any]) -> str:
    """``[shown_name(v), ...]`` for the first few of ``values``."""
    names = list(values)
    parts = [shown_name(name) for name in names[:_SHOWN_NAMES]]
    if len(names) > _SHOWN_NAMES:
        parts.append(f"{len(names) - _SHOWN_NAMES} more")
    return "[" + ", ".join(parts) + "]"


def is_blank(text: str) -> bool:
    """True for text made only of whitespace and invisible format characters (e.g. U+200B)."""
    stripped = text.strip()
    if stripped and unicodedata.category(stripped[0]) != "Cf":
        return False  # the common case, decided without scanning the text
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in stripped)


def validate_record(
    record_index: int, raw: Any, source_format: str, limits: Limits
) -> Dialogue | Rejection:
    """Accept ``raw`` as a dialogue or reject it with the first rule it breaks."""
    try:
        return _to_dialogue(record_index, raw, source_format, limits)
    except RecordError as err:
        return Rejection(record_index, err.rule, str(err), excerpt_of(raw))


def _to_dialogue(record_index: int, raw: Any, source_format: str, limits: Limits) -> Dialogue:
    fields, turns_raw = _split_record(raw)
    turns = _validate_turns(turns_raw, limits)
    language, detected = _language(fields.get("language"), turns)
    return Dialogue(
        record_index=record_index,
        turns=turns,
        language=language,
        language_detected=detected,
        source=_optional_text(fields, "source"),
        source_id=_optional_text(fields, "source_id"),
        source_format=source_format,
    )


def _split_record(raw: Any) -> tuple[dict[str, Any], Any]:
    """Separate the descriptive fields of a record from its list of turns."""
    if isinstance(raw, list):
        return {}, raw
    if not isinstance(raw, dict):
        raise RecordError(
            Rule.WRONG_SHAPE,
            f"expected a dialogue object or a list of turns, got {type(raw).__name__}",
        )
    if "src" in raw and isinstance(raw["src"], dict):  # MedArk result file item {model, src}
        raw = raw["src"]
    for key in ("turns", "conversation"):
        if key in raw:
            return raw, raw[key]
    raise RecordError(
        Rule.WRONG_KEYS,
        f"no 'turns' or 'conversation' key (keys: {shown_names(sorted(raw))}); "
        "put the list of {patient, doctor} turns under 'turns'",
    )


def _validate_turns(turns_raw: Any, limits: Limits) -> list[dict[str, str]]:
    if turns_raw is None or (isinstance(turns_raw, list) and not turns_raw):
        raise RecordError(Rule.NO_TURNS, "the dialogue has no turns")
    if not isinstance(turns_raw, list):
        raise RecordError(
            Rule.WRONG_SHAPE, f"turns must be a list of objects, got {type(turns_raw).__name__}"
        )
    if len(turns_raw) > limits.max_turns:
        raise RecordError(
            Rule.TOO_MANY_TURNS,
            f"{len(turns_raw)} turns exceed the limit of {limits.max_turns} (Limits.max_turns)",
        )
    return [_validate_turn(i, turn, limits) for i, turn in enumerate(turns_raw)]


def _validate_turn(index: int, turn: Any, limits: Limits) -> dict[str, str]:
    if not isinstance(turn, dict):
        raise RecordError(
            Rule.WRONG_SHAPE,
            f"turn {index} must be an object with 'patient' and 'doctor', "
            f"got {type(turn).__name__}",
        )
    if turn.keys() != _TURN_KEY_SET:
        raise RecordError(
            Rule.WRONG_KEYS,
            f"turn {index} has keys {shown_names(turn)}; a turn has exactly 'patient' and "
            "'doctor' (lower case; rename user/assistant or role/content exports before loading)",
        )
    for key in turn:
        text = turn[key]
        if not isinstance(text, str):
            raise RecordError(
                Rule.WRONG_TYPE,
                f"turn {index} '{key}' must be a string, got {type(text).__name__}",
            )
        check_characters(f"turn {index} '{key}'", text)
        if is_blank(text):
            raise RecordError(Rule.EMPTY_TEXT, f"turn {index} '{key}' is empty or whitespace")
        if len(text) > limits.max_turn_chars:
            raise RecordError(
                Rule.TEXT_TOO_LONG,
                f"turn {index} '{key}' has {len(text)} characters, over the limit of "
                f"{limits.max_turn_chars} (Limits.max_turn_chars)",
            )
        reserved = _RESERVED.search(text)
        if reserved:
            raise RecordError(
                Rule.RESERVED_TOKEN,
                f"turn {index} '{key}' contains the chat-template token {reserved.group()!r}, "
                "which would be read as a control token in training data",
            )
    return turn


def _language(declared: Any, turns: list[dict[str, str]]) -> tuple[str, bool]:
    if declared is not None:
        if not isinstance(declared, str):
            raise RecordError(
                Rule.WRONG_TYPE, f"language must be a string, got {type(declared).__name__}"
            )
        code = normalise_language(declared)
        if code is None:
            raise RecordError(
                Rule.INVALID_LANGUAGE,
                f"language {shown_name(declared)} is not one of {list(SUPPORTED_LANGUAGES)} "
                "(ISO 639-1: Chinese is 'zh'); fix the field or leave it out to detect it",
            )
        return code, False
    text = " ".join(turn[key] for turn in turns for key in TURN_KEYS)
    detected = detect_language(text)
    if detected is None:
        raise RecordError(Rule.INVALID_LANGUAGE, "no language given and none detectable")
    return detected, True


def check_characters(where: str, text: str) -> None:
    """Raise ``invalid_character`` when ``text`` holds NUL or a lone surrogate."""
    found = _INVALID_CHARACTERS.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        what = "a NUL character (U+0000), which C-string tools read as the end of the text"
    else:
        what = f"a lone surrogate (U+{ord(found.group()):04X}), which is not a character"
    raise RecordError(
        Rule.INVALID_CHARACTER,
        f"{where} contains {what} at position {found.start()}; remove it from the export",
    )


def _optional_text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if isinstance(value, str):
        check_characters(key, value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # numeric ids are common in exports and unambiguous as text
    raise RecordError(Rule.WRONG_TYPE, f"{key} must be a string, got {type(value).__name__}")
