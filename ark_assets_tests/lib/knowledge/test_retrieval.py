"""The retrieval API: MedArk's post-filter, rank fusion, BM25 with jieba."""

from ark_assets.lib.knowledge.lexical import Bm25Index, tokenize
from ark_assets.lib.knowledge.retrieval import Hit, KnowledgeRetriever, fuse, shares_chars


def _hit(doc_id: str, question: str, score: float = 0.0, answer: str = "答") -> Hit:
    return Hit(doc_id, question, answer, None, score)


KB = [
    _hit("fever", "孩子发烧三天怎么办", answer="多喝水，用布洛芬退烧"),
    _hit("joint", "关节疼痛是风湿吗", answer="查类风湿因子"),
    _hit("bp", "高血压药可以减量吗", answer="遵医嘱调整氨氯地平"),
    _hit("cough", "咳嗽有痰吃什么药", answer="可用氨溴索化痰"),
]


def _dense(ranking: list[Hit]):
    def search(query: str, n: int) -> list[Hit]:
        return ranking[:n]

    return search


def test_shares_chars_counts_question_characters_with_repetition() -> None:
    # MedArk: sum(1 for ch in question if ch in query) >= 3
    assert shares_chars("发烧", _hit("a", "发烧发烧"))  # 4 positions, 2 distinct characters
    assert not shares_chars("发烧", _hit("a", "发烧了吗"))  # 2 positions
    assert shares_chars("发烧了", _hit("a", "发烧了吗"))
    assert not shares_chars("发烧了", _hit("a", "发烧了吗"), min_shared=4)


def test_medark_filter_runs_on_the_top_k_and_may_return_fewer() -> None:
    retriever = KnowledgeRetriever(_dense([KB[1], KB[0], KB[2]]))
    assert retriever.medark_filter
    hits = retriever.search("孩子发烧了怎么办", k=2)
    assert [h.doc_id for h in hits] == ["fever"]  # the joint-pain hit shares < 3 characters
    unfiltered = KnowledgeRetriever(_dense([KB[1], KB[0], KB[2]]), medark_filter=False)
    assert [h.doc_id for h in unfiltered.search("孩子发烧了怎么办", k=2)] == ["joint", "fever"]


def test_empty_query_or_k_gives_nothing() -> None:
    retriever = KnowledgeRetriever(_dense(KB), medark_filter=False)
    assert retriever.search("   ", k=2) == [] and retriever.search("发烧", k=0) == []


def test_fuse_rewards_documents_both_rankings_hold() -> None:
    fused = fuse([[KB[0], KB[1], KB[2]], [KB[3], KB[0], KB[2]]], k=3)
    # fever 1/61+1/62 > bp 1/63+1/63 > cough 1/61 > joint 1/62 (cut at k=3)
    assert [h.doc_id for h in fused] == ["fever", "bp", "cough"]
    assert fused[0].score == 1 / 61 + 1 / 62
    assert fused[0].score > fused[1].score > fused[2].score


def test_fuse_breaks_ties_by_doc_id() -> None:
    fused = fuse([[KB[0], KB[2]], [KB[2], KB[0]]], k=2)
    assert [h.doc_id for h in fused] == ["bp", "fever"] and fused[0].score == fused[1].score


def test_tokenize_segments_chinese_and_lowercases_english() -> None:
    tokens = tokenize("孩子发烧，吃Ibuprofen 200mg可以吗？")
    assert "发烧" in tokens and "ibuprofen" in tokens and "200mg" in tokens
    assert "，" not in tokens and "？" not in tokens


def test_bm25_finds_exact_terms_in_answers() -> None:
    index = Bm25Index(KB)
    hits = index.search("氨溴索", 3)
    assert [h.doc_id for h in hits] == ["cough"] and hits[0].score > 0
    assert index.search("完全无关的词语", 3) == []
    assert index.search("", 3) == [] and Bm25Index([]).search("发烧", 3) == []


def test_hybrid_search_lifts_a_lexical_match_the_vectors_missed() -> None:
    dense_ranking = [KB[0], KB[1], KB[3], KB[2]]  # the vectors put the drug question last
    retriever = KnowledgeRetriever(
        _dense(dense_ranking), medark_filter=False, lexical=Bm25Index(KB)
    )
    assert retriever.hybrid
    assert retriever.search("氨氯地平", k=2)[0].doc_id == "bp"
    dense_only = KnowledgeRetriever(_dense(dense_ranking), medark_filter=False)
    assert "bp" not in [h.doc_id for h in dense_only.search("氨氯地平", k=2)]
