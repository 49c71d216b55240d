"""A small medical lexicon for MedArk's seven entity kinds (Chinese and English).

The rules teacher finds entities by lexicon match; the Ark loop uses it to prefer medical terms
when it turns a patient's words into queries. It is deliberately small and transparent (a few
hundred common consultation terms): a real dataset gets its entities from an LLM teacher.
Matching is leftmost-longest and never overlaps, so 头痛 is a symptom, not 头 + 痛.
"""

from __future__ import annotations

import re
from functools import cache

_ZH: dict[str, str] = {
    "disease": (
        "感冒 流感 新冠 肺炎 支气管炎 哮喘 慢阻肺 咽炎 扁桃体炎 鼻炎 鼻窦炎 中耳炎 结膜炎 "
        "高血压 低血压 糖尿病 高血脂 冠心病 心脏病 心肌炎 心律失常 脑梗 中风 偏头痛 癫痫 "
        "胃炎 胃溃疡 十二指肠溃疡 肠炎 胃肠炎 肠胃炎 阑尾炎 胆囊炎 胆结石 胰腺炎 脂肪肝 肝炎 乙肝 "
        "肝硬化 肾炎 肾结石 尿路感染 膀胱炎 前列腺炎 痔疮 便秘 甲亢 甲减 甲状腺结节 贫血 痛风 "
        "关节炎 风湿 类风湿 颈椎病 腰椎间盘突出 骨质疏松 骨折 扭伤 湿疹 荨麻疹 皮炎 过敏 痤疮 "
        "银屑病 白癜风 带状疱疹 疱疹 真菌感染 脚气 阴道炎 宫颈炎 盆腔炎 附件炎 宫外孕 多囊卵巢 "
        "子宫肌瘤 乳腺增生 乳腺炎 不孕 早产 抑郁症 抑郁 焦虑症 失眠症 肿瘤 癌症 肺癌 胃癌 肝癌 "
        "乳腺癌 手足口病 水痘 麻疹 腮腺炎 黄疸 佝偻病 湿热 上火 炎症 感染"
    ),
    "symptom": (
        "发烧 发热 低烧 高烧 咳嗽 干咳 咳痰 有痰 头痛 头疼 头晕 眩晕 恶心 呕吐 吐奶 腹痛 肚子疼 "
        "肚子痛 胃痛 胃疼 腹泻 拉肚子 便血 黑便 腹胀 胃胀 反酸 烧心 胸闷 胸痛 心慌 心悸 气短 气喘 "
        "呼吸困难 乏力 疲劳 无力 失眠 多梦 嗜睡 瘙痒 发痒 疼痛 红肿 肿胀 水肿 出血 皮疹 红疹 疹子 "
        "疙瘩 水泡 脱皮 流鼻涕 鼻塞 打喷嚏 咽痛 嗓子疼 喉咙痛 声音嘶哑 耳鸣 视力模糊 眼睛干涩 "
        "尿频 尿急 尿痛 血尿 食欲不振 没胃口 消瘦 体重下降 盗汗 出汗 抽搐 麻木 关节痛 腰痛 腰疼 "
        "背痛 颈痛 腿疼 抽筋 月经不调 痛经 闭经 白带异常 分泌物 脱发 口臭 口干 口苦 溃疡 流泪 "
        "想哭 情绪低落 焦虑 烦躁 易怒 心情不好 哭闹 黄痰 鼻血 牙疼 牙痛 头发白 手脚冰凉 怕冷 "
        "发冷 寒战 症状"
    ),
    "medcine": (
        "阿司匹林 布洛芬 对乙酰氨基酚 扑热息痛 头孢 阿莫西林 青霉素 抗生素 消炎药 激素 地塞米松 "
        "泼尼松 胰岛素 二甲双胍 硝苯地平 氨氯地平 降压药 降糖药 他汀 抗过敏药 氯雷他定 西替利嗪 "
        "奥美拉唑 蒙脱石散 益生菌 维生素 钙片 叶酸 铁剂 药膏 软膏 外用药 中药 中成药 感冒药 "
        "退烧药 止痛药 止咳药 安眠药 抗抑郁药 避孕药 紧急避孕药 红霉素 甲硝唑 左氧氟沙星 黄体酮 "
        "优甲乐 碘 眼药水 滴眼液 喷剂 输液 点滴 疫苗 药物 药"
    ),
    "surgery": (
        "手术 阑尾切除 心脏搭桥 支架 剖腹产 剖宫产 顺产 刮宫 人流 流产 切除术 微创 腹腔镜 "
        "关节置换 白内障手术 激光 埋线 拔牙 种植牙 根管治疗 活检 穿刺 结扎 包皮环切 缝针 缝合"
    ),
    "body_part": (
        "头部 头皮 颈部 脖子 胸部 胸口 背部 后背 腰部 腿部 大腿 小腿 膝盖 脚踝 足部 脚 手 手指 "
        "手腕 胳膊 肩膀 肩 腹部 肚子 小腹 胃 肝 肾 心脏 肺 皮肤 眼睛 眼 耳朵 鼻子 喉咙 嗓子 "
        "牙齿 牙龈 口腔 舌头 嘴唇 嘴 脸 面部 额头 乳房 乳头 子宫 卵巢 宫颈 阴道 外阴 前列腺 "
        "膀胱 肠 肛门 关节 脊椎 颈椎 腰椎 屁股 臀部 下体 淋巴结 甲状腺 血管 头 颈 胸 背 腰 腿 足"
    ),
    "medical_check": (
        "血常规 尿常规 大便常规 便常规 肝功能 肾功能 血糖 空腹血糖 糖化血红蛋白 血压 血脂 "
        "胆固醇 尿酸 甲功 激素六项 性激素 hcg 孕酮 B超 彩超 超声 CT 核磁共振 核磁 MRI X光 "
        "胸片 心电图 胃镜 肠镜 化验 检查 体检 体温 白细胞 血小板 转氨酶 HPV TCT 病理 过敏原 "
        "幽门螺杆菌 碳13 骨密度 造影 检测 结果 指标"
    ),
    "concept": (
        "年龄 性别 多大 几岁 职业 多久 多长时间 时间 几天 几次 几个月 持续 频率 次数 诱因 "
        "病史 既往史 过敏史 家族史 遗传 饮食 睡眠 大小便 大便 小便 月经 例假 怀孕 备孕 "
        "哺乳 体重 身高 "
        "吸烟 抽烟 喝酒 饮酒 用药 治疗 程度 部位 性质 接触 作息 运动 工作 压力 情绪 "
        "伴随症状 其他症状 加重 缓解 好转 复发"
    ),
}

_EN: dict[str, str] = {
    "disease": (
        "common cold|flu|influenza|covid|pneumonia|bronchitis|asthma|copd|pharyngitis|tonsillitis|"
        "rhinitis|sinusitis|otitis|conjunctivitis|hypertension|high blood pressure|"
        "hypotension|diabetes|hyperlipidemia|coronary artery disease|heart disease|"
        "arrhythmia|stroke|migraine|epilepsy|gastritis|gastric ulcer|peptic ulcer|enteritis|"
        "gastroenteritis|appendicitis|cholecystitis|gallstones|pancreatitis|fatty liver|"
        "hepatitis|cirrhosis|nephritis|kidney stones|urinary tract infection|uti|cystitis|"
        "prostatitis|hemorrhoids|hyperthyroidism|hypothyroidism|anemia|gout|arthritis|"
        "osteoarthritis|rheumatoid arthritis|osteoporosis|fracture|sprain|eczema|hives|"
        "urticaria|dermatitis|allergy|allergies|acne|psoriasis|shingles|herpes|"
        "fungal infection|vaginitis|pelvic inflammatory disease|ectopic pregnancy|pcos|"
        "fibroids|mastitis|infertility|depression|anxiety|insomnia|tumor|cancer|"
        "lung cancer|breast cancer|reflux|gerd|ibs|infection|inflammation|neuropathy|"
        "sleep apnea|obesity|dementia"
    ),
    "symptom": (
        "fever|cough|phlegm|sputum|headache|headaches|dizziness|dizzy|vertigo|nausea|"
        "vomiting|abdominal pain|stomach pain|stomachache|diarrhea|constipation|bloody stool|"
        "bloating|heartburn|acid reflux|chest tightness|chest pain|palpitations|"
        "shortness of breath|wheezing|fatigue|tired|weakness|itching|itchy|pain|swelling|"
        "bleeding|rash|blisters|runny nose|stuffy nose|sneezing|sore throat|hoarseness|"
        "tinnitus|blurred vision|frequent urination|painful urination|blood in urine|"
        "loss of appetite|weight loss|night sweats|sweating|seizures|numbness|tingling|"
        "joint pain|back pain|neck pain|cramps|irregular periods|period pain|discharge|"
        "hair loss|bad breath|dry mouth|mouth ulcers|chills|symptoms|burning|stiffness|"
        "shortness of breath|snoring|anxious|depressed|mood"
    ),
    "medcine": (
        "aspirin|ibuprofen|acetaminophen|paracetamol|tylenol|advil|cephalosporin|amoxicillin|"
        "penicillin|antibiotics|antibiotic|steroids|steroid|dexamethasone|prednisone|insulin|"
        "metformin|nifedipine|amlodipine|statin|statins|antihistamine|loratadine|cetirizine|"
        "omeprazole|probiotics|vitamins|vitamin|calcium|folic acid|iron|ointment|cream|"
        "painkillers|painkiller|sleeping pills|antidepressants|contraceptives|birth control|"
        "metronidazole|levofloxacin|progesterone|levothyroxine|eye drops|inhaler|vaccine|"
        "medication|medications|medicine|medicines|drugs|pills|gabapentin|lisinopril"
    ),
    "surgery": (
        "surgery|operation|appendectomy|bypass|stent|c-section|cesarean|abortion|"
        "laparoscopy|joint replacement|knee replacement|hip replacement|cataract surgery|"
        "biopsy|tooth extraction|root canal|tubal ligation|circumcision|stitches|procedure"
    ),
    "body_part": (
        "head|scalp|neck|chest|upper back|lower back|waist|leg|legs|thigh|knee|knees|ankle|"
        "foot|feet|hand|hands|finger|fingers|wrist|arm|arms|shoulder|shoulders|abdomen|belly|stomach|"
        "liver|kidney|kidneys|heart|lung|lungs|skin|eye|eyes|ear|ears|nose|throat|teeth|tooth|"
        "gums|mouth|tongue|lips|face|forehead|breast|breasts|uterus|ovary|ovaries|cervix|"
        "vagina|prostate|bladder|intestine|bowel|anus|joint|joints|spine|hip|hips|buttocks|"
        "lymph nodes|thyroid|toe|toes|elbow|jaw"
    ),
    "medical_check": (
        "blood test|blood tests|complete blood count|cbc|urine test|urinalysis|stool test|"
        "liver function|kidney function|blood sugar|glucose|hba1c|blood pressure|cholesterol|"
        "uric acid|thyroid function|hormone|hcg|ultrasound|ct|ct scan|mri|x-ray|x ray|"
        "chest x-ray|ecg|ekg|electrocardiogram|gastroscopy|endoscopy|colonoscopy|lab|labs|"
        "lab results|test results|tests|test|checkup|temperature|white blood cells|"
        "platelets|hpv|pap smear|pathology|allergy test|helicobacter pylori|h. pylori|"
        "bone density|scan|examination|exam|biopsy results|results"
    ),
    "concept": (
        "age|how old|sex|gender|occupation|job|how long|duration|when|onset|frequency|"
        "how often|how many times|times a day|how much|today|yesterday|"
        "trigger|history|medical history|past history|family history|allergies|"
        "diet|eating habits|sleep|bowel movements|urination|period|menstruation|pregnant|"
        "pregnancy|breastfeeding|weight|height|smoke|smoking|alcohol|drink|drinking|"
        "treatment|severity|location|exercise|stress|lifestyle|living situation|children|"
        "married|family"
    ),
}


@cache
def _pattern(language: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """One alternation, longest terms first: at each position the longest term wins."""
    kinds: dict[str, str] = {}
    if language == "zh":
        for kind, words in _ZH.items():
            for term in words.split():
                kinds.setdefault(term.lower(), kind)
    else:
        for kind, words in _EN.items():
            for term in words.split("|"):
                kinds.setdefault(term, kind)
    alternatives = "|".join(re.escape(t) for t in sorted(kinds, key=lambda t: (-len(t), t)))
    if language == "zh":
        return re.compile(f"({alternatives})", re.IGNORECASE), kinds
    return re.compile(rf"(?<![\w-])({alternatives})(?![\w-])", re.IGNORECASE), kinds


def match(text: str, language: str) -> list[tuple[str, str]]:
    """``(kind, term)`` for every lexicon term in ``text``, in order of appearance."""
    pattern, kinds = _pattern("zh" if language == "zh" else "en")
    found = []
    for m in pattern.finditer(text):
        term = m.group(1) if language == "zh" else m.group(1).lower()
        found.append((kinds[m.group(1).lower()], term))
    return found
