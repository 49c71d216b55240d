"""MedArk keys must be byte-identical to MedArk's ``sha256(str(dialogue[0]).encode())``."""

import hashlib
import json

import pytest

from ark_assets.lib.hashing import dialogue_sha256, medark_key

HARD_STRINGS = [
    "脸上一直出豆豆。脸上出豆,用过很多东西,总是反反复复,都快没信心了。",
    'it\'s a "quoted" reply',
    "both ' and \" quotes",
    "back\\slash and \\n literal",
    "line\nbreak and\ttab and \r return",
    "emoji 🤒💊 and ZWJ 👩‍⚕️",
    "non-printable \x00\x07\x1b and \u200b zero width",
    "full-width ＡＢＣ１２３，。？！",
    "surrogate-free astral 𠀀 and combining é",
    "\u2028 line separator \u0085 next line",
]


@pytest.mark.parametrize("text", HARD_STRINGS)
def test_key_matches_str_repr_of_first_turn(text: str) -> None:
    turn = {"patient": text, "doctor": text[::-1]}
    assert medark_key(turn) == hashlib.sha256(str(turn).encode()).hexdigest()


@pytest.mark.parametrize("text", HARD_STRINGS)
def test_key_after_json_round_trip_equals_key_of_original(text: str) -> None:
    turn = {"patient": text, "doctor": "ok"}
    assert medark_key(json.loads(json.dumps(turn, ensure_ascii=False))) == medark_key(turn)


def test_key_follows_key_order_as_read() -> None:
    as_read = json.loads('{"doctor": "b", "patient": "a"}')
    assert medark_key(as_read) == hashlib.sha256(b"{'doctor': 'b', 'patient': 'a'}").hexdigest()
    assert medark_key(as_read) != medark_key({"patient": "a", "doctor": "b"})


def test_medark_readme_example() -> None:
    first = {
        "patient": "脸上一直出豆豆。脸上出豆,用过很多东西,总是反反复复,都快没信心了。",
        "doctor": "需要本人过来看看,特别是首诊很重要,以便准确诊断和确定治疗方案。",
    }
    expected = hashlib.sha256(str(first).encode()).hexdigest()
    assert medark_key(first) == expected


def test_dialogue_digest_ignores_key_order_but_not_text() -> None:
    a = [{"patient": "p", "doctor": "d"}]
    b = [{"doctor": "d", "patient": "p"}]
    c = [{"patient": "p ", "doctor": "d"}]
    assert dialogue_sha256(a) == dialogue_sha256(b)
    assert dialogue_sha256(a) != dialogue_sha256(c)
