"""PHI detectors fire on fake identifiers and leave medical content alone. All data is FAKE."""

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from ark_assets.lib.compliance import phi
from ark_assets.lib.compliance.phi import (
    find_phi,
    redact_dialogue,
    resident_id_valid,
    resident_region_known,
)
from ark_assets.testing.phi_eval import ALL, build_examples, evaluate, resident_id

ROOT = Path(__file__).resolve().parents[3]
FAKE_PHI = ROOT / "ark_assets_tests" / "fixtures" / "bad_inputs" / "09_phi_like_FAKE.jsonl"
SAMPLES = ROOT / "ark_assets" / "samples"


def found(text: str, language: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in find_phi(text, language)]


POSITIVE = [
    ("zh", "手机13800000000，有事联系", phi.PHONE, "13800000000"),
    ("zh", "电话 +86 139-0000-0012", phi.PHONE, "+86 139-0000-0012"),
    ("zh", "座机010-00000123，白天有人", phi.PHONE, "010-00000123"),
    ("zh", "身份证号000000199001011234", phi.ID, "000000199001011234"),
    ("zh", "我的病历号是MRN-TEST-0001。", phi.MRN, "MRN-TEST-0001"),
    ("zh", "医保卡号 FAKE-123456789，能报销吗", phi.MRN, "FAKE-123456789"),
    ("zh", "邮箱zhang.test@example.com吧", phi.EMAIL, "zhang.test@example.com"),
    ("zh", "链接是https://example.com/a/1，打不开", phi.URL, "https://example.com/a/1"),
    ("zh", "IP是192.0.2.15。", phi.IP, "192.0.2.15"),
    ("zh", "出生日期1990年1月2日，", phi.DATE, "1990年1月2日"),
    ("zh", "7月23日做的手术", phi.DATE, "7月23日"),
    ("zh", "住在测试市示例路1号3栋。", phi.ADDRESS, "测试市示例路1号3栋"),
    ("zh", "在示例市第一人民医院住院", phi.HOSPITAL, "示例市第一人民医院"),
    ("zh", "住在心内科3病区，", phi.HOSPITAL, "3病区"),
    ("zh", "谢谢王测试医生！", phi.NAME, "王测试"),
    ("zh", "我是李大夫。", phi.NAME, "李"),
    ("zh", "我叫张测试，头疼", phi.NAME, "张测试"),
    ("zh", "联系人欧阳示例的电话", phi.NAME, "欧阳示例"),
    ("en", "Call me at (202) 555-0143 tonight.", phi.PHONE, "(202) 555-0143"),
    ("en", "He will call you at 555-0100.", phi.PHONE, "555-0100"),
    ("en", "SSN 000-12-3456, ok?", phi.ID, "000-12-3456"),
    ("en", "passport number X00001234.", phi.ID, "X00001234"),
    ("en", "My insurance ID is TEST-INS-0000.", phi.MRN, "TEST-INS-0000"),
    ("en", "medical record number 00001234", phi.MRN, "00001234"),
    ("en", "email jane.testperson@example.com.", phi.EMAIL, "jane.testperson@example.com"),
    ("en", "See www.example.org/x.", phi.URL, "www.example.org/x"),
    ("en", "my IP is 198.51.100.7.", phi.IP, "198.51.100.7"),
    ("en", "DOB 01/02/1980, female", phi.DATE, "01/02/1980"),
    ("en", "born March 3, 1975 in", phi.DATE, "March 3, 1975"),
    (
        "en",
        "I live at 123 Example Street, Springfield.",
        phi.ADDRESS,
        "123 Example Street, Springfield",
    ),
    (
        "en",
        "seen at Fictional Valley Medical Center today",
        phi.HOSPITAL,
        "Fictional Valley Medical Center",
    ),
    ("en", "Dr. John Placeholder will call.", phi.NAME, "John Placeholder"),
    ("en", "Hi, I'm Jane Testperson, DOB", phi.NAME, "Jane Testperson"),
    ("en", "Thanks Mrs. Sampleton!", phi.NAME, "Sampleton"),
    # Numbers of other plans, which only phonenumbers' matcher knows (fictional ranges).
    ("en", "My sister in London: +44 20 7946 0958.", phi.PHONE, "+44 20 7946 0958"),
    ("en", "In Paris call +33 1 23 45 67 89 please", phi.PHONE, "+33 1 23 45 67 89"),
    ("zh", "我在德国，电话+49 30 12345678。", phi.PHONE, "+49 30 12345678"),
    ("zh", "日本的号码是+81 3-1234-5678", phi.PHONE, "+81 3-1234-5678"),
]


@pytest.mark.parametrize(("language", "text", "phi_type", "value"), POSITIVE)
def test_detector_finds_fake_identifier(
    language: str, text: str, phi_type: str, value: str
) -> None:
    assert (phi_type, value) in found(text, language)


NEGATIVE = [
    ("zh", "体温38.5度，每天3次，每次2片。"),
    ("zh", "血压120/80 mmHg，心率110次/分。"),
    ("zh", "2019年做过手术，咳嗽3天了，2周前开始发烧。"),
    ("zh", "今年35岁，体重60公斤，身高170厘米。"),
    ("zh", "空腹血糖6.1 mmol/L，白细胞12.5×10^9/L，尿量2000毫升。"),
    ("zh", "3月份开始疼，第3腰椎间盘突出，L4-L5节段。"),
    ("zh", "我玩王者荣耀到凌晨，谢谢医生的建议。"),
    ("zh", "请向医生咨询，建议去正规医院或者当地县医院看看。"),
    ("zh", "张口困难，高血压10年，石膏固定6周。"),
    ("zh", "号码是身份证上那个，病历号我忘了。"),
    ("zh", "身份证号000000199001011235看错了"),  # bad checksum and no label: see test below
    ("en", "I have a dry cough; The Dr. said it was viral."),
    ("en", "BP 140/90, pulse 88, temp 38.5 C, A1C 7.2, LDL 130 mg/dL."),
    ("en", "Ibuprofen 400 mg every 6 hours for 3 days; surgery in 2019; she is 35 years old."),
    ("en", "3-4 episodes a day, pain 7 out of 10, platelets 250,000, ratio 1.2.3"),
    ("en", "I'm allergic to Sulfa. I'm Feeling better since Monday."),
    ("en", "Mark the days when it starts. I went to the Emergency Room."),
    ("en", "The Pulmonary Medicine Clinic ordered a CT. Take it in May."),
    # What phonenumbers' matcher takes for numbers: a timestamp with its space lost, an IP.
    ("zh", "补充问题1：(2011-05-0519:36:43)5月份B超描述"),
    ("zh", "回复人的回复2012112902：13：28会好的"),
    ("en", "BP 145-100 at 7:30, ranges 90-120 and 350-600 per minute."),
    # ", ID" before a ZIP code is Idaho in an address, not an ID label.
    ("en", "We moved from Boise, ID 83702 in spring."),
]


@pytest.mark.parametrize(("language", "text"), NEGATIVE)
def test_medical_content_is_not_phi(language: str, text: str) -> None:
    if "看错了" in text:
        # The label still marks it: an ID written under 身份证号 is redacted even when mistyped.
        assert found(text, language) == [(phi.ID, "000000199001011235")]
        assert find_phi("编号000000199001011235", language) == []
        return
    assert found(text, language) == []


def _with_check_digit(body: str) -> str:
    return next(body + c for c in "0123456789X" if resident_id_valid(body + c))


def test_resident_id_checksum_date_and_region() -> None:
    assert resident_id_valid("11010519491231002X")  # the standard's worked example
    assert not resident_id_valid("110105194912310021")
    assert not resident_id_valid("000000199013011230")  # month 13, whatever the check digit
    # A day the calendar lacks (python-stdnum's date check; the old rule took any day <= 31).
    assert not any(resident_id_valid(f"11010519900230123{c}") for c in "0123456789X")
    fake = resident_id(random.Random(1))
    assert fake.startswith("000000") and resident_id_valid(fake)
    # Unlabelled, a number needs a region python-stdnum knows, in any year: 大新县 got 451424
    # in 2002, and people born before then who got their number after carry it (stdnum's own
    # is_valid rejects them); 451499 is no county (stdnum's is_valid raises KeyError on it).
    recoded, unknown = (
        _with_check_digit("45142419870801825"),
        _with_check_digit("45149919870801825"),
    )
    assert resident_region_known(recoded) and not resident_region_known(unknown)
    assert found(f"号码{recoded}。", "zh") == [(phi.ID, recoded)]
    assert found(f"号码{unknown}。", "zh") == found(f"号码{fake}。", "zh") == []
    assert found(f"号码{recoded[:-1]}{'0' if recoded[-1] != '0' else '1'}。", "zh") == []
    # Under a label any number is an ID, a fictional region or a typo included.
    assert found(f"身份证号{fake}。", "zh") == [(phi.ID, fake)]


def test_overlaps_keep_the_longest_span() -> None:
    kept = phi.resolve_overlaps(
        [
            phi.Finding(phi.PHONE, 5, 16, "a"),
            phi.Finding(phi.ID, 0, 18, "b"),
            phi.Finding(phi.NAME, 20, 22, "c"),
            phi.Finding(phi.DATE, 20, 22, "d"),
        ]
    )
    assert [(f.type, f.start) for f in kept] == [(phi.ID, 0), (phi.DATE, 20)]


def test_placeholders_are_consistent_across_turns_and_key_order_is_kept() -> None:
    turns = [
        {"patient": "我叫张测试，手机138 0000 0000。", "doctor": "张测试您好，是13800000000吗？"},
        {"doctor": "家属李示例的电话呢？", "patient": "李示例的是13900000001，张测试就是我。"},
    ]
    redacted, findings = redact_dialogue(turns, "zh")
    assert redacted == [
        {"patient": "我叫[NAME_1]，手机[PHONE_1]。", "doctor": "[NAME_1]您好，是[PHONE_1]吗？"},
        {"doctor": "家属[NAME_2]的电话呢？", "patient": "[NAME_2]的是[PHONE_2]，[NAME_1]就是我。"},
    ]
    assert [list(t) for t in redacted] == [list(t) for t in turns]
    assert {f.placeholder for f in findings} == {"[NAME_1]", "[NAME_2]", "[PHONE_1]", "[PHONE_2]"}


def test_english_name_parts_share_the_full_names_placeholder() -> None:
    turns = [
        {"patient": "I'm Jane Testperson.", "doctor": "Thanks Jane. Dr. Sam Example will see you."},
        {"patient": "Is Dr. Example in today?", "doctor": "Yes, Jane."},
    ]
    redacted, _ = redact_dialogue(turns, "en")
    assert redacted == [
        {"patient": "I'm [NAME_1].", "doctor": "Thanks [NAME_1]. Dr. [NAME_2] will see you."},
        {"patient": "Is Dr. [NAME_2] in today?", "doctor": "Yes, [NAME_1]."},
    ]


def fixture_records() -> list[dict]:
    return [json.loads(line) for line in FAKE_PHI.read_text(encoding="utf-8").splitlines()]


# Every fake identifier the fixture contains (read from the file, not guessed).
FIXTURE_IDENTIFIERS = [
    "张测试",
    "000000199001011234",
    "13800000000",
    "测试市示例路1号",
    "MRN-TEST-0001",
    "FAKE-123456789",
    "zhang.test@example.com",
    "李示例",
    "010-00000000",
    "Jane",
    "Testperson",
    "01/02/1980",
    "000-00-0000",
    "(555) 010-0199",
    "123 Example Street",
    "Springfield",
    "TEST-INS-0000",
    "jane.testperson@example.com",
    "John Placeholder",
    "555-0100",
]


def test_fake_phi_fixture_is_fully_redacted() -> None:
    records = [r for r in fixture_records() if r["source"] == "fixture"]
    assert len(records) == 2
    for record in records:
        raw = json.dumps(record["turns"], ensure_ascii=False)
        redacted, findings = redact_dialogue(record["turns"], record["language"])
        text = json.dumps(redacted, ensure_ascii=False)
        for identifier in FIXTURE_IDENTIFIERS:
            if identifier in raw:
                assert identifier not in text, identifier
        assert findings
    zh, _ = redact_dialogue(records[0]["turns"], "zh")
    assert zh[0]["doctor"] == "[NAME_1]您好，请问哪里不舒服？"
    assert zh[1]["doctor"] == "好的，我会联系您的家属[NAME_2]（电话[PHONE_2]）。"


def test_findings_never_hold_raw_values() -> None:
    record = fixture_records()[0]
    _, findings = redact_dialogue(record["turns"], "zh")
    values = {str(v) for f in findings for v in dataclasses.asdict(f).values()}
    raw_bits = {"13800000000", "张测试", "000000199001011234", "zhang.test@example.com"}
    assert not any(bit in value for value in values for bit in raw_bits)
    assert [f.name for f in dataclasses.fields(phi.PhiFinding)] == [
        "type",
        "turn",
        "role",
        "start",
        "end",
        "length",
        "detector",
        "placeholder",
    ]
    assert all(f.length == f.end - f.start and f.role in ("patient", "doctor") for f in findings)


def _sample_findings() -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for language in ("zh", "en"):
        for line in (
            (SAMPLES / f"dialogues_{language}_sample.jsonl").read_text("utf-8").splitlines()
        ):
            record = json.loads(line)
            _, findings = redact_dialogue(record["turns"], language)
            counts.update((language, f.type) for f in findings)
    return counts


def test_real_samples_keep_their_medical_content() -> None:
    # 600 real dialogues: what fires is named hospitals, exact dates of visits or surgery, a few
    # doctors introducing themselves ("我是刘医生", "I'm Dr. Li") and two reference URLs.
    # Nothing else; a jump here means a detector started eating medical text.
    counts = _sample_findings()
    assert set(counts) <= {
        ("zh", phi.HOSPITAL),
        ("zh", phi.DATE),
        ("zh", phi.NAME),
        ("zh", phi.URL),
        ("en", phi.NAME),
        ("en", phi.DATE),
        ("en", phi.HOSPITAL),
    }
    assert 40 <= sum(counts.values()) <= 70
    assert counts[("zh", phi.HOSPITAL)] <= 25 and counts[("zh", phi.NAME)] <= 12


def test_evaluation_set_is_seeded_and_fake() -> None:
    first, second = build_examples(), build_examples()
    assert first == second
    texts = "".join(e.text for e in first)
    for email_domain in ("@example.com", "@example.org"):
        assert email_domain in texts
    for example in first:
        for label in example.labels:
            value = example.text[label.start : label.end]
            if label.type == phi.EMAIL:
                assert value.endswith(("@example.com", "@example.org"))
            if label.type == phi.ID:
                assert value.startswith("000")


def test_evaluation_floor() -> None:
    scores = evaluate()
    # Measured: precision 1.000 for every type; recall 1.000 except NAME 0.842 (untitled names
    # are a known limit kept in the set) and ALL 0.955.
    assert scores[ALL].precision >= 0.97
    assert scores[ALL].recall >= 0.92
    for phi_type in phi.PHI_TYPES:
        assert scores[phi_type].precision >= 0.95, phi_type
        if phi_type != phi.NAME:
            assert scores[phi_type].recall >= 0.95, phi_type
    assert scores[phi.NAME].recall >= 0.8


def test_presidio_backend_is_optional() -> None:
    if phi.presidio_available():
        pytest.skip("presidio_analyzer installed: its findings depend on its spaCy models")
    assert phi.presidio_findings("Call 555-0100", "en") == []
    assert find_phi("Call 555-0100", "en", use_presidio=True) == find_phi("Call 555-0100", "en")
