"""Detecting and redacting protected health information (PHI) in dialogue turns.

A *finding* is a span of a turn that identifies a person or lets one be found: a phone number,
an ID or record number, an e-mail, URL or IP address, an exact date, a postal address, a
hospital or ward, a person's name. ``find_phi`` returns the spans of one text; ``redact_dialogue``
replaces them, across a whole dialogue, with typed numbered placeholders:

    ``[<TYPE>_<n>]``  e.g. ``[NAME_1]``, ``[PHONE_2]``

``n`` counts the distinct values of that type in order of first appearance in the dialogue, so
the same value (compared after removing spaces, dashes and case) gets the same placeholder in
every turn, and two different people stay two different placeholders. Titles and honorifics
stay outside the span (``[NAME_1]医生``, ``Dr. [NAME_1]``): who is speaking to whom is training
signal, not PHI.

Every detector is a regex plus a validator (python-stdnum's for resident IDs; libphonenumber's
matcher for phone numbers of any country) chosen for *precision*: over-redaction destroys the
medical content the models learn from, so temperatures ("38.5度"), frequencies ("每天3次"),
blood pressure ("120/80 mmHg"), doses, lab values, durations ("3天", "2周"), bare years
("2019年") and ages ("35岁") never match. What is not detected is listed in docs/compliance.md.

The findings table (``PhiFinding``) records type, turn, role, offsets, length and detector,
never the raw value nor a hash of it: a hash of an 11-digit phone number is reversed by
enumerating the 10^11 candidates.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

PHONE = "PHONE"
ID = "ID"  # resident ID, SSN, passport and other personal ID numbers
MRN = "MRN"  # medical record, insurance, patient card numbers
EMAIL = "EMAIL"
URL = "URL"
IP = "IP"
DATE = "DATE"
ADDRESS = "ADDRESS"
HOSPITAL = "HOSPITAL"  # hospitals, clinics, wards and beds
NAME = "NAME"

# Overlapping spans: the longest wins; at equal length, the earlier type in this tuple.
PHI_TYPES = (EMAIL, URL, ID, MRN, PHONE, IP, DATE, ADDRESS, HOSPITAL, NAME)
_PRIORITY = {phi_type: rank for rank, phi_type in enumerate(PHI_TYPES)}

ZH = "zh"
EN = "en"
ANY = (ZH, EN)

_CJK = "\u4e00-\u9fff"


@dataclass(frozen=True)
class Finding:
    """One detected span of a text: ``text[start:end]`` is the PHI."""

    type: str
    start: int
    end: int
    detector: str


@dataclass(frozen=True)
class PhiFinding:
    """One row of the ``phi_findings`` table. Holds no raw value and no hash of one."""

    type: str
    turn: int  # 0-based turn index in the dialogue
    role: str  # "patient" or "doctor"
    start: int  # offsets in the original (unredacted) turn text
    end: int
    length: int
    detector: str
    placeholder: str  # e.g. "[PHONE_1]"; shared by every finding of the same value


Match = tuple[int, int]
Detect = Callable[[str], Iterator[Match]]


@dataclass(frozen=True)
class Detector:
    name: str
    type: str
    languages: tuple[str, ...]
    detect: Detect


REGISTRY: dict[str, Detector] = {}


def _register(
    name: str, phi_type: str, languages: tuple[str, ...] = ANY
) -> Callable[[Detect], Detect]:
    def add(detect: Detect) -> Detect:
        REGISTRY[name] = Detector(name, phi_type, languages, detect)
        return detect

    return add


def _spans(pattern: re.Pattern[str], text: str, group: int | str = 0) -> Iterator[Match]:
    for m in pattern.finditer(text):
        if m.group(group):
            yield m.span(group)


# --- identifiers with a fixed shape -------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# A URL ends at whitespace, CJK text or CJK punctuation; trailing ASCII punctuation is prose.
_URL = re.compile(
    r"(?<![A-Za-z0-9])(?:https?://|www\.)[^\s" + _CJK + r"\u3000-\u303f\uff00-\uffef<>\"']+"
)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")


@_register("email", EMAIL)
def _email(text: str) -> Iterator[Match]:
    return _spans(_EMAIL, text)


@_register("url", URL)
def _url(text: str) -> Iterator[Match]:
    for m in _URL.finditer(text):
        yield m.start(), m.start() + len(m.group().rstrip(".,;:!?)"))


@_register("ipv4", IP)
def _ipv4(text: str) -> Iterator[Match]:
    for m in _IPV4.finditer(text):
        if all(int(octet) <= 255 for octet in m.group().split(".")):
            yield m.span()


# --- resident ID (GB 11643-1999) and other ID numbers ------------------------------------

_ID18 = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_REGIONS = numdb.get("cn/loc")  # python-stdnum's administrative divisions, past and present


def resident_id_valid(number: str) -> bool:
    """GB 11643-1999's arithmetic: 18 characters, the ISO 7064 MOD 11-2 check character and a
    birth date that exists (python-stdnum's ``stdnum.cn.ric``), born 1900–2100. The region is
    ``resident_region_known``'s, so a number with a fictional region still passes here."""
    if not re.fullmatch(r"\d{17}[\dXx]", number):
        return False
    number = number.upper()
    if ric.calc_check_digit(number) != number[17]:
        return False
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return False
    return 1900 <= born.year <= 2100


def resident_region_known(number: str) -> bool:
    """Whether the first six digits are a county-level code in python-stdnum's list of China's
    divisions, in any year. ``stdnum.cn.ric.is_valid`` also wants the code to have existed in
    the birth year, which rejects everyone who got a number after their county was re-coded
    (it keeps 36% of Faker's IDs, ``bench.phi``), and raises KeyError on an unknown county."""
    parts = _REGIONS.info(number[:6])
    return len(parts) == 2 and "county" in parts[-1][1]


@_register("cn_resident_id", ID, (ZH, EN))
def _cn_resident_id(text: str) -> Iterator[Match]:
    # Unlabelled: a valid check digit, birth date and region (labelled_id takes any number
    # written after 身份证号 and the like, typos included).
    for m in _ID18.finditer(text):
        if resident_id_valid(m.group()) and resident_region_known(m.group()):
            yield m.span()


_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")


@_register("us_ssn", ID, (EN, ZH))
def _us_ssn(text: str) -> Iterator[Match]:
    return _spans(_SSN, text)


# A label names what the number is; the number must then contain a digit, which keeps words
# ("病历号已经给您了") out.
_ID_VALUE = r"(?P<v>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{3,}[A-Za-z0-9])"
_LABEL_TAIL = r"(?:\s*(?:是|为|:|：|#|No\.?|number|is)\s*)*\s*"
_ID_LABEL = re.compile(
    r"(?:身份证号码|身份证号|身份证|证件号码|证件号|护照号码|护照号|护照|军官证号?|"
    r"\b(?:SSN|[Ss]ocial [Ss]ecurity(?: [Nn]umber)?|[Pp]assport(?: [Nn]umber| [Nn]o\.?)?|"
    r"[Dd]river'?s [Ll]icen[cs]e(?: [Nn]umber)?|ID [Nn]umber|"
    # ", ID 83702" is Idaho and a ZIP code, the tail of an address.
    r"(?<!nsurance )(?<!ember )(?<!atient )(?<!, )ID))" + _LABEL_TAIL + _ID_VALUE
)
_MRN_LABEL = re.compile(
    r"(?:病历号码?|病案号|住院号|门诊号|就诊卡号|就诊号|医保卡号|医保号|医保卡|社保卡号|社保号|"
    r"保险单号|保单号|\b(?:MRN|[Mm]edical [Rr]ecord(?: [Nn]umber| [Nn]o\.?)?|"
    r"[Ii]nsurance(?: ID| [Nn]umber| [Nn]o\.?| card(?: number)?)|[Pp]olicy [Nn]umber|"
    r"[Mm]ember ID|[Pp]atient ID|[Cc]hart [Nn]umber))" + _LABEL_TAIL + _ID_VALUE
)
# Record numbers written with their own prefix, e.g. "MRN-0001234", need no label.
_MRN_PREFIXED = re.compile(r"\bMRN[-#:]?(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]*[A-Z0-9]\b")


@_register("labelled_id", ID)
def _labelled_id(text: str) -> Iterator[Match]:
    return _spans(_ID_LABEL, text, "v")


@_register("labelled_record_number", MRN)
def _labelled_record_number(text: str) -> Iterator[Match]:
    yield from _spans(_MRN_LABEL, text, "v")
    yield from _spans(_MRN_PREFIXED, text)


# --- phone numbers --------------------------------------------------------------------------

# Mainland mobile: 11 digits, 1 then 3-9 (no number plan starts 10, 11 or 12), optionally +86
# and written 3-4-4 with spaces or dashes.
_CN_MOBILE = re.compile(r"(?<![\d+])(?:\+?86[-\s]?)?1[3-9]\d(?:[-\s]?\d{4}){2}(?!\d)")
# Landline: trunk 0, 2-3 digit area code, a dash or brackets, 7-8 digit subscriber number.
_CN_LANDLINE = re.compile(r"(?<!\d)(?:0\d{2,3}-|[（(]0\d{2,3}[)）]\s?)\d{7,8}(?![\d-])")
_CN_LANDLINE_DIGITS = re.compile(r"\d")
_US_PHONE = re.compile(
    r"(?<![\d-])(?:\+?1[-.\s])?(?:\(\d{3}\)\s?|\d{3}[-.])\d{3}[-.]\d{4}(?![\d-])"
)
# A bare 7-digit "555-0100" only counts after a word that says a phone number follows.
_US_LOCAL = re.compile(
    r"\b(?:call|phone|reach|number|tel|text|cell|fax|dial)\b[^.\n\d]{0,20}?"
    r"(?P<v>(?<![\d-])\d{3}-\d{4})(?![\d-])",
    re.IGNORECASE,
)


@_register("cn_mobile", PHONE)
def _cn_mobile(text: str) -> Iterator[Match]:
    return _spans(_CN_MOBILE, text)


@_register("cn_landline", PHONE)
def _cn_landline(text: str) -> Iterator[Match]:
    for m in _CN_LANDLINE.finditer(text):
        digits = len(_CN_LANDLINE_DIGITS.findall(m.group()))
        if 10 <= digits <= 12:
            yield m.span()


@_register("us_phone", PHONE)
def _us_phone(text: str) -> Iterator[Match]:
    yield from _spans(_US_PHONE, text)
    yield from _spans(_US_LOCAL, text, "v")


# Numbers of any country's numbering plan, as people write them ("+44 20 7946 0958",
# "+33 (0)5 54 33 08 32"): Google's libphonenumber metadata, where the rules above know only
# mainland China's and North America's formats. Only numbers valid in their plan count
# (Leniency.VALID; POSSIBLE also takes blood pressures and lab ranges); a number without a
# country code is read in the region of the turn's language. Measured both ways in bench.phi.
_PHONE_REGIONS = {ZH: "CN", EN: "US"}
# What the matcher takes for a number but is not one: a dotted quad (an IP address, which ipv4
# reports), and a date glued to its time ("(2011-05-0519:36:43)", "2012112902：13：28").
_GLUED_TIME = re.compile(r"\s?[:：]\d")
# Most turns hold no run of six digits, and the matcher costs more than every rule above put
# together; a number of fewer than six digits (some small plans' local numbers) is not found.
_SIX_DIGITS = re.compile(r"(?:\d\D{0,3}){5}\d")


def _phonenumbers(region: str) -> Detect:
    def detect(text: str) -> Iterator[Match]:
        if not _SIX_DIGITS.search(text):
            return
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            if _IPV4.fullmatch(match.raw_string) or _GLUED_TIME.match(text, match.end):
                continue
            yield match.start, match.end

    return detect


for _language, _region in _PHONE_REGIONS.items():
    _register(f"phonenumbers_{_region.lower()}", PHONE, (_language,))(_phonenumbers(_region))


# --- dates ----------------------------------------------------------------------------------

# Exact dates only (a day is present); a year alone and "3月份" are not identifying, and all
# of them are common in histories ("2019年做过手术").
_MONTHS = "|".join(EN_MONTHS) + "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(?:(?:19|20)\d{2}\s*年\s*)?\d{1,2}\s*月\s*\d{1,2}\s*[日号](?!\d)"),
    re.compile(
        r"(?<![\d.-])(?:19|20)\d{2}([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?!\d|\.\d)"
    ),
    re.compile(
        r"(?<![\d/])(?:0?[1-9]|[12]\d|3[01])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d{2}(?![\d/])"
    ),
    re.compile(
        rf"\b(?:{_MONTHS})\.?\s+(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\b(?:,?\s+(?:19|20)\d{{2}}\b)?"
    ),
    re.compile(
        rf"\b(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b,?\s+(?:19|20)\d{{2}}\b"
    ),
)
_CN_MONTH_DAY = re.compile(r"(\d{1,2})\s*月\s*(\d{1,2})")


@_register("exact_date", DATE)
def _exact_date(text: str) -> Iterator[Match]:
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            month_day = _CN_MONTH_DAY.search(m.group())
            if month_day and not (1 <= int(month_day[1]) <= 12 and 1 <= int(month_day[2]) <= 31):
                continue
            yield m.span()


# --- places ---------------------------------------------------------------------------------

# Characters that end a place name when reading leftwards: pronouns, verbs and particles that
# sit right before an address or hospital in a sentence ("我住在…", "去了…医院").
_NOT_PLACE = (
    "我你他她它您们住在是的了址家位于到去从来和与及或过就还也都要想说看找请给把被该这那个些哪"
    "能会可推荐好点治查做入转回送最较很更么怎当"
)
_PLACE_CHAR = rf"(?:(?![{_NOT_PLACE}])[{_CJK}])"
_CN_ADDRESS = re.compile(
    rf"{_PLACE_CHAR}{{1,20}}?(?:路|街|大道|巷|弄|胡同)[\dA-Za-z一二三四五六七八九十]+号"
    r"(?:\s*\d+\s*(?:号楼|栋|幢|单元|室|楼|层))*"
)
_EN_STREET = (
    r"Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Court|Ct\.?|"
    r"Way|Place|Pl\.?|Terrace|Parkway"
)
_EN_ADDRESS = re.compile(
    rf"\b\d{{1,5}}\s+(?:[A-Z][a-z]+\s+){{1,3}}(?:{_EN_STREET})(?![A-Za-z])"
    r"(?:(?:,?\s+(?:Apt|Unit|Suite)\.?\s*\w+)?,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)?"
    r"(?:,?\s+[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?)?)?"
)


@_register("cn_address", ADDRESS, (ZH,))
def _cn_address(text: str) -> Iterator[Match]:
    return _spans(_CN_ADDRESS, text)


@_register("en_address", ADDRESS, (EN,))
def _en_address(text: str) -> Iterator[Match]:
    for m in _EN_ADDRESS.finditer(text):
        yield m.start(), m.start() + len(m.group().rstrip("."))


# A hospital is named only when its name carries something proper: a place level, an ordinal,
# a university or a well-known name. "正规医院", "男科医院", "乡镇医院" are kinds, not names.
_HOSPITAL_SUFFIX = "医院|卫生院|诊所|门诊部|保健院"
_CN_HOSPITAL = re.compile(rf"{_PLACE_CHAR}{{2,16}}?(?:{_HOSPITAL_SUFFIX})(?:[东西南北]院|分院)?")
_HOSPITAL_MARKERS = re.compile(
    rf"[{_CJK}]{{2}}[省市县区州]|[{_CJK}](?:第[一二三四五六七八九十\d]+|大学|学院|附属)|"
    r"协和|同济|华西|湘雅|齐鲁|仁济|瑞金|中山|军区|八一|解放军"
)
_WARD = re.compile(
    r"(?<![\d.])(?:\d{1,2}|[一二三四五六七八九十]{1,3})病区|(?<![\d.])\d{1,3}号?床(?![位垫单])"
)
_EN_HOSPITAL = re.compile(
    r"\b(?:(?:St\.|Saint)\s+)?(?:[A-Z][A-Za-z'&-]+\s+){1,4}"
    r"(?:Hospital|Medical Cent(?:er|re)|Clinic|Health Cent(?:er|re)|Infirmary)\b"
)
_EN_HOSPITAL_LEADING = frozenset(
    [
        "The",
        "A",
        "An",
        "Our",
        "My",
        "Your",
        "This",
        "That",
        "Local",
        "Emergency",
        "Urgent",
        "Care",
        "Walk-In",
    ]
)
# A name made only of these words is a kind of clinic ("Pulmonary Medicine Clinic").
_EN_HOSPITAL_KIND = frozenset(
    [
        "General",
        "Medicine",
        "Medical",
        "Pulmonary",
        "Cardiology",
        "Dental",
        "Eye",
        "Family",
        "Pediatric",
        "Children's",
        "Women's",
        "Cancer",
        "Mental",
        "Health",
        "Sleep",
        "Pain",
        "Fertility",
        "Dermatology",
        "Orthopedic",
        "Community",
        "Public",
        "Private",
        "Veterinary",
        "Animal",
        "Teaching",
        "University",
        "Psychiatric",
        "Rehabilitation",
        "Specialty",
    ]
)


@_register("cn_hospital", HOSPITAL, (ZH,))
def _cn_hospital(text: str) -> Iterator[Match]:
    for m in _CN_HOSPITAL.finditer(text):
        name = m.group()
        # A level needs a place name before it: "县人民医院" is any county's hospital.
        if _HOSPITAL_MARKERS.search(re.sub(rf"(?:{_HOSPITAL_SUFFIX}).*$", "", name)):
            yield m.span()
    yield from _spans(_WARD, text)


@_register("en_hospital", HOSPITAL, (EN,))
def _en_hospital(text: str) -> Iterator[Match]:
    for m in _EN_HOSPITAL.finditer(text):
        words = m.group().split()
        start = m.start()
        # Drop leading generic words ("The", "Emergency") that the capitalisation run swallowed.
        while words and words[0] in _EN_HOSPITAL_LEADING:
            start = text.index(words[0], start) + len(words[0])
            start += len(text[start:]) - len(text[start:].lstrip())
            words.pop(0)
        if len(words) >= 2 and not all(w in _EN_HOSPITAL_KIND for w in words[:-1]):
            yield start, m.end()


# --- person names ---------------------------------------------------------------------------

# The most common single-character surnames (about 85% of the population) and a few compound
# ones. Left out on purpose: characters that are far more often words before "医生" (向 as in
# "向医生咨询", 于, 任, 常, 万, 和, 时).
_CN_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
    "苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛"
    "郝龚邵钱严覃武戴莫孔汤殷柳包聂葛"
)
_CN_COMPOUND_SURNAMES = "欧阳|司马|上官|诸葛|东方|皇甫|尉迟|公孙|慕容|令狐|长孙|宇文|司徒|夏侯"
_CN_TITLES = "先生|女士|小姐|医生|大夫|主任|教授|护士|老师|医师|院长"
# Characters that do not occur in given names but do sit between a surname-looking character
# and a title in ordinary text ("谢谢医生", "王者").
_NOT_GIVEN = (
    "的了是在和与及或也都就还很太不没有这那个们我你他她它您吗呢吧啊说看去来到给对把被让向从过请等"
    "医院科生治主专业位些谢者"
)
_GIVEN_CHAR = rf"(?:(?![{_NOT_GIVEN}])[{_CJK}])"
_CN_SURNAME = rf"(?:{_CN_COMPOUND_SURNAMES}|[{_CN_SURNAMES}])"
# Before a name: start, punctuation or whitespace, or a word that introduces a person.
_CN_NAME_LEFT = rf"(?:(?<![{_CJK}])|(?<=是|叫|找|请|问|给|让|跟|与|和|位|的|谢|向|称|姓))"
# "谢谢医生" is thanks, not Dr. Xie: a 谢 right after 谢 never starts a name.
_CN_TITLED = re.compile(
    rf"{_CN_NAME_LEFT}(?P<v>(?!(?<=谢)谢){_CN_SURNAME}{_GIVEN_CHAR}{{0,2}}?)(?:{_CN_TITLES})"
)
_CN_INTRODUCED = re.compile(
    rf"(?:我叫|名叫|我的名字是|名字叫|姓名(?:是|:|：)?|家属|联系人|患者姓名(?:是|:|：)?)\s*"
    rf"(?P<v>{_CN_SURNAME}{_GIVEN_CHAR}{{1,2}}?)(?=$|[^{_CJK}]|[的是说今在来去和，])"
)


@_register("cn_titled_name", NAME, (ZH,))
def _cn_titled_name(text: str) -> Iterator[Match]:
    return _spans(_CN_TITLED, text, "v")


@_register("cn_introduced_name", NAME, (ZH,))
def _cn_introduced_name(text: str) -> Iterator[Match]:
    return _spans(_CN_INTRODUCED, text, "v")


_EN_WORD = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?"
# Capitalised words that follow "I'm" or an honorific without being names.
_EN_NOT_NAMES = frozenset(
    [
        "Sorry",
        "Fine",
        "Okay",
        "Ok",
        "Good",
        "Not",
        "Here",
        "So",
        "Just",
        "Also",
        "Really",
        "Doing",
        "Feeling",
        "Going",
        "Glad",
        "Happy",
        "Sure",
        "Still",
        "Allergic",
        "On",
        "In",
        "At",
        "A",
        "An",
        "The",
        "I",
        "Yes",
        "No",
        "Well",
        "Hello",
        "Hi",
        "Thanks",
        "Thank",
        "Very",
        "Pretty",
        "Taking",
        "Worried",
        "Concerned",
        "Afraid",
        "Currently",
        "Always",
        "Never",
        "Usually",
        "Having",
        "Getting",
        "Trying",
        "Calling",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        *EN_MONTHS,
        "English",
        "Chinese",
        "American",
        "Doctor",
        "Nurse",
        "Patient",
        "Hospital",
        "Clinic",
        "Street",
        "Dr",
        "Mr",
        "Mrs",
        "Ms",
        "Miss",
        "Prof",
        "Mx",
        "Today",
        "Tomorrow",
        "And",
        "Or",
        "But",
        "From",
        "With",
    ]
)
_EN_HONORIFIC = re.compile(
    rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof)\.?\s+(?P<v>{_EN_WORD}(?:\s+{_EN_WORD})?)"
)
_EN_INTRODUCED = re.compile(
    r"(?:\b[Mm]y name is|\bI'm|\bI am|\b[Cc]all me|\b[Nn]ame:|\b[Tt]his is)\s+"
    rf"(?P<v>{_EN_WORD}(?:\s+{_EN_WORD})?)"
)


def _name_words(text: str, start: int, end: int) -> Match | None:
    """Keep the leading run of words that are not in the stop list."""
    kept_end = start
    for m in re.finditer(r"\S+", text[start:end]):
        if m.group() in _EN_NOT_NAMES:
            break
        kept_end = start + m.end()
    return (start, kept_end) if kept_end > start else None


@_register("en_honorific_name", NAME, (EN,))
def _en_honorific_name(text: str) -> Iterator[Match]:
    for start, end in _spans(_EN_HONORIFIC, text, "v"):
        if span := _name_words(text, start, end):
            yield span


@_register("en_introduced_name", NAME, (EN,))
def _en_introduced_name(text: str) -> Iterator[Match]:
    for m in _EN_INTRODUCED.finditer(text):
        # "This is Tylenol": only a full two-word name counts after "this is".
        if m.group().startswith(("This", "this")) and len(m.group("v").split()) < 2:
            continue
        if span := _name_words(text, *m.span("v")):
            yield span


# --- running detectors ----------------------------------------------------------------------


def resolve_overlaps(findings: Sequence[Finding]) -> list[Finding]:
    """Keep non-overlapping findings: longest first, then by type priority, then leftmost."""
    ranked = sorted(findings, key=lambda f: (-(f.end - f.start), _PRIORITY[f.type], f.start))
    kept: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


def find_phi(
    text: str,
    language: str,
    *,
    use_presidio: bool = False,
    registry: Mapping[str, Detector] = REGISTRY,
) -> list[Finding]:
    """Every PHI span in ``text``, non-overlapping, in text order.

    ``language`` ("zh" or "en") selects the name, address and hospital detectors; the shape
    detectors (phones, IDs, e-mails…) run for both, since Chinese turns carry English e-mails
    and URLs. With ``use_presidio`` and ``presidio_analyzer`` installed, its findings are added.
    ``registry`` is every detector unless a measurement leaves some out (``bench.phi``).
    """
    found = [
        Finding(detector.type, start, end, detector.name)
        for detector in registry.values()
        if language in detector.languages
        for start, end in detector.detect(text)
        if end > start
    ]
    if use_presidio:
        found.extend(presidio_findings(text, language))
    return resolve_overlaps(found)


# Presidio entity → our type; entities not listed (NRP, LOCATION alone…) are not used.
_PRESIDIO_TYPES = {
    "PERSON": NAME,
    "PHONE_NUMBER": PHONE,
    "EMAIL_ADDRESS": EMAIL,
    "URL": URL,
    "IP_ADDRESS": IP,
    "DATE_TIME": DATE,
    "US_SSN": ID,
    "US_PASSPORT": ID,
    "US_DRIVER_LICENSE": ID,
    "MEDICAL_LICENSE": ID,
}


def presidio_available() -> bool:
    try:
        importlib.import_module("presidio_analyzer")
    except ImportError:
        return False
    return True


_presidio_engine: Any = None


def presidio_findings(text: str, language: str, min_score: float = 0.6) -> list[Finding]:
    """Findings from Microsoft Presidio's analyzer, when ``presidio_analyzer`` is installed.

    Optional and not a dependency: it needs a spaCy model per language, which the platform
    does not ship. Returns nothing when the package is absent. ``DATE_TIME`` in Presidio also
    matches durations ("3 days"), hence the score floor.
    """
    global _presidio_engine
    if not presidio_available():
        return []
    if _presidio_engine is None:
        _presidio_engine = importlib.import_module("presidio_analyzer").AnalyzerEngine()
    results = _presidio_engine.analyze(text=text, language=language)
    return [
        Finding(_PRESIDIO_TYPES[r.entity_type], r.start, r.end, f"presidio:{r.entity_type}")
        for r in results
        if r.entity_type in _PRESIDIO_TYPES and r.score >= min_score
    ]


# --- redacting a dialogue -------------------------------------------------------------------


def _value_key(phi_type: str, raw: str) -> str:
    """Two spellings of one value ("138 0000 0000", "13800000000") share a placeholder."""
    if phi_type in (PHONE, ID, MRN, IP):
        return re.sub(r"[^0-9A-Za-z]", "", raw).upper()
    return re.sub(r"\s+", " ", raw).strip().casefold()


def _name_aliases(name: str, language: str) -> list[str]:
    """Other ways the same person is mentioned: the full name, and in English each part."""
    if language == ZH:
        return [name] if len(name) >= 2 else []
    parts = [p for p in name.split() if len(p) >= 3 and p not in _EN_NOT_NAMES]
    return [name, *parts] if len(name.split()) > 1 else parts


def redact_dialogue(
    turns: Sequence[dict[str, str]], language: str, *, use_presidio: bool = False
) -> tuple[list[dict[str, str]], list[PhiFinding]]:
    """Replace every PHI span in a dialogue with ``[<TYPE>_<n>]``, consistently across turns.

    A name found once (``张测试先生``, ``Dr. Jane Testperson``) is also replaced where it appears
    without its title elsewhere in the dialogue (``张测试您好``, ``Thanks Jane``). Turn dicts keep
    their key order. Returns the redacted turns and one ``PhiFinding`` per replaced span.
    """
    per_text: dict[tuple[int, str], list[Finding]] = {}
    for index, turn in enumerate(turns):
        for role, text in turn.items():
            per_text[(index, role)] = find_phi(text, language, use_presidio=use_presidio)

    # Mentions of already-found names elsewhere in the dialogue.
    alias_of: dict[str, str] = {}
    for (index, role), findings in per_text.items():
        text = turns[index][role]
        for f in findings:
            if f.type == NAME:
                full = text[f.start : f.end]
                for alias in _name_aliases(full, language):
                    alias_of.setdefault(alias, full)
    if alias_of:
        boundary = r"(?<![A-Za-z])" if language == EN else ""
        end_boundary = r"(?![A-Za-z])" if language == EN else ""
        alias_re = re.compile(
            boundary
            + "(?:"
            + "|".join(re.escape(a) for a in sorted(alias_of, key=len, reverse=True))
            + ")"
            + end_boundary
        )
        for (index, role), findings in per_text.items():
            text = turns[index][role]
            extra = [
                Finding(NAME, m.start(), m.end(), "name_in_dialogue")
                for m in alias_re.finditer(text)
            ]
            per_text[(index, role)] = resolve_overlaps([*findings, *extra]) if extra else findings

    placeholders: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    redacted: list[dict[str, str]] = []
    rows: list[PhiFinding] = []
    for index, turn in enumerate(turns):
        new_turn: dict[str, str] = {}
        for role, text in turn.items():
            pieces: list[str] = []
            cursor = 0
            for f in per_text[(index, role)]:
                raw = text[f.start : f.end]
                if f.type == NAME and raw in alias_of:
                    raw = alias_of[raw]
                key = (f.type, _value_key(f.type, raw))
                if key not in placeholders:
                    counts[f.type] = counts.get(f.type, 0) + 1
                    placeholders[key] = f"[{f.type}_{counts[f.type]}]"
                placeholder = placeholders[key]
                pieces += [text[cursor : f.start], placeholder]
                cursor = f.end
                rows.append(
                    PhiFinding(
                        f.type,
                        index,
                        role,
                        f.start,
                        f.end,
                        f.end - f.start,
                        f.detector,
                        placeholder,
                    )
                )
            pieces.append(text[cursor:])
            new_turn[role] = "".join(pieces)
        redacted.append(new_turn)
    return redacted, rows
