"""Text normalisation for QA pairs, and the stable document id derived from it.

Two exports of the same QA pair often differ only in layout: runs of spaces, a full-width
space, a zero-width character, ``发烧,怎么办?`` against ``发烧，怎么办？``. Normalising before
hashing makes them one document. The rules:

- Unicode NFC; invisible format characters (U+200B, U+FEFF, …) removed; every run of
  whitespace (full-width space and newlines included) becomes one space; ends stripped.
- Full-width letters and digits (``ＡＢＣ１２３``) become ASCII.
- The punctuation pairs ``, ? ! : ; ( )`` / ``，？！：；（）`` take the width of their context: full
  width when the nearest non-space neighbour on either side is a Han character, half width
  otherwise. ``.``/``。`` are left alone (``1.5`` must stay a number).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_HALF_TO_FULL = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；", "(": "（", ")": "）"}
_FULL_TO_HALF = {full: half for half, full in _HALF_TO_FULL.items()}
_PUNCTUATION = frozenset(_HALF_TO_FULL) | frozenset(_FULL_TO_HALF)
_WHITESPACE = re.compile(r"\s+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Full-width ASCII letters and digits: U+FF10–FF19, U+FF21–FF3A, U+FF41–FF5A.
_FULL_WIDTH_ALNUM = {
    code: code - 0xFEE0
    for block in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
    for code in range(block[0], block[1] + 1)
}


def is_han(char: str) -> bool:
    return bool(_HAN.match(char))


def normalise(text: str) -> str:
    """The canonical form of one question or answer (see the module docstring)."""
    text = unicodedata.normalize("NFC", text)
    if not text.isprintable():  # format characters are unprintable; most text has none
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _WHITESPACE.sub(" ", text).strip().translate(_FULL_WIDTH_ALNUM)
    return _fit_punctuation(text)


def _fit_punctuation(text: str) -> str:
    if not any(ch in _PUNCTUATION for ch in text):
        return text
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch not in _PUNCTUATION:
            continue
        beside_han = is_han(_neighbour(chars, i, -1)) or is_han(_neighbour(chars, i, 1))
        chars[i] = _HALF_TO_FULL.get(ch, ch) if beside_han else _FULL_TO_HALF.get(ch, ch)
    return "".join(chars)


def _neighbour(chars: list[str], index: int, step: int) -> str:
    """The nearest character on one side that is neither a space nor convertible punctuation."""
    i = index + step
    while 0 <= i < len(chars) and (chars[i] == " " or chars[i] in _PUNCTUATION):
        i += step
    return chars[i] if 0 <= i < len(chars) else ""


def doc_id(question: str, answer: str) -> str:
    """sha256 of the normalised question and answer, joined by a newline.

    Normalised text holds no newline, so the join is unambiguous; the id is stable across runs,
    machines and file formats, and is the Chroma id of the document.
    """
    return normalised_doc_id(normalise(question), normalise(answer))


def normalised_doc_id(question: str, answer: str) -> str:
    """``doc_id`` of text that is already normalised (skips normalising it again)."""
    return hashlib.sha256(f"{question}\n{answer}".encode()).hexdigest()
