"""easynlp pieces in-process: tokenizers, text sources and bad rows, bucketing, models, metrics,
export parity, validation errors. Tiny data, single-threaded torch: seconds in total."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from easynlp.data import TextEncoder, TextLoader
from easynlp.metrics import entity_scores, macro_f1, spans
from easynlp.models import ServingModule, build_model, load_pretrained_weights
from easynlp.schema import NLPDataSpec
from easynlp.tokenizer import TextTokenizer
from tests.conftest import compose
from lingjie.errors import ConfigError, DataError

torch.set_num_threads(1)

POS = ["质量很好非常满意", "很喜欢推荐购买", "物流快包装好", "好评值得买", "非常好用喜欢"]
NEG = ["质量太差失望", "千万别买垃圾", "很差退货了", "不好用后悔", "太烂了差评"]


def _data(**kw) -> NLPDataSpec:
    return NLPDataSpec(**kw)


# ---------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("kind", ["char", "wordpiece", "bpe"])
def test_tokenizer_trains_saves_and_reloads_identically(kind: str, tmp_path: Path) -> None:
    texts = POS + NEG + ["Hello world 123", "hello again"]
    tok = TextTokenizer.train(texts * 3, kind, vocab_size=300, min_frequency=1)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    again = TextTokenizer.from_pretrained(path)
    ids, _ = tok.encode(texts, max_len=32)
    ids2, _ = again.encode(texts, max_len=32)
    assert [a.tolist() for a in ids] == [b.tolist() for b in ids2]
    assert all(a[0] == tok.tok.token_to_id("[CLS]") and a[-1] == tok.tok.token_to_id("[SEP]") for a in ids)
    assert tok.pad_id == 0 and tok.unk_id == 1
    if kind == "char":  # one token per character, whitespace dropped, lowercased
        assert tok.tokens("好评 AH")[1:-1] == ["好", "评", "a", "h"]


def test_tokenizer_pairs_truncation_and_word_alignment() -> None:
    tok = TextTokenizer.train(POS + NEG, "char", vocab_size=200, min_frequency=1)
    ids, types = tok.encode(["质量很好"], ["很差"], max_len=32)
    assert types[0].tolist() == [0] * 6 + [1] * 3  # [CLS] a(4) [SEP] | b(2) [SEP]
    ids, _ = tok.encode(["质量很好非常满意"], max_len=5)
    assert len(ids[0]) == 5 and ids[0][-1] == tok.tok.token_to_id("[SEP]")
    ids, starts = tok.encode_words([list("质量很好"), ["质量", "很好"]], max_len=4)
    assert starts[0].tolist() == [1, 2, -1, -1]  # [CLS] 质 量 [SEP]: the last two words cut off
    assert starts[1].tolist() == [1, -1]  # a two-character word starts at its first character


def test_pretrained_vocab_txt_directory(tmp_path: Path) -> None:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "好"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = TextTokenizer.from_pretrained(tmp_path)
    assert tok.tokens("Hello worlds 好!") == ["[CLS]", "hello", "world", "##s", "好", "[UNK]", "[SEP]"]
    with pytest.raises(ConfigError, match="no tokenizer.json or vocab.txt"):
        TextTokenizer.from_pretrained(tmp_path / "missing")


# ---------------------------------------------------------------- sources, bad rows, bucketing
def _source(data: NLPDataSpec, path: Path, cols: list[str]):
    from easynlp.inputs import make_source

    return make_source(data, str(path), cols)


def _encoder(data: NLPDataSpec, labels: list[str], kind: str = "multiclass", pair: bool = False) -> TextEncoder:
    tok = TextTokenizer.train(POS + NEG + ["0123456789"], "char", vocab_size=200, min_frequency=1)
    return TextEncoder(tok, data, data.label_column, kind, labels, pair)


def test_tsv_with_easynlp_schema_reads_numeric_looking_text_as_text(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("12345\tpos\n67890\tneg\n质量很好\tpos\n")
    data = _data(schema="text:str:1,label:str:1", read_rows=2)
    src = _source(data, path, ["text", "label"])
    rows = [r for b in src.iter_batches(10) for r in b.to_pylist()]
    assert rows[0] == {"text": "12345", "label": "pos"} and rows[2]["text"] == "质量很好"


def test_wrong_field_count_raises_naming_file_and_row_or_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("质量很好\tpos\n多了一列\tneg\textra\n很差\tneg\n")
    data = _data(schema="text:str,label:str")
    with pytest.raises(DataError, match=r"train.tsv at row 1: expected 2 fields, got 3"):
        list(_source(data, path, ["text", "label"]).iter_batches(10))
    skip = _data(schema="text:str,label:str", on_error="skip")
    loader = TextLoader(_source(skip, path, ["text", "label"]), _encoder(skip, ["neg", "pos"]), 8)
    batches = [b for _, b in loader.epoch(0)]
    assert sum(b.size for b in batches) == 2 and loader.source.stats["bad_rows"] == 1


def test_missing_column_names_it_and_the_closest(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("txt,label\n好,pos\n")
    with pytest.raises(DataError, match=r"missing column 'text' \(did you mean: txt\?\)"):
        _source(_data(), path, ["text", "label"])


def test_unknown_label_and_tag_mismatch_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("text,label\n质量很好,pos\n很差,meh\n")
    data = _data()
    loader = TextLoader(_source(data, path, ["text", "label"]), _encoder(data, ["neg", "pos"]), 8)
    with pytest.raises(DataError, match="label 'meh' is not one of the classes"):
        list(loader.epoch(0))
    skip = _data(on_error="skip")
    loader = TextLoader(_source(skip, path, ["text", "label"]), _encoder(skip, ["neg", "pos"]), 8)
    assert sum(b.size for _, b in loader.epoch(0)) == 1 and loader.source.stats["bad_rows"] == 1
    ner = tmp_path / "ner.jsonl"
    ner.write_text('{"tokens": ["北", "京"], "tags": ["B-LOC", "I-LOC"]}\n{"tokens": ["好"], "tags": ["O", "O"]}\n')
    nd = _data(text_column="tokens", label_column="tags")
    loader = TextLoader(_source(nd, ner, ["tokens", "tags"]), _encoder(nd, ["O", "B-LOC", "I-LOC"], "token"), 8)
    with pytest.raises(DataError, match="2 tags for 1 tokens"):
        list(loader.epoch(0))


def test_bucketing_covers_every_row_once_with_less_padding_and_resumes_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    chars = "".join(POS + NEG)
    texts = ["".join(rng.choice(list(chars), size=int(n))) for n in rng.integers(2, 60, size=300)]
    labels = ["pos" if i % 2 else "neg" for i in range(300)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab, "id": i}, ensure_ascii=False) + "\n"
                            for i, (t, lab) in enumerate(zip(texts, labels))))
    fractions = {}
    for padding in ("bucket", "longest", "max_length"):
        data = _data(padding=padding, max_len=64, bucket_pool_batches=8)
        loader = TextLoader(_source(data, path, ["text", "label"]), _encoder(data, ["neg", "pos"]), 16,
                            padding=padding, pool_batches=8, shuffle=True, seed=3)
        batches = [b for _, b in loader.epoch(1)]
        assert sum(b.size for b in batches) == 300
        assert sorted(int(r) for b in batches for r in b.input_ids[:, 1]) == sorted(
            int(r) for b in batches for r in b.input_ids[:, 1])  # deterministic content
        fractions[padding] = 1 - loader.stats["real"] / loader.stats["padded"]
        tail = [b.input_ids.tolist() for _, b in loader.epoch(1, skip_batches=5)]
        assert tail == [b.input_ids.tolist() for b in batches[5:]]
    assert fractions["bucket"] < 0.6 * fractions["longest"] and fractions["longest"] < fractions["max_length"]


# ---------------------------------------------------------------- models
def _batch(tok: TextTokenizer, texts, pairs=None, words=None, max_len: int = 32) -> dict[str, torch.Tensor]:
    if words is not None:
        ids, starts = tok.encode_words(words, max_len)
        types = None
    else:
        ids, types = tok.encode(texts, pairs, max_len)
        starts = None
    width = max(len(a) for a in ids)
    out = {"input_ids": torch.zeros(len(ids), width, dtype=torch.long),
           "attention_mask": torch.zeros(len(ids), width, dtype=torch.long)}
    for i, a in enumerate(ids):
        out["input_ids"][i, :len(a)] = torch.from_numpy(a)
        out["attention_mask"][i, :len(a)] = 1
    if types is not None:
        out["token_type_ids"] = torch.zeros_like(out["input_ids"])
        for i, t in enumerate(types):
            out["token_type_ids"][i, :len(t)] = torch.from_numpy(t)
    if starts is not None:
        w = max(len(s) for s in starts)
        out["word_starts"] = torch.full((len(ids), w), -2, dtype=torch.long)
        for i, s in enumerate(starts):
            out["word_starts"][i, :len(s)] = torch.from_numpy(s)
    return out


def _arch(kind: str, vocab: int) -> dict:
    if kind == "textcnn":
        return {"kind": "textcnn", "vocab_size": vocab, "embedding_dim": 32, "filter_sizes": [2, 3],
                "num_filters": 16, "pad_id": 0, "dropout": 0.0}
    return {"kind": "transformer", "vocab_size": vocab, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
            "intermediate_size": 64, "max_position": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
            "dropout": 0.0, "attention_dropout": 0.0, "pad_id": 0, "pooling": "mean"}


def _fit(model, inputs, labels, steps: int = 150) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        model.train()
        loss = model.loss(model(inputs), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


@pytest.mark.parametrize("kind,task", [("textcnn", "classification"), ("transformer", "classification"),
                                       ("textcnn", "matching"), ("transformer", "matching"),
                                       ("textcnn", "token"), ("transformer", "token")])
def test_each_model_and_head_overfits_a_tiny_set(kind: str, task: str) -> None:
    torch.manual_seed(0)
    tok = TextTokenizer.train(POS + NEG + ["北京上海明天后天"], "char", vocab_size=200, min_frequency=1)
    token = task == "token"
    if task == "classification":
        inputs, y = _batch(tok, POS + NEG), torch.tensor([1] * 5 + [0] * 5)
    elif task == "matching":  # label 1: both texts have the same sentiment
        pairs = [(POS[i], POS[(i + 1) % 5], 1) for i in range(5)] + [(NEG[i], NEG[(i + 1) % 5], 1) for i in range(5)] \
            + [(POS[i], NEG[i], 0) for i in range(5)] + [(NEG[i], POS[(i + 2) % 5], 0) for i in range(5)]
        inputs = _batch(tok, [p[0] for p in pairs], [p[1] for p in pairs])
        y = torch.tensor([p[2] for p in pairs])
    else:
        sents = [list("明天北京好"), list("上海后天差"), list("北京很好"), list("后天上海")]
        tags = [[1, 2, 3, 4, 0], [3, 4, 1, 2, 0], [3, 4, 0, 0], [1, 2, 3, 4]]  # DATE=1,2 LOC=3,4
        inputs = _batch(tok, None, words=sents)
        y = torch.full(inputs["word_starts"].shape, -100, dtype=torch.long)
        for i, t in enumerate(tags):
            y[i, :len(t)] = torch.tensor(t)
    model = build_model(_arch(kind, tok.vocab_size), 5 if token else 2, token, "y", 0.0, 0.0, 0)
    loss = _fit(model, inputs, {"y": y})
    model.eval()
    with torch.no_grad():
        pred = model.predict(model(inputs))["y"]
    if token:
        assert all(p.tolist() == t for p, t in zip(pred, tags)), (loss, pred)
    else:
        assert (pred.argmax(1) == y).all(), loss


@pytest.mark.parametrize("kind", ["textcnn", "transformer"])
def test_outputs_do_not_depend_on_padding_and_torchscript_matches(kind: str) -> None:
    torch.manual_seed(1)
    tok = TextTokenizer.train(POS + NEG, "char", vocab_size=200, min_frequency=1)
    model = build_model({**_arch(kind, tok.vocab_size), "dropout": 0.1}, 2, False, "y", 0.1, 0.0, 0).eval()
    one = _batch(tok, POS[:2])
    padded = {k: torch.cat([v, torch.zeros(v.size(0), 9, dtype=v.dtype)], 1) for k, v in one.items()}
    with torch.no_grad():
        a, b = model(one)["logits"], model(padded)["logits"]
        scripted = torch.jit.script(ServingModule(model))
        s = scripted(one["input_ids"], one["attention_mask"], torch.zeros_like(one["input_ids"]),
                     torch.zeros(2, 1, dtype=torch.long))["probs"]
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(torch.softmax(a, -1), s, atol=1e-6)


def test_bert_checkpoint_directory_loads_and_rejects_a_mismatch(tmp_path: Path) -> None:
    """A BERT-format directory (HF names, 'bert.' prefix, pooler) loads into model=transformer."""
    from safetensors.torch import save_file

    from easynlp.models import arch_of
    from easynlp.schema import TransformerSpec

    torch.manual_seed(2)
    src = build_model(_arch("transformer", 50), 2, False, "y", 0.0, 0.0, 0)
    state = {"bert." + k.replace(".attention.core.", ".attention.self."): v.clone()
             for k, v in src.encoder.state_dict().items()}
    state["bert.pooler.dense.weight"] = torch.zeros(32, 32)
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "bert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2, "hidden_act": "gelu"}))
    spec = TransformerSpec(name="transformer", pretrained=str(tmp_path), dropout=0.0, attention_dropout=0.0)
    dst = build_model(arch_of(spec, 50, 0, tmp_path), 2, False, "y", 0.0, 0.0, 0)
    load_pretrained_weights(dst, tmp_path)
    for k, v in src.encoder.state_dict().items():
        assert torch.equal(v, dst.encoder.state_dict()[k]), k
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 48}))
    wrong = build_model(arch_of(spec, 50, 0, tmp_path), 2, False, "y", 0.0, 0.0, 0)
    with pytest.raises(DataError, match="weight shapes differ"):
        load_pretrained_weights(wrong, tmp_path)


# ---------------------------------------------------------------- metrics
def test_entity_spans_and_scores() -> None:
    assert spans(["B-LOC", "I-LOC", "O", "B-PER", "B-PER", "I-ORG"]) == {
        ("LOC", 0, 2), ("PER", 3, 4), ("PER", 4, 5), ("ORG", 5, 6)}
    gold = [["B-LOC", "I-LOC", "O", "B-PER"]]
    pred = [["B-LOC", "I-LOC", "O", "O"]]
    assert entity_scores(gold, pred) == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx((2 / 3 + 0.8) / 2)


# ---------------------------------------------------------------- validation
def _nlp_error(overrides: list[str]) -> ConfigError:
    from trainer.schema.validate import validate

    with pytest.raises(ConfigError) as info:
        validate(compose(["+experiment=chnsenti_textcnn", *overrides]))
    return info.value


def test_nlp_config_errors_name_the_path_and_fix() -> None:
    err = _nlp_error(["+data.text_colum=review"])
    assert err.path == "data.text_colum" and "text_column" in err.suggestions
    err = _nlp_error(["model.name=textcnm"])
    assert err.path == "model.name" and "textcnn" in err.suggestions
    err = _nlp_error(["model.task=matching"])
    assert err.path == "data.text_pair_column"
    err = _nlp_error(["data.schema='text:string2'"])
    assert err.path == "data.schema"
    err = _nlp_error(["model=minilm", "data.tokenizer.type=char"])
    assert err.path == "data.tokenizer.type" and "pretrained" in str(err)
    err = _nlp_error(["model=transformer", "model.num_heads=3"])
    assert err.path == "model.num_heads"


def test_every_nlp_knob_is_in_its_group_yaml() -> None:
    import dataclasses

    from easynlp.schema import MODELS, NLPCsvSpec, TokenizerSpec

    cfg = compose(["+experiment=chnsenti_textcnn"])
    for cls, node in ((NLPDataSpec, cfg["data"]), (NLPCsvSpec, cfg["data"]["csv"]),
                      (TokenizerSpec, cfg["data"]["tokenizer"])):
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in node]
        assert not missing, f"{cls.__name__} keys missing from configs/data/nlp_base.yaml: {missing}"
    for name, cls in MODELS.items():
        node = compose([f"model={name}"])["model"]
        missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in node]
        assert not missing, f"configs/model/{name}.yaml lacks {missing}"
