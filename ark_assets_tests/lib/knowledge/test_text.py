"""Text normalisation and the stable document id."""

import pytest

from ark_assets.lib.knowledge.text import doc_id, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  发烧\u3000 三天\n\n怎么办 ", "发烧 三天 怎么办"),
        ("头\u200b痛\ufeff", "头痛"),
        ("ＣＴ检查１２３", "CT检查123"),
        ("发烧,怎么办?", "发烧，怎么办？"),
        ("发烧（38度）!", "发烧（38度）！"),
        ("Is it bad？ Yes，maybe！", "Is it bad? Yes,maybe!"),
        ("每次1.5片, 10:30服用", "每次1.5片， 10:30服用"),
        ("e\u0301", "\u00e9"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_normalise_is_idempotent() -> None:
    text = " 孩子发烧,  怎么办?（急）ＡＢ\u200b "
    assert normalise(normalise(text)) == normalise(text)


def test_doc_id_ignores_layout_and_punctuation_width() -> None:
    a = doc_id("发烧,怎么办?", "多喝水 。")
    b = doc_id("  发烧，怎么办？", "多喝水\u3000。\n")
    assert a == b
    assert len(a) == 64 and int(a, 16) >= 0


def test_doc_id_separates_question_from_answer() -> None:
    assert doc_id("a b", "c") != doc_id("a", "b c")
    assert doc_id("发烧", "多喝水") != doc_id("发烧", "多喝热水")
