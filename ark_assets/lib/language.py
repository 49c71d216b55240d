"""Language codes: normalising declared codes and detecting the language of dialogue text."""

from __future__ import annotations

import re

SUPPORTED_LANGUAGES = ("zh", "en")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
# A dialogue counts as Chinese when at least this share of its letters are Han characters: English
# drug names and units are common inside Chinese consultations, the reverse is rare.
_CJK_SHARE_FOR_ZH = 0.2


def normalise_language(code: str) -> str | None:
    """Map a declared language tag to a supported code (``zh-CN`` → ``zh``), or None."""
    primary = code.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else None


def detect_language(text: str) -> str | None:
    """``zh`` or ``en`` from the characters of ``text``; None when it has no letters at all."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    if cjk + latin == 0:
        return None
    return "zh" if cjk / (cjk + latin) >= _CJK_SHARE_FOR_ZH else "en"
