"""A labelled PHI evaluation set built from FAKE identities, and the scores of a detector on it.

Every example is one consultation sentence (Chinese or English) with zero or more identifiers
filled into slots, and the exact span and type of each. The identities are fake by
construction: "555-01xx" telephone numbers (reserved for fiction in North America), mainland
numbers padded with zeros, resident IDs with the non-existent region code 000000, SSNs in the
never-issued 000 area, ``example.com`` / ``example.org`` addresses (RFC 2606), IPs from the
RFC 5737 documentation ranges, and names, streets and hospitals made of words like 测试, 示例,
"Testperson", "Example". About a third of the sentences are *hard negatives*: temperatures,
doses, blood pressures, lab values, durations, bare years, ages, drug names, and words that
look like names or titles ("王者荣耀", "谢谢医生", "dry cough", "Mark the days").

    python -m ark_assets.testing.phi_eval        # prints the precision/recall table as markdown
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ark_assets.lib.compliance.phi import (
    ADDRESS,
    DATE,
    EMAIL,
    EN_MONTHS,
    HOSPITAL,
    ID,
    IP,
    MRN,
    NAME,
    PHI_TYPES,
    PHONE,
    URL,
    Finding,
    find_phi,
    resident_id_valid,
)

SEED = 20250711
EXAMPLES_PER_LANGUAGE = 400
NEGATIVE_SHARE = 0.35


@dataclass(frozen=True)
class Label:
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    language: str
    text: str
    labels: tuple[Label, ...]


# --- fake values ----------------------------------------------------------------------------

_ZH_SURNAMES = "张李王赵刘陈杨黄周吴"
_ZH_GIVEN = ("测试", "示例", "样本", "虚构", "假名", "演示", "试", "例")
_EN_FIRST = ("Jane", "John", "Alex", "Mary", "Sam", "Chris", "Pat")
_EN_LAST = ("Testperson", "Placeholder", "Example", "Fakename", "Sampleton", "Dummyson")


def resident_id(rng: random.Random) -> str:
    """A checksum-valid 18-digit resident ID in the unassigned region 000000."""
    body = f"000000{rng.randint(1940, 2010)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body += f"{rng.randint(0, 999):03d}"
    return next(body + check for check in "0123456789X" if resident_id_valid(body + check))


def _zh_name(rng: random.Random) -> str:
    return rng.choice(_ZH_SURNAMES) + rng.choice(_ZH_GIVEN)


def _zh_phone(rng: random.Random) -> str:
    tail = f"{rng.randint(0, 9999):04d}"
    mobile = f"1{rng.choice('3589')}{rng.randint(0, 9)}0000{tail}"
    return rng.choice(
        (
            mobile,
            f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}",
            f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
            f"+86 {mobile}",
            f"010-0000{tail}",
            f"0755-0000{tail}",
            f"（021）0000{tail}",
        )
    )


def _zh_date(rng: random.Random) -> str:
    y, m, d = rng.randint(1950, 2024), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice((f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}", f"{m}月{d}号", f"{y}.{m}.{d}"))


def _zh_address(rng: random.Random) -> str:
    city = rng.choice(("测试市", "示例市", "虚构省样本市"))
    street = rng.choice(("示例路", "测试街", "样本大道", "演示巷"))
    unit = rng.choice(
        ("", f"{rng.randint(1, 20)}栋{rng.randint(1, 6)}单元", f"{rng.randint(101, 2502)}室")
    )
    return f"{city}{rng.choice(('', '演示区'))}{street}{rng.randint(1, 999)}号{unit}"


def _zh_hospital(rng: random.Random) -> str:
    return rng.choice(
        (
            f"{rng.choice(('示例市', '测试市'))}第{rng.choice('一二三')}人民医院",
            "测试大学附属医院",
            "虚构县中医院",
            "示例省立医院",
            "样本市妇幼保健院",
        )
    )


def _zh_mrn(rng: random.Random) -> str:
    return rng.choice(
        (
            f"TEST{rng.randint(0, 99999):05d}",
            f"FAKE-{rng.randint(0, 10**9 - 1):09d}",
            f"00{rng.randint(0, 99999):05d}",
        )
    )


def _en_name(rng: random.Random) -> str:
    return f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"


def _en_phone(rng: random.Random) -> str:
    area, line = rng.choice(("202", "212", "312", "415")), f"01{rng.randint(0, 99):02d}"
    return rng.choice(
        (
            f"({area}) 555-{line}",
            f"{area}-555-{line}",
            f"{area}.555.{line}",
            f"+1 {area}-555-{line}",
        )
    )


def _en_date(rng: random.Random) -> str:
    y, m, d = rng.randint(1940, 2024), rng.randint(1, 12), rng.randint(1, 28)
    month = EN_MONTHS[m - 1]
    return rng.choice(
        (f"{month} {d}, {y}", f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d} {month} {y}")
    )


def _en_address(rng: random.Random) -> str:
    name = rng.choice(("Example", "Fictional", "Sample", "Test"))
    street = f"{rng.randint(1, 9999)} {name} {rng.choice(('Street', 'Avenue', 'Road', 'Lane'))}"
    return rng.choice((street, f"{street}, Springfield", f"{street}, Testville, ZZ 00000"))


def _en_hospital(rng: random.Random) -> str:
    return rng.choice(
        (
            "Example General Hospital",
            "Fictional Valley Medical Center",
            "Springfield Sample Clinic",
            "Saint Placeholder Hospital",
        )
    )


def _en_mrn(rng: random.Random) -> str:
    return rng.choice(
        (
            f"TEST-{rng.randint(0, 9999):04d}",
            f"0000{rng.randint(0, 9999):04d}",
            f"FAKE{rng.randint(0, 99999):05d}",
        )
    )


def _en_ssn(rng: random.Random) -> str:
    return f"000-{rng.randint(10, 99)}-{rng.randint(0, 9999):04d}"


Fill = Callable[[random.Random], str]
_FILLS: dict[str, dict[str, Fill]] = {
    "zh": {
        NAME: _zh_name,
        PHONE: _zh_phone,
        ID: resident_id,
        MRN: _zh_mrn,
        EMAIL: lambda r: f"{rng_word(r)}.test{r.randint(1, 99)}@example.com",
        URL: lambda r: f"https://example.com/patient/{r.randint(1000, 9999)}",
        IP: lambda r: f"192.0.2.{r.randint(1, 254)}",
        DATE: _zh_date,
        ADDRESS: _zh_address,
        HOSPITAL: _zh_hospital,
    },
    "en": {
        NAME: _en_name,
        PHONE: _en_phone,
        ID: _en_ssn,
        MRN: _en_mrn,
        EMAIL: lambda r: f"{rng_word(r)}.testperson@example.org",
        URL: lambda r: f"https://portal.example.org/visit?id={r.randint(1000, 9999)}",
        IP: lambda r: f"198.51.100.{r.randint(1, 254)}",
        DATE: _en_date,
        ADDRESS: _en_address,
        HOSPITAL: _en_hospital,
    },
}


def rng_word(rng: random.Random) -> str:
    return rng.choice(("zhang", "li", "jane", "john", "wang", "alex"))


# --- carrier sentences ----------------------------------------------------------------------

# {TYPE} marks a slot; the label covers the filled value only (titles stay outside).
_TEMPLATES = {
    "zh": (
        "医生您好，我叫{NAME}，最近总是头疼，已经3天了。",
        "我的手机号是{PHONE}，检查结果出来麻烦通知我。",
        "身份证号{ID}，需要登记吗？我发烧38.5度。",
        "上次在{HOSPITAL}做的胃镜，{DATE}复查。",
        "我住在{ADDRESS}，离医院比较远，每天3次的药能改成2次吗？",
        "{NAME}医生，我孩子咳嗽两周了，体温37.8度。",
        "我的病历号是{MRN}，血压120/80 mmHg。",
        "报告发到我邮箱{EMAIL}吧，谢谢医生。",
        "出生日期{DATE}，今年35岁，血糖7.8 mmol/L。",
        "家属{NAME}的电话是{PHONE}。",
        "我在{HOSPITAL}住院，{DATE}出院后一直乏力。",
        "预约链接是{URL}，打不开怎么办？",
        "远程问诊登录IP是{IP}，视频一直卡。",
        "我是{NAME}先生的女儿，他2019年做过心脏支架。",
        "医保卡号 {MRN}，阿莫西林每次0.5克能报销吗？",
        "有事可以打座机{PHONE}或者手机{PHONE}。",
        "我的身份证是{ID}，{NAME}女士是我母亲。",
        "谢谢{NAME}大夫，我按您说的每天吃2片。",
        "住院号：{MRN}，术后第5天还有低烧。",
        # Known limit, kept in so the score says so: a name with no title and no cue.
        "昨天和{NAME}一起去的急诊，抽血查了血常规。",
    ),
    "en": (
        "Hi doctor, my name is {NAME} and I've had a fever of 101.5 for 3 days.",
        "You can reach me at {PHONE} after 5 pm.",
        "My SSN is {ID}, do you need it for the referral?",
        "I was seen at {HOSPITAL} on {DATE} for chest pain.",
        "I live at {ADDRESS}, about 20 minutes from the clinic.",
        "Dr. {NAME} told me to take 500 mg twice a day.",
        "My medical record number is {MRN} and my blood pressure was 120/80 mmHg.",
        "Please send the results to {EMAIL}.",
        "Date of birth {DATE}, I'm 45 years old.",
        "My wife Mrs. {NAME} can be reached on {PHONE}.",
        "The portal link {URL} keeps timing out.",
        "The telehealth app shows my IP as {IP}.",
        "My insurance ID is {MRN}; does it cover the MRI?",
        "I'm {NAME}, the patient's son.",
        "Call {PHONE} if the swelling gets worse.",
        "I had surgery at {HOSPITAL} and my follow-up is on {DATE}.",
        "Thanks Mr. {NAME}, I will take 2 tablets every 6 hours.",
        # Known limit, kept in so the score says so: a name with no honorific and no cue.
        "{NAME} has been my caregiver since the stroke.",
    ),
}

_NEGATIVES = {
    "zh": (
        "我玩王者荣耀到凌晨2点，第二天头疼得厉害。",
        "谢谢医生的建议，我会按时吃药。",
        "请向医生咨询用药剂量，每次10毫克，每天2次。",
        "体温38.5度，心率110次/分，血压140/90 mmHg。",
        "2019年做过阑尾手术，3月份开始复发。",
        "孩子今年5岁，体重20公斤，咳嗽3天了。",
        "空腹血糖6.1，糖化血红蛋白7.2%，总胆固醇5.8 mmol/L。",
        "建议您去正规医院的皮肤科看一下。",
        "当地县医院说是肠胃炎，开了蒙脱石散。",
        "白细胞计数12.5×10^9/L，中性粒细胞百分比85%。",
        "布洛芬缓释胶囊0.3g，每12小时一次，连续服用不超过5天。",
        "张口困难已经2周了，下颌关节疼。",
        "高血压10年，一直吃硝苯地平，每天1片。",
        "我先生最近总失眠，医生说要查甲状腺。",
        "第3腰椎间盘突出，L4-L5节段压迫神经。",
        "每天喝水2000毫升，尿量正常，体重下降了3公斤。",
        "视力0.8，眼压21 mmHg，左眼有点模糊。",
        "我的手机坏了，所以晚回复了，抱歉。",
        "黄体酮针剂打了7天，月经还没来。",
        "建议到三甲医院的男科医院进一步检查。",
        "石膏固定6周，拆了以后再做康复。",
        "服用金银花颗粒3天，嗓子还是疼。",
    ),
    "en": (
        "I have a dry cough and a sore throat for 2 weeks.",
        "My blood pressure was 140/90 and my pulse 88.",
        "Take ibuprofen 400 mg every 6 hours, no more than 3 days.",
        "I had my appendix out in 2019.",
        "The Dr. said it was probably viral.",
        "I'm allergic to penicillin and Sulfa drugs.",
        "My A1C is 7.2 and LDL 130 mg/dL.",
        "She is 35 years old, 5 feet 4 inches, 150 pounds.",
        "I went to the Emergency Room last night.",
        "Drink 8 glasses of water a day and rest for 1-2 weeks.",
        "The pain is 7 out of 10, worse at 3 am.",
        "Is Tylenol or Advil better for a fever of 38.5 C?",
        "My Hemoglobin was 13.5 g/dL and platelets 250,000.",
        "Mark the days on a calendar when the headaches start.",
        "I take Lipitor 20 mg and Metformin 500 mg.",
        "I'm Feeling better since Monday, thanks.",
        "The doctor at the Pulmonary Medicine Clinic ordered a CT.",
        "Grace period for my prescription ends in May.",
        "My ratio was 3.5 and my INR 2.1 last week.",
        "I have had 3-4 episodes a day for 10 days.",
    ),
}

_SLOT = re.compile(r"\{([A-Z]+)\}")


def _fill(
    template: str, fills: dict[str, Fill], rng: random.Random
) -> tuple[str, tuple[Label, ...]]:
    text, labels, cursor = "", [], 0
    for m in _SLOT.finditer(template):
        text += template[cursor : m.start()]
        value = fills[m.group(1)](rng)
        labels.append(Label(m.group(1), len(text), len(text) + len(value)))
        text += value
        cursor = m.end()
    return text + template[cursor:], tuple(labels)


def build_examples(seed: int = SEED, per_language: int = EXAMPLES_PER_LANGUAGE) -> list[Example]:
    """The evaluation set: the same seed always gives the same examples."""
    rng = random.Random(seed)
    examples = []
    for language in ("zh", "en"):
        for _ in range(per_language):
            if rng.random() < NEGATIVE_SHARE:
                examples.append(Example(language, rng.choice(_NEGATIVES[language]), ()))
            else:
                text, labels = _fill(rng.choice(_TEMPLATES[language]), _FILLS[language], rng)
                examples.append(Example(language, text, labels))
    return examples


# --- scoring --------------------------------------------------------------------------------


@dataclass
class Scores:
    gold: int = 0
    predicted: int = 0
    exact: int = 0  # predictions equal to a gold span of the same type
    pred_overlapping: int = 0  # predictions overlapping a gold span of the same type
    gold_overlapped: int = 0  # gold spans overlapped by a prediction of the same type

    @staticmethod
    def _f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def precision(self) -> float:
        return self.exact / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.exact / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        return self._f1(self.precision, self.recall)

    @property
    def overlap_precision(self) -> float:
        return self.pred_overlapping / self.predicted if self.predicted else 1.0

    @property
    def overlap_recall(self) -> float:
        return self.gold_overlapped / self.gold if self.gold else 1.0

    @property
    def overlap_f1(self) -> float:
        return self._f1(self.overlap_precision, self.overlap_recall)


ALL = "ALL"
Detector = Callable[[str, str], Sequence[Finding]]


def _overlaps(a: Label | Finding, b: Label | Finding) -> bool:
    return a.type == b.type and a.start < b.end and b.start < a.end


def evaluate(
    detector: Detector = find_phi, examples: Sequence[Example] | None = None
) -> dict[str, Scores]:
    """Per-type scores (and ``ALL``, micro-averaged): span-exact and same-type overlap."""
    scores = {phi_type: Scores() for phi_type in (*PHI_TYPES, ALL)}
    for example in examples if examples is not None else build_examples():
        predicted = list(detector(example.text, example.language))
        gold_keys = {(g.type, g.start, g.end) for g in example.labels}
        for g in example.labels:
            for key in (g.type, ALL):
                scores[key].gold += 1
                scores[key].gold_overlapped += any(_overlaps(g, p) for p in predicted)
        for p in predicted:
            for key in (p.type, ALL):
                scores[key].predicted += 1
                scores[key].exact += (p.type, p.start, p.end) in gold_keys
                scores[key].pred_overlapping += any(_overlaps(p, g) for g in example.labels)
    return scores


def markdown_table(scores: dict[str, Scores]) -> str:
    header = ["type", "gold", "predicted", "P exact", "R exact", "F1 exact"]
    header += ["P overlap", "R overlap", "F1 overlap"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for phi_type, s in scores.items():
        values = (s.precision, s.recall, s.f1, s.overlap_precision, s.overlap_recall, s.overlap_f1)
        cells = [phi_type, str(s.gold), str(s.predicted), *(f"{v:.3f}" for v in values)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    examples = build_examples()
    negatives = sum(not e.labels for e in examples)
    print(
        f"PHI evaluation: {len(examples)} sentences ({negatives} hard negatives), seed {SEED}, "
        "detector ark_assets.lib.compliance.phi.find_phi\n"
    )
    print(markdown_table(evaluate(find_phi, examples)))


if __name__ == "__main__":
    main()
