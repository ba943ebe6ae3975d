"""Tokenizers trained from the training split, or loaded from a local pretrained directory.

Built on the ``tokenizers`` library (Rust; batch encoding runs in parallel outside the GIL).
EasyNLP fetches every tokenizer from a cloud bucket; here a vocabulary is learned from the
user's own data in seconds, and the whole tokenizer (normaliser, pre-tokenizer, vocabulary,
special tokens, [CLS]/[SEP] template) is one JSON string saved in every checkpoint and
export, so prediction tokenizes exactly as training did.

Kinds:
- ``char``: one token per non-space character (Chinese), a WordLevel vocabulary of the most
  frequent characters;
- ``wordpiece``: BERT's pre-tokenizer (CJK characters split, words on whitespace and
  punctuation) and a WordPiece vocabulary;
- ``bpe``: byte-level BPE (no unknown tokens);
- ``pretrained``: ``tokenizer.json`` or a BERT ``vocab.txt`` from a local directory.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lingjie.errors import ConfigError, DataError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIALS = [PAD, UNK, CLS, SEP, MASK]


def _template(tok: "object", cls_tok: str, sep_tok: str) -> None:
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(  # type: ignore[attr-defined]
        single=f"{cls_tok} $A {sep_tok}", pair=f"{cls_tok} $A {sep_tok} $B:1 {sep_tok}:1",
        special_tokens=[(cls_tok, tok.token_to_id(cls_tok)), (sep_tok, tok.token_to_id(sep_tok))])  # type: ignore[attr-defined]


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` plus what the data pipeline needs: special ids, truncation."""

    def __init__(self, tok: "object", kind: str) -> None:
        self.tok = tok
        self.kind = kind
        self.tok.no_padding()  # type: ignore[attr-defined]
        self.tok.no_truncation()  # type: ignore[attr-defined]
        self.pad_id = self._special(PAD, "pad")
        self.unk_id = self.tok.token_to_id(UNK)  # type: ignore[attr-defined]
        self._max_len: int | None = None

    def _special(self, token: str, what: str) -> int:
        idx = self.tok.token_to_id(token)  # type: ignore[attr-defined]
        if idx is None:
            raise DataError(f"the tokenizer has no {what} token {token!r}")
        return int(idx)

    # ------------------------------------------------------------------ construction
    @classmethod
    def train(cls, texts: Iterable[str], kind: str, vocab_size: int = 8000, min_frequency: int = 2,
              lowercase: bool = True) -> "TextTokenizer":
        """Learn a vocabulary of ``kind`` (char | wordpiece | bpe) from ``texts``."""
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        if kind == "char":
            tok = Tokenizer(models.WordLevel(unk_token=UNK))
            tok.normalizer = normalizers.Sequence(norm)
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"\S"), behavior="isolated")])
            trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                                special_tokens=SPECIALS)
        elif kind == "wordpiece":
            tok = Tokenizer(models.WordPiece(unk_token=UNK))
            tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None)
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece()
            trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                                special_tokens=SPECIALS)
        elif kind == "bpe":
            tok = Tokenizer(models.BPE(unk_token=UNK))
            tok.normalizer = normalizers.Sequence(norm)
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                          special_tokens=SPECIALS,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        else:
            raise ConfigError("data.tokenizer.type", f"cannot train a {kind!r} tokenizer; use char, wordpiece or bpe")
        tok.train_from_iterator(texts, trainer=trainer)
        _template(tok, CLS, SEP)
        return cls(tok, kind)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "TextTokenizer":
        """``tokenizer.json`` (a file or inside ``path``), else a BERT ``vocab.txt`` in ``path``."""
        from tokenizers import Tokenizer

        p = Path(path)
        file = p if p.is_file() else p / "tokenizer.json"
        if file.is_file() and file.suffix == ".json":
            try:
                tok = Tokenizer.from_file(str(file))
            except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception
                raise DataError(f"not a tokenizers JSON file ({exc})", file=str(file)) from None
            if tok.token_to_id(CLS) is not None and tok.token_to_id(SEP) is not None:
                _template(tok, CLS, SEP)
            return cls(tok, "pretrained")
        vocab = p / "vocab.txt" if p.is_dir() else p
        if vocab.is_file() and vocab.name.endswith(".txt"):
            from tokenizers import decoders, models, normalizers, pre_tokenizers

            lines = vocab.read_text(encoding="utf-8").splitlines()
            tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(lines)}, unk_token=UNK))
            tok.normalizer = normalizers.BertNormalizer(lowercase=_lowercase_of(p))
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece()
            _template(tok, CLS, SEP)
            return cls(tok, "pretrained")
        raise ConfigError("data.tokenizer.path", f"no tokenizer.json or vocab.txt at '{path}'")

    @classmethod
    def from_json(cls, text: str, kind: str) -> "TextTokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(text), kind)

    def to_json(self) -> str:
        return self.tok.to_str()  # type: ignore[attr-defined]

    def save(self, path: str | Path) -> None:
        from dataio.atomic import atomic_write_bytes

        atomic_write_bytes(Path(path), self.to_json().encode())

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size(with_added_tokens=True))  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ encoding
    def _truncate(self, max_len: int) -> None:
        if self._max_len != max_len:
            self.tok.enable_truncation(max_length=max_len, strategy="longest_first")  # type: ignore[attr-defined]
            self._max_len = max_len

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None, max_len: int = 128,
               ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Token ids (with [CLS]/[SEP]) per text, and segment ids when ``pairs`` is given."""
        self._truncate(max_len)
        inputs = list(zip(texts, pairs)) if pairs is not None else list(texts)
        encs = self.tok.encode_batch(inputs)  # type: ignore[attr-defined]
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encs]
        types = [np.asarray(e.type_ids, dtype=np.int64) for e in encs] if pairs is not None else None
        return ids, types

    def encode_words(self, words: Sequence[Sequence[str]], max_len: int = 128,
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Ids of pre-split words, and for each word the position of its first token (-1 when
        truncation cut it or it produced no token): token tasks label words, not subwords."""
        self._truncate(max_len)
        encs = self.tok.encode_batch([list(w) for w in words], is_pretokenized=True)  # type: ignore[attr-defined]
        ids, starts = [], []
        for e, ws in zip(encs, words):
            first = np.full(len(ws), -1, dtype=np.int64)
            word_ids = np.asarray([-1 if w is None else w for w in e.word_ids], dtype=np.int64)
            pos = np.arange(len(word_ids))
            keep = word_ids >= 0
            # the first token of each word: reverse so that the earliest position wins
            first[word_ids[keep][::-1]] = pos[keep][::-1]
            ids.append(np.asarray(e.ids, dtype=np.int64))
            starts.append(first)
        return ids, starts

    def tokens(self, text: str) -> list[str]:
        """The tokens of one text (for inspection and tests)."""
        self.tok.no_truncation()  # type: ignore[attr-defined]
        self._max_len = None
        return list(self.tok.encode(text).tokens)  # type: ignore[attr-defined]


def _lowercase_of(directory: Path) -> bool:
    """BERT's ``tokenizer_config.json`` says whether the vocabulary is uncased (default: yes)."""
    import json

    cfg = directory / "tokenizer_config.json" if directory.is_dir() else None
    if cfg is not None and cfg.is_file():
        return bool(json.loads(cfg.read_text()).get("do_lower_case", True))
    return True
