"""PHI detection measured on labelled data not written alongside the detectors.

    python -m ark_assets.bench.phi [--placements 1500] [--sentences 1500] [--seed 20250712]

The template set in ``ark_assets/testing/phi_eval.py`` was written with the detectors: it
catches regressions, not real-world misses. Here the identities come from Faker and the text
around them from the bundled real sample dialogues, or from presidio-evaluator's generator:

- **Chinese**: Faker ``zh_CN`` identities (names, mobile numbers, resident IDs, addresses,
  dates, e-mails, URLs, IPs) placed into turns of ``samples/dialogues_zh_sample.jsonl``;
- **English**: Faker ``en_US`` identities, and phone numbers of nine other locales as Faker
  writes them, placed into turns of ``samples/dialogues_en_sample.jsonl``;
- **English, presidio-evaluator** (when installed; not a dependency: it needs the spaCy package,
  though no spaCy model): its sentence templates filled by its Faker-based generator. Its
  hospital provider queries WikiData when built; it is left out (no template uses it), so the
  set is the same offline and online.

A *placement* puts one identity at a sentence boundary of a real turn, alone or after a short
carrier phrase (``CARRIERS``: ours, and half of them without the cue words the detectors look
for). A detection that the same detector makes on the unchanged turn is the sample's own and is
not scored; every other detection that overlaps no placed identity is a false positive. Faker has
no hospitals and no record numbers, so ``HOSPITAL`` and ``MRN`` are not measured here.

Also measured on the same data: phone numbers found by the hand-written rules, by the
``phonenumbers`` matcher and by both; resident IDs accepted by their checksum alone, by
``stdnum.cn.ric.is_valid`` and by the detector's rule.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from faker import Faker

from ark_assets.bench.report import machine_description, write_section
from ark_assets.lib.artifacts import package_data
from ark_assets.lib.compliance import phi
from ark_assets.testing.phi_eval import Scores

SEED = 20250712
PLACEMENTS = 1500  # per language
SENTENCES = 1500  # presidio-evaluator sentences
ANY = "any identifier"

Detect = Callable[[str, str], Sequence[phi.Finding]]


@dataclass(frozen=True)
class Gold:
    type: str | None  # ours; None for an identifier type no detector claims
    start: int
    end: int
    subsets: tuple[str, ...]  # rows of their own: "cued", "bare", "international", …


@dataclass(frozen=True)
class Example:
    """``before + clause + after``; ``before + after`` is the unchanged sample text."""

    language: str
    before: str
    clause: str
    after: str
    gold: tuple[Gold, ...]

    @property
    def text(self) -> str:
        return self.before + self.clause + self.after


# --- placing Faker identities into real turns -----------------------------------------------

# "{}" is the identity. Cued carriers name what follows as a patient would; bare ones do not.
CARRIERS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "zh": {
        phi.NAME: {
            "cued": ("我叫{}", "患者姓名：{}", "{}医生您好", "家属{}陪我来的"),
            "bare": ("我是{}", "{}，女，45岁", "我老公{}也有这个毛病", "昨天{}陪我去的"),
        },
        phi.PHONE: {
            "cued": ("我的手机号是{}", "电话{}"),
            "bare": ("{}", "有问题打{}"),
        },
        phi.ID: {"cued": ("身份证号{}",), "bare": ("{}", "我的是{}")},
        phi.ADDRESS: {"cued": ("我住在{}", "家庭住址：{}"), "bare": ("{}，离医院很远",)},
        phi.DATE: {"cued": ("出生日期{}", "{}做的手术"), "bare": ("{}开始发烧", "{}")},
        phi.EMAIL: {"cued": ("邮箱{}",), "bare": ("{}",)},
        phi.URL: {"cued": ("链接{}",), "bare": ("{}",)},
        phi.IP: {"cued": ("IP是{}",), "bare": ("{}",)},
    },
    "en": {
        phi.NAME: {
            "cued": ("My name is {}", "I'm {}", "Dr. {} told me to come back", "This is {}"),
            "bare": ("{} has been my caregiver", "My husband {} has it too", "Ask {} at the desk"),
        },
        phi.PHONE: {
            "cued": ("You can reach me at {}", "My number is {}"),
            "bare": ("{}", "Same as before, {}"),
        },
        phi.ID: {"cued": ("My SSN is {}",), "bare": ("{}",)},
        phi.ADDRESS: {"cued": ("I live at {}", "My address is {}"), "bare": ("{}",)},
        phi.DATE: {"cued": ("I was born on {}", "My surgery was on {}"), "bare": ("Since {}",)},
        phi.EMAIL: {"cued": ("My email is {}",), "bare": ("{}",)},
        phi.URL: {"cued": ("The link is {}",), "bare": ("{}",)},
        phi.IP: {"cued": ("My IP is {}",), "bare": ("{}",)},
    },
}
# Where a patient abroad, or a relative, gives a number: Faker's own formats for each locale.
INTERNATIONAL_LOCALES = (
    "en_GB", "de_DE", "fr_FR", "en_AU", "en_IN", "ja_JP", "pt_BR", "es_ES", "it_IT",
)  # fmt: skip
# How often each type is placed (names and numbers are the most common in consultations).
WEIGHTS = {
    phi.NAME: 4, phi.PHONE: 3, phi.ID: 2, phi.ADDRESS: 2, phi.DATE: 3,
    phi.EMAIL: 1, phi.URL: 1, phi.IP: 1,
}  # fmt: skip
_ZH_DATE_FORMATS = (
    "{y}年{m}月{d}日",
    "{m}月{d}日",
    "{y}-{m:02d}-{d:02d}",
    "{y}.{m}.{d}",
    "{y}/{m}/{d}",
)
_EN_DATE_FORMATS = ("%B %d, %Y", "%m/%d/%Y", "%Y-%m-%d", "%d %B %Y", "%b %d")
_SENTENCE_END = {"zh": "。！？；", "en": ".!?"}


class Identities:
    """Faker's values per type, seeded; phone numbers tagged international or not."""

    def __init__(self, language: str, seed: int) -> None:
        self.language = language
        self.fake = Faker("zh_CN" if language == "zh" else "en_US")
        self.fake.seed_instance(seed)
        self.abroad = [Faker(locale) for locale in INTERNATIONAL_LOCALES]
        for index, fake in enumerate(self.abroad):
            fake.seed_instance(seed + index + 1)
        self.rng = random.Random(seed)

    def value(self, phi_type: str) -> tuple[str, str | None]:
        """A value of ``phi_type`` and its subset tag (``international`` for foreign phones)."""
        fake, rng = self.fake, self.rng
        if phi_type == phi.PHONE and self.language == "en" and rng.random() < 0.4:
            return rng.choice(self.abroad).phone_number(), "international"
        if phi_type == phi.DATE:
            day = fake.date_object()
            if self.language == "zh":
                form = rng.choice(_ZH_DATE_FORMATS)
                return form.format(y=day.year, m=day.month, d=day.day), None
            return day.strftime(rng.choice(_EN_DATE_FORMATS)), None
        produce: dict[str, Callable[[], str]] = {
            phi.NAME: fake.name if self.language == "zh" else (
                lambda: f"{fake.first_name()} {fake.last_name()}"
            ),
            phi.PHONE: fake.phone_number,
            phi.ID: fake.ssn,
            phi.ADDRESS: lambda: fake.address().replace("\n", ", "),
            phi.EMAIL: fake.email,
            phi.URL: fake.url,
            phi.IP: fake.ipv4,
        }  # fmt: skip
        return produce[phi_type](), None


def sample_turns(language: str) -> list[str]:
    """Every patient and doctor utterance of the bundled real sample dialogues."""
    name = f"dialogues_{language}_sample.jsonl"
    lines = package_data("samples", name).read_text(encoding="utf-8").splitlines()
    return [text for line in lines for turn in json.loads(line)["turns"] for text in turn.values()]


def _boundaries(text: str, language: str) -> list[int]:
    """Where a sentence may start: the turn's start and end, after a sentence-final mark (in
    English only when a space follows: "38.5" is one number)."""
    ends = _SENTENCE_END[language]
    inner = [
        i + 1
        for i, char in enumerate(text[:-1])
        if char in ends and (language == "zh" or text[i + 1].isspace())
    ]
    return [0, *inner, len(text)]


def place(language: str, count: int, seed: int) -> list[Example]:
    """``count`` real turns, each with one Faker identity placed at a sentence boundary."""
    rng = random.Random(seed)
    turns = sample_turns(language)
    identities = Identities(language, seed)
    types = [t for t, weight in WEIGHTS.items() for _ in range(weight)]
    end, space = ("。", "") if language == "zh" else (".", " ")
    examples = []
    for _ in range(count):
        text = rng.choice(turns)
        phi_type = rng.choice(types)
        style = rng.choice(("cued", "bare"))
        carrier = rng.choice(CARRIERS[language][phi_type][style])
        value, tag = identities.value(phi_type)
        at = rng.choice(_boundaries(text, language))
        before, after = text[:at], text[at:]
        lead = (
            "" if not before else (space if before[-1] in _SENTENCE_END[language] else end + space)
        )
        clause = lead + carrier.replace("{}", value, 1) + end + (space if after else "")
        start = len(before) + len(lead) + carrier.index("{}")
        gold = Gold(phi_type, start, start + len(value), (style, tag) if tag else (style,))
        examples.append(Example(language, before, clause, after.lstrip(), (gold,)))
    return examples


# --- presidio-evaluator's English sentences ---------------------------------------------------

# presidio-evaluator entity → our type; None: an identifier no detector here claims.
PRESIDIO_TYPES: dict[str, str | None] = {
    "PERSON": phi.NAME,
    "PHONE_NUMBER": phi.PHONE,
    "EMAIL_ADDRESS": phi.EMAIL,
    "IP_ADDRESS": phi.IP,
    "US_SSN": phi.ID,
    "US_DRIVER_LICENSE": phi.ID,
    "STREET_ADDRESS": phi.ADDRESS,
    "DATE_TIME": phi.DATE,
    "DOMAIN_NAME": phi.URL,
}
_NOT_DATES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def presidio_sentences(count: int, seed: int) -> list[Example] | None:
    """presidio-evaluator's generated sentences with their spans; None when not installed."""
    try:
        from presidio_evaluator.data_generator import (
            PresidioSentenceFaker,
            presidio_additional_entity_providers,
        )
        from presidio_evaluator.data_generator.faker_extensions import HospitalProvider
    except ImportError:
        return None
    providers = [p for p in presidio_additional_entity_providers if p is not HospitalProvider]
    generator = PresidioSentenceFaker(
        "en_US", lower_case_ratio=0.05, entity_providers=providers, random_seed=seed
    )
    examples = []
    for sample in generator.generate_new_fake_sentences(count):
        gold = []
        for span in sample.spans:
            ours = PRESIDIO_TYPES.get(span.entity_type)
            value = sample.full_text[span.start_position : span.end_position].strip()
            # A year or a weekday alone is not a Safe Harbor date element, nor a detector's claim.
            if ours == phi.DATE and (value.isdigit() or value.capitalize() in _NOT_DATES):
                ours = None
            subsets = () if ours else (f"{span.entity_type} (not claimed)",)
            gold.append(Gold(ours, span.start_position, span.end_position, subsets))
        examples.append(Example("en", "", sample.full_text, "", tuple(gold)))
    return examples


# --- scoring --------------------------------------------------------------------------------


def _overlap(a: Gold, b: phi.Finding) -> bool:
    return a.start < b.end and b.start < a.end


def score(examples: Iterable[Example], detect: Detect) -> dict[str, Scores]:
    """Per type (same-type spans), per subset (recall only), and ``ANY`` (the redaction view:
    a placed identity counts as caught when any detection overlaps it)."""
    rows: dict[str, Scores] = {}

    def row(key: str) -> Scores:
        return rows.setdefault(key, Scores())

    for example in examples:
        cut, shift = len(example.before), len(example.clause)
        own = set()
        for f in detect(example.before + example.after, example.language):
            if f.end <= cut:
                own.add((f.type, f.start, f.end))
            elif f.start >= cut:
                own.add((f.type, f.start + shift, f.end + shift))
        predicted = [
            f for f in detect(example.text, example.language) if (f.type, f.start, f.end) not in own
        ]
        for g in example.gold:
            same = [p for p in predicted if p.type == g.type and _overlap(g, p)]
            keys = list(g.subsets) if g.type is None else [g.type, *g.subsets, ANY]
            for key in keys:
                s = row(key)
                s.gold += 1
                # Unclaimed types: whether a detection of any type happens to cover it.
                redacted = key == ANY or g.type is None
                caught = any(_overlap(g, p) for p in predicted) if redacted else bool(same)
                s.gold_overlapped += caught
        for p in predicted:
            for key in (p.type, ANY):
                s = row(key)
                s.predicted += 1
                typed = key != ANY
                matches = [
                    g for g in example.gold if _overlap(g, p) and (not typed or g.type == p.type)
                ]
                s.pred_overlapping += bool(matches)
                s.exact += any((g.start, g.end) == (p.start, p.end) for g in matches)
    return rows


def table(rows: Mapping[str, Scores], order: Sequence[str]) -> str:
    """Recall and precision by overlap (exact spans in brackets); subsets show recall only."""
    lines = [
        "| row | placed | caught | recall | detections | precision |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in [*[k for k in order if k in rows], *sorted(set(rows) - set(order))]:
        s = rows[key]
        recall = f"{s.overlap_recall:.3f}" if s.gold else "—"
        if key in phi.PHI_TYPES or key == ANY:
            precision = f"{s.overlap_precision:.3f}" if s.predicted else "—"
            detections = str(s.predicted)
        else:
            precision = detections = ""
        name = f"**{key}**" if key == ANY else key
        lines.append(
            f"| {name} | {s.gold} | {s.gold_overlapped} | {recall} | {detections} | {precision} |"
        )
    return "\n".join(lines)


# --- the alternatives compared ----------------------------------------------------------------

PHONE_RULES = ("cn_mobile", "cn_landline", "us_phone")
PHONENUMBERS = ("phonenumbers_cn", "phonenumbers_us")


def detector(leave_out: Iterable[str] = ()) -> Detect:
    """``find_phi`` without the named detectors."""
    left_out = set(leave_out)
    registry = {name: d for name, d in phi.REGISTRY.items() if name not in left_out}
    return lambda text, language: phi.find_phi(text, language, registry=registry)


def phone_variants() -> dict[str, Detect]:
    variants = {"hand-written rules": detector(PHONENUMBERS)}
    if set(PHONENUMBERS) <= set(phi.REGISTRY):
        variants["phonenumbers"] = detector(PHONE_RULES)
        variants["both (the detector)"] = detector()
    return variants


def phone_rows(examples: Sequence[Example], texts: Sequence[tuple[str, str]]) -> str:
    """PHONE recall (all, international) and precision per variant; phone detections on the
    unchanged sample dialogues and KB texts, which hold no personal phone number."""
    lines = [
        "| phones found by | recall | recall, international | precision | on the unchanged samples | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, detect in phone_variants().items():
        clock = time.perf_counter()
        rows = score(examples, detect)
        seconds = time.perf_counter() - clock
        found = sum(f.type == phi.PHONE for lang, text in texts for f in detect(text, lang))
        s, intl = rows[phi.PHONE], rows.get("international", Scores())
        lines.append(
            f"| {name} | {s.overlap_recall:.3f} | {intl.overlap_recall:.3f} | "
            f"{s.overlap_precision:.3f} | {found} | {seconds:.1f} |"
        )
    return "\n".join(lines)


def _stdnum_strict(number: str) -> bool:
    from stdnum.cn import ric

    try:
        return ric.is_valid(number)
    except KeyError:  # python-stdnum 2.2 raises on a province-level region code
        return False


def resident_id_rows(seed: int, count: int = 3000) -> str:
    """Faker zh_CN resident IDs accepted (recall), and random 18-digit numbers with a valid
    check digit and birth date accepted (false alarms), per rule."""
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    ids = [fake.ssn() for _ in range(count)]
    rng = random.Random(seed)
    random_ids: list[str] = []
    while len(random_ids) < 10 * count:
        body = f"{rng.randrange(10**6):06d}{fake.date_of_birth().strftime('%Y%m%d')}{rng.randrange(1000):03d}"
        candidate = next(body + c for c in "0123456789X" if phi.resident_id_valid(body + c))
        random_ids.append(candidate)
    rules: dict[str, Callable[[str], bool]] = {
        "check digit and birth date (the rule before)": phi.resident_id_valid,
        "stdnum.cn.ric.is_valid (region must exist in the birth year)": _stdnum_strict,
    }
    if hasattr(phi, "resident_region_known"):
        rules["check digit, birth date and a region stdnum knows (the detector)"] = lambda n: (
            phi.resident_id_valid(n) and phi.resident_region_known(n)
        )
    lines = [
        f"| rule | Faker zh_CN IDs accepted (of {len(ids):,}) | random numbers with a valid check digit and birth date accepted (of {len(random_ids):,}) |",
        "|---|---:|---:|",
    ]
    for name, rule in rules.items():
        kept, alarms = sum(map(rule, ids)), sum(map(rule, random_ids))
        lines.append(f"| {name} | {kept / len(ids):.3f} | {alarms / len(random_ids):.3f} |")
    return "\n".join(lines)


def real_texts() -> list[tuple[str, str]]:
    """The unchanged sample turns and knowledge-base texts, with their language."""
    kb = package_data("samples", "kb_qa_sample.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in kb]
    return [
        *(("zh", t) for t in sample_turns("zh")),
        *(("en", t) for t in sample_turns("en")),
        *(("zh", p[field]) for p in pairs for field in ("question", "answer")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--placements", type=int, default=PLACEMENTS)
    parser.add_argument("--sentences", type=int, default=SENTENCES)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    order = [*phi.PHI_TYPES, "cued", "bare", "international", ANY]
    sets: dict[str, list[Example]] = {
        "Chinese: Faker zh_CN identities in the real zh sample turns": place(
            "zh", args.placements, args.seed
        ),
        "English: Faker en_US (+ 9 locales' phones) in the real en sample turns": place(
            "en", args.placements, args.seed
        ),
    }
    presidio = presidio_sentences(args.sentences, args.seed)
    if presidio is not None:
        sets["English: presidio-evaluator's generated sentences"] = presidio
    sections = [
        f"### {name} ({len(examples):,})\n\n{table(score(examples, phi.find_phi), order)}"
        for name, examples in sets.items()
    ]
    if presidio is None:
        sections.append(
            "### English: presidio-evaluator\n\nNot installed here: `pip install presidio-evaluator` "
            "(it brings spaCy and presidio-analyzer; no spaCy model is needed) and rerun."
        )
    placed = [e for name, examples in sets.items() if "real" in name for e in examples]
    body = f"""## PHI detection on data not written with the detectors

Command: `python -m ark_assets.bench.phi --placements {args.placements} --sentences {args.sentences} --seed {args.seed}` (part of `make bench`)
Machine: {machine_description()}; Python {platform.python_version()}

Recall: placed identities a detection of the same type overlaps (**any identifier**: a detection
of any type, i.e. the span is redacted). Precision: detections overlapping a placed identity,
among those the unchanged text did not already give. What the sets are: `ark_assets/bench/phi.py`.

{(chr(10) * 2).join(sections)}

### Phone numbers: hand-written rules vs phonenumbers (both placed sets)

{phone_rows(placed, real_texts())}

### Resident IDs: which numbers the rule accepts

{resident_id_rows(args.seed)}
"""
    write_section("phi", body)
    print(body)


if __name__ == "__main__":
    main()
