"""The question detector: ask/tell on Chinese and English doctor replies."""

import pytest

from ark_assets.lib.synthesis.questions import detect, split_sentences


@pytest.mark.parametrize(
    ("reply", "asking"),
    [
        ("您是否最近接触了什么物质或者有其他症状？", True),
        ("嗯，用过什么药物吗？", True),
        ("扭伤有多久了", True),  # chat style: no punctuation, interrogative word
        ("请问孩子几岁了。", True),  # a request for information whatever the punctuation
        ("吃辅食蔬菜水果不？肚子涨不涨呢？", True),
        ("建议检查是否有感染。", False),  # reported speech, not a question
        ("可以口服柑桔冰梅片，多喝水，禁辛辣", False),
        ("不客气，如果您还有其他问题，请随时向我咨询。祝您早日康复。", False),
        ("按时吃药，还有其他问题吗？", False),  # a closing formula invites, does not ask
        ("明白了吗？", False),
    ],
)
def test_chinese_replies(reply: str, asking: bool) -> None:
    assert detect(reply, "zh").is_asking is asking


@pytest.mark.parametrize(
    ("reply", "asking"),
    [
        ("Hello! How long has this been going on?", True),
        ("Have you had a gastroscopy before? Have you been tested for H. pylori?", True),
        ("Tell me about the pain in your knee.", True),
        ("How old were they", True),
        ("Based on your symptoms, the diagnosis is gastritis. Keep a light diet.", False),
        ("I would like to examine your abdomen. Is that okay?", False),
        ("Do you have any other questions?", False),
        ("Great, let me pull them up here.", False),
    ],
)
def test_english_replies(reply: str, asking: bool) -> None:
    assert detect(reply, "en").is_asking is asking


def test_verdict_names_the_questions_and_their_cues() -> None:
    verdict = detect("根据您的描述，可能是过敏。您最近吃过海鲜吗？多喝水。", "zh")
    assert verdict.questions == ("您最近吃过海鲜吗？",)
    assert verdict.cues == ("？",)


def test_sentences_keep_their_punctuation() -> None:
    assert split_sentences("你好。疼吗？不疼", "zh") == ["你好。", "疼吗？", "不疼"]
    assert split_sentences("Hi. Does it hurt? No", "en") == ["Hi.", "Does it hurt?", "No"]
