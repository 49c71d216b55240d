"""The entity lexicon and the keyword / overlap helpers of the rules teacher."""

from ark_assets.lib.synthesis import keywords, lexicon


def test_longest_term_wins_and_terms_never_overlap() -> None:
    found = lexicon.match("头痛三天了，头部没有外伤，吃过布洛芬", "zh")
    assert found == [("symptom", "头痛"), ("body_part", "头部"), ("medcine", "布洛芬")]


def test_english_terms_match_whole_words_only() -> None:
    found = lexicon.match("Any chest pain or a headache? Take ibuprofen; not 'painting'.", "en")
    assert found == [("symptom", "chest pain"), ("symptom", "headache"), ("medcine", "ibuprofen")]


def test_keywords_put_medical_terms_first_and_skip_filler() -> None:
    words = keywords.keywords("医生，我腿上长了好多小疙瘩，不痛不痒的，怎么回事？", "zh")
    assert words[:2] == ["腿", "疙瘩"]
    assert not {"医生", "怎么回事", "好多"} & set(words)
    english = keywords.keywords("My knee has been swollen and the swelling gets worse", "en")
    assert english[0] in ("knee", "swelling") and "the" not in english


def test_coverage_is_the_share_of_the_target_found_in_the_source() -> None:
    assert keywords.coverage("多喝水", "建议多喝水", "zh") == 1.0
    assert keywords.coverage("多喝水", "注意休息", "zh") == 0.0
    assert keywords.coverage("rest and drink water", "drink plenty of water", "en") == 2 / 3
    assert keywords.coverage("", "anything", "en") == 0.0
