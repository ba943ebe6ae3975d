"""A text model's fitted state: the tokenizer, the labels and the network description.

Fitted on the train split (rank 0) before the model exists, saved in every checkpoint's meta
(``text_state``), so every other mode rebuilds the model and its inputs from the checkpoint alone.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from easynlp.inputs import make_source, text_columns
from easynlp.schema import NLPDataSpec, NLPRunSpec
from lingjie.errors import ConfigError, DataError

log = logging.getLogger("lingjie.nlp")


@dataclass
class TextState:
    """What turns raw text into model inputs and outputs into names: saved with the model."""

    tokenizer_json: str
    tokenizer_kind: str
    labels: list[str]
    arch: dict[str, Any]
    train_rows: int | None = None

    def to_meta(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer_json, "tokenizer_kind": self.tokenizer_kind, "labels": self.labels,
                "arch": self.arch, "train_rows": self.train_rows}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "TextState":
        return cls(meta["tokenizer"], meta["tokenizer_kind"], list(meta["labels"]), dict(meta["arch"]),
                   meta.get("train_rows"))


def resolve_pretrained(spec: NLPRunSpec) -> Path | None:
    """``model.pretrained`` as a local directory: a path, or a bundled name prepared on first use."""
    name = getattr(spec.model, "pretrained", None)
    if not name:
        return None
    from dataio.datasets import DATASETS, ensure_dataset

    if name in DATASETS:
        return ensure_dataset(name, spec.root.paths.data_dir, show_progress=spec.root.trainer.progress_bar)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ConfigError("model.pretrained", f"'{name}' is neither a directory nor a bundled model "
                          f"({', '.join(n for n in DATASETS if n.startswith('minilm'))})")
    return path


def tokenizer_texts(data: NLPDataSpec, src: Any, limit: int | None, token_task: bool, pair: bool,
                    label_values: set[str], counter: list[int]) -> Iterator[str]:
    """Texts of the train split for tokenizer training; collects labels and counts rows on the way."""
    from easynlp.data import split_tokens

    for rb in src.iter_batches(4096, limit_rows=limit):
        counter[0] += rb.num_rows
        labels = rb.column(data.label_column)
        if token_task:
            for tags in split_tokens(labels):
                label_values.update(tags)
            for words in split_tokens(rb.column(data.text_column)):
                yield " ".join(words)
            continue
        label_values.update(v for v in labels.cast("string").to_pylist() if v is not None)
        yield from (t for t in rb.column(data.text_column).cast("string").to_pylist() if t)
        if pair:
            yield from (t for t in rb.column(data.text_pair_column).cast("string").to_pylist() if t)


def fit_text_state(spec: NLPRunSpec, pretrained: Path | None) -> TextState:
    """Train the tokenizer (or load the pretrained one) and collect the labels from train."""
    from easynlp.models import arch_of

    data = spec.root.data
    src = make_source(data, data.train_path, text_columns(spec, with_labels=True))
    label_values: set[str] = set()
    rows = [0]
    texts = tokenizer_texts(data, src, data.fit_rows or data.limit_train_rows, spec.is_token, spec.is_pair,
                            label_values, rows)
    t = time.perf_counter()
    kind = data.tokenizer.type
    if kind == "auto":
        kind = "pretrained" if pretrained else "char"
    tok = _tokenizer(data, kind, texts, pretrained)
    if not rows[0]:
        raise DataError("the training data has no rows", file=data.train_path)
    if data.fit_rows and (not data.limit_train_rows or data.limit_train_rows > data.fit_rows):
        rows = [src.count_rows()]  # read only the fit rows: Parquet footers know the total (else None)
    labels = label_list(spec, label_values)
    log.info("%s tokenizer: %d tokens (%.1fs); %d %s", kind, tok.vocab_size, time.perf_counter() - t, len(labels),
             "tags" if spec.is_token else "classes")
    arch = arch_of(spec.model, tok.vocab_size, tok.pad_id, pretrained)
    if pretrained is not None and arch["vocab_size"] < tok.vocab_size:
        raise ConfigError("data.tokenizer", f"the tokenizer has {tok.vocab_size} tokens but the pretrained "
                          f"embeddings only {arch['vocab_size']}")
    return TextState(tok.to_json(), kind, labels, arch, rows[0])


def _tokenizer(data: NLPDataSpec, kind: str, texts: Iterator[str], pretrained: Path | None) -> Any:
    """A tokenizer trained on ``texts``, or the pretrained one (``texts`` still consumed)."""
    from easynlp.tokenizer import TextTokenizer

    if kind == "pretrained":
        tok = TextTokenizer.from_pretrained(data.tokenizer.path or pretrained)
        for _ in texts:  # still count rows and collect labels
            pass
        return tok
    return TextTokenizer.train(texts, kind, data.tokenizer.vocab_size, data.tokenizer.min_frequency,
                               data.tokenizer.lowercase)


def label_list(spec: NLPRunSpec, found: set[str]) -> list[str]:
    """The class / tag names: data.labels (tags: with "O" first), else those found in train."""
    data = spec.root.data
    if data.labels is not None:
        labels = list(data.labels)
        if spec.is_token and "O" not in labels:
            labels = ["O"] + labels
        return labels
    if spec.is_token:
        return ["O"] + sorted(found - {"O"})
    if len(found) < 2:
        raise DataError(f"column {data.label_column!r} of the training data has {len(found)} distinct "
                        f"value(s) ({sorted(found)}); a classifier needs two or more", file=data.train_path)
    return sorted(found)
