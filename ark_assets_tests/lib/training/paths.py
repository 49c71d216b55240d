"""Hand-built Ark paths with the shapes the synthesis stage produces."""

from ark_assets.lib.synthesis.models import (
    ArkPath,
    AskCheck,
    Entities,
    HitRecord,
    QueryResult,
    ReasoningCheck,
    RefinedResult,
    Response,
    RetrievalRequest,
    RetrievalRound,
    TeacherIdentity,
    Turn,
)

TEACHER = TeacherIdentity(backend="rules", model="rules-v1", note="test paths")


def ask_path(rounds: int = 2) -> ArkPath:
    """A Chinese asking path with retrieval rounds (one with an empty result)."""
    all_rounds = [
        RetrievalRound(
            request=RetrievalRequest(
                reasoning="患者头痛三天，需要了解头痛的常见原因。",
                queries=["头痛三天怎么回事", "头痛 发烧"],
            ),
            results=[
                QueryResult(
                    query="头痛三天怎么回事",
                    hits=[
                        HitRecord(
                            doc_id="d1",
                            question="头痛怎么办",
                            answer="多休息",
                            source=None,
                            score=0.8,
                        )
                    ],
                    refined=RefinedResult(refined_result="头痛常见于感冒、睡眠不足或高血压。"),
                ),
                QueryResult(query="头痛 发烧", hits=[], refined=None),
            ],
            check=ReasoningCheck(reasoning="还需要知道是否发烧。", deducible=False),
        ),
        RetrievalRound(
            request=RetrievalRequest(
                reasoning='需要确认"发烧"与头痛的关系\\n', queries=["发烧伴头痛"]
            ),
            results=[
                QueryResult(
                    query="发烧伴头痛",
                    hits=[],
                    refined=RefinedResult(refined_result="发热伴头痛多见于上呼吸道感染 🤒。"),
                )
            ],
            check=ReasoningCheck(reasoning="可以推断医生会追问体温。", deducible=True),
        ),
    ][:rounds]
    return ArkPath(
        batch="b1",
        conversation_id="k" * 64,
        medark_key="k" * 64,
        turn_index=1,
        language="zh",
        history=[Turn(patient="医生你好，我头疼。", doctor="疼了多久了？")],
        patient_message="三天了，晚上睡不好。",
        doctor_reply="有没有发烧？量过体温吗？",
        rounds=all_rounds,
        stop_reason="deducible" if rounds == 2 else "no new query request",
        ask_check=AskCheck(reasoning="以问号结尾", is_asking=True),
        detector_is_asking=True,
        response=Response(
            reasoning="需要体温信息才能判断。",
            is_asking=True,
            entities=Entities(symptom=["发烧"], medical_check=["体温"]),
            text="有没有发烧？量过体温吗？",
        ),
        teacher=TEACHER,
        prompt_versions={"first_pass": "v1"},
        kb="kb-test",
    )


def tell_path() -> ArkPath:
    """An English telling path without retrieval."""
    return ArkPath(
        batch="b1",
        conversation_id="t" * 64,
        medark_key="t" * 64,
        turn_index=0,
        language="en",
        history=[],
        patient_message='I have had a "dry" cough for a week.',
        doctor_reply="Drink warm fluids and rest; see a doctor if it lasts another week.",
        rounds=[],
        stop_reason="no new query request",
        ask_check=AskCheck(reasoning="no question", is_asking=False),
        detector_is_asking=False,
        response=Response(reasoning="Enough is known.", is_asking=False, text="Drink warm fluids."),
        teacher=TEACHER,
        prompt_versions={"first_pass": "v1"},
        kb=None,
    )
