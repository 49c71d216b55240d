"""Keywords and text overlap for the rules teacher (jieba for Chinese, word lists for English)."""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from functools import cache, lru_cache

from ark_assets.lib.synthesis import lexicon

# Kinds worth querying the knowledge base about, in the order a doctor would look them up.
_QUERY_KINDS = ("disease", "symptom", "medcine", "surgery", "medical_check", "body_part")

_ZH_STOPWORD_TEXT = (
    "医生 大夫 您好 你好 谢谢 请问 什么 怎么 怎么办 怎么回事 怎么样 这是 这个 那个 一下 一点 一些 "
    "好多 很多 最近 现在 今天 昨天 时候 感觉 觉得 知道 应该 需要 可以 可能 是不是 有没有 还是 "
    "就是 但是 因为 所以 如果 已经 没有 不是 一直 还有 比较 有点 然后 不过 问题 情况 这样 那样 "
    "我们 你们 他们 自己 孩子 宝宝 老公 老婆 妈妈 爸爸 医院 之前 以后 平时 经常 总是 总想"
)
_EN_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself doctor hello hi thanks thank yes okay ok
    well also really get got going like know think feel feeling lot little bit since still
    been day days week weeks time times today yesterday recently much many one two three
    dont don't im i'm it's ive i've"""
_ZH_STOPWORDS = frozenset(_ZH_STOPWORD_TEXT.split())
_EN_STOPWORDS = frozenset(_EN_STOPWORD_TEXT.split())
_CJK_OR_WORD = re.compile(r"[\u3400-\u9fff]|[a-z0-9]+", re.IGNORECASE)
_EN_WORD = re.compile(r"[a-z][a-z'-]+", re.IGNORECASE)


@cache
def _jieba_analyse():  # type: ignore[no-untyped-def]
    import jieba
    import jieba.analyse

    jieba.setLogLevel(logging.WARNING)
    return jieba.analyse


@lru_cache(maxsize=4096)
def _keywords(text: str, language: str, limit: int) -> tuple[str, ...]:
    found = [term for kind, term in lexicon.match(text, language) if kind in _QUERY_KINDS]
    if language == "zh":
        extra = [
            word
            for word in _jieba_analyse().extract_tags(text, topK=limit * 2)
            if len(word) > 1 and word not in _ZH_STOPWORDS and not word.isdigit()
        ]
    else:
        words = [w.lower() for w in _EN_WORD.findall(text)]
        counts = Counter(w for w in words if w not in _EN_STOPWORDS and len(w) > 2)
        extra = [w for w, _ in sorted(counts.items(), key=lambda i: (-i[1], words.index(i[0])))]
    ordered: dict[str, None] = {}
    for word in [*found, *extra]:
        if not any(word in kept or kept in word for kept in ordered):
            ordered[word] = None
    return tuple(ordered)[:limit]


def keywords(text: str, language: str, limit: int = 6) -> list[str]:
    """Medical lexicon terms of ``text`` first, then its most distinctive other words."""
    return list(_keywords(text, language, limit))


def units(text: str, language: str) -> set[str]:
    """What overlap is measured in: character bigrams for Chinese, content words for English."""
    if language == "zh":
        chars = _CJK_OR_WORD.findall(text.lower())
        return {a + b for a, b in itertools.pairwise(chars)}
    return {w.lower() for w in _EN_WORD.findall(text) if w.lower() not in _EN_STOPWORDS}


def coverage(target: str, source: str, language: str) -> float:
    """Share of ``target``'s units found in ``source`` (0 when ``target`` has none)."""
    wanted = units(target, language)
    return len(wanted & units(source, language)) / len(wanted) if wanted else 0.0
