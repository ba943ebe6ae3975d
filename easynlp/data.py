"""Text rows -> token-id batches, with length-bucketed padding (BladeDISC's point: no waste).

Rows come from :class:`dataio.source.Source` (fsspec files: parquet, CSV/TSV with a header or
an EasyNLP ``name:type`` schema, JSON lines; sharded by rank, shuffled, resumable), in pools
of ``bucket_pool_batches`` batches. A pool is tokenized in one call (the Rust tokenizer runs
in parallel and releases the GIL, so a background thread prepares the next batches while the
model trains), then, with ``padding=bucket``, sorted by length and cut into batches whose
order is shuffled: each batch is padded only to its own longest row. ``padding=max_length``
pads every row to ``max_len`` (the fixed-shape baseline); ``longest`` keeps the input order.

Bad rows (a null text, an unknown label, a tag list whose length differs from the token
list) are raised with the file named, or counted and dropped with ``data.on_error=skip``, like
the source's own bad rows (wrong field count, unparsable JSON).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from easynlp.schema import NLPDataSpec
from easynlp.tokenizer import TextTokenizer
from lingjie.errors import DataError

IGNORE = -100  # label of positions that carry no target (padding, non-first sub-tokens)
NO_WORD = -2  # word_starts padding; -1 marks a word that truncation cut off (easynlp.models.NO_WORD)


@dataclass
class TextBatch:
    """One padded batch; converts itself to model inputs (TorchEngine calls ``to_torch``)."""

    input_ids: np.ndarray  # [B, L] int64
    attention_mask: np.ndarray  # [B, L] int64, 1 = real token
    token_type_ids: np.ndarray | None = None  # [B, L] sentence pairs
    word_starts: np.ndarray | None = None  # [B, W] first-token position of each word (-1 cut, -2 pad)
    labels: dict[str, Any] = field(default_factory=dict)  # task -> [B] class ids | list of tag arrays
    rows: np.ndarray | None = None  # positions of the rows in their pool (predict keeps order)

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def padded_tokens(self) -> int:
        return int(self.attention_mask.size)

    def to_torch(self, device: Any) -> dict[str, Any]:
        import torch

        out = {"input_ids": torch.from_numpy(self.input_ids).to(device),
               "attention_mask": torch.from_numpy(self.attention_mask).to(device)}
        if self.token_type_ids is not None:
            out["token_type_ids"] = torch.from_numpy(self.token_type_ids).to(device)
        if self.word_starts is not None:
            out["word_starts"] = torch.from_numpy(self.word_starts).to(device)
        return out

    def labels_to_torch(self, device: Any) -> dict[str, Any]:
        import torch

        out = {}
        for task, value in self.labels.items():
            if isinstance(value, list):  # per-word tags: [B, W], truncated words ignored
                width = self.word_starts.shape[1] if self.word_starts is not None else max(map(len, value))
                padded = np.full((len(value), width), IGNORE, dtype=np.int64)
                for i, tags in enumerate(value):
                    padded[i, :len(tags)] = tags
                if self.word_starts is not None:
                    padded[self.word_starts < 0] = IGNORE  # cut by truncation / padding
                out[task] = torch.from_numpy(padded).to(device)
            else:
                out[task] = torch.from_numpy(np.asarray(value, dtype=np.int64)).to(device)
        return out


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclass
class Encoded:
    """The rows of one pool after tokenization (bad rows already dropped)."""

    ids: list[np.ndarray]
    types: list[np.ndarray] | None
    starts: list[np.ndarray] | None
    labels: Any  # np.ndarray of class ids | list of tag-id arrays | None
    rows: np.ndarray  # position of each kept row in the pool


def split_tokens(column: pa.Array) -> list[list[str]]:
    """A token column: a list of strings, or a string split on whitespace."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return [[str(t) for t in (v or [])] for v in column.to_pylist()]
    return [(v or "").split() for v in column.cast(pa.string()).to_pylist()]


class TextEncoder:
    """Record batches -> token ids and label ids, the same code for training and prediction."""

    def __init__(self, tokenizer: TextTokenizer, data: NLPDataSpec, task: str, kind: str,
                 label_names: list[str], pair: bool) -> None:
        self.tokenizer = tokenizer
        self.data = data
        self.task = task
        self.kind = kind  # multiclass | token
        self.label_names = list(label_names)
        self.label_index = {name: i for i, name in enumerate(self.label_names)}
        self.pair = pair

    def columns(self, with_labels: bool) -> list[str]:
        d = self.data
        cols = [d.text_column] + ([d.text_pair_column] if self.pair and d.text_pair_column else [])
        return cols + ([d.label_column] if with_labels else [])

    def encode(self, rb: pa.RecordBatch | pa.Table, with_labels: bool, on_bad: Any) -> Encoded:
        """Tokenize a pool; ``on_bad(row, reason)`` raises or counts a bad row (then dropped)."""
        d = self.data
        n = rb.num_rows
        keep = np.ones(n, dtype=bool)
        label_ids = None
        tags: list[np.ndarray] | None = None
        if self.kind == "token":
            words = split_tokens(rb.column(d.text_column))
            if with_labels:
                tag_lists = split_tokens(rb.column(d.label_column))
                tags = []
                for i, (w, t) in enumerate(zip(words, tag_lists)):
                    ids = [self.label_index.get(x, -1) for x in t]
                    if len(t) != len(w):
                        on_bad(i, f"{len(t)} tags for {len(w)} tokens in column {d.label_column!r}")
                        keep[i] = False
                    elif -1 in ids:
                        unknown = t[ids.index(-1)]
                        on_bad(i, f"tag {unknown!r} is not one of the {len(self.label_names)} tags "
                                  f"fitted on train ({', '.join(self.label_names[:12])})")
                        keep[i] = False
                    tags.append(np.asarray(ids, dtype=np.int64))
            for i, w in enumerate(words):
                if keep[i] and not w:
                    on_bad(i, f"no tokens in column {d.text_column!r}")
                    keep[i] = False
            kept = np.flatnonzero(keep)
            ids, starts = self.tokenizer.encode_words([words[i] for i in kept], d.max_len)
            return Encoded(ids, None, starts, [tags[i] for i in kept] if tags is not None else None, kept)
        texts = rb.column(d.text_column).cast(pa.string()).to_pylist()
        pairs = rb.column(d.text_pair_column).cast(pa.string()).to_pylist() if self.pair else None
        if with_labels:
            raw = rb.column(d.label_column).cast(pa.string()).to_pylist()
            label_ids = np.asarray([self.label_index.get(v, -1) if v is not None else -1 for v in raw], dtype=np.int64)
            for i in np.flatnonzero(label_ids < 0):
                on_bad(int(i), f"label {raw[i]!r} is not one of the classes fitted on train "
                               f"({', '.join(self.label_names[:12])}); set data.labels to list every class")
                keep[i] = False
        kept = np.flatnonzero(keep)
        ids, types = self.tokenizer.encode([texts[i] for i in kept], [pairs[i] for i in kept] if pairs else None,
                                           d.max_len)
        return Encoded(ids, types, None, label_ids[kept] if label_ids is not None else None, kept)


def make_batch(enc: Encoded, idx: np.ndarray, pad_id: int, length: int | None, multiple: int,
               task: str) -> TextBatch:
    """Pad rows ``idx`` of a pool to ``length`` (None: their longest, rounded up to ``multiple``)."""
    lens = np.asarray([len(enc.ids[i]) for i in idx])
    width = length or _round_up(int(lens.max()), multiple)
    ids = np.full((len(idx), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64) if enc.types is not None else None
    for r, i in enumerate(idx):
        ids[r, :lens[r]] = enc.ids[i]
        mask[r, :lens[r]] = 1
        if types is not None:
            types[r, :lens[r]] = enc.types[i]
    starts = None
    if enc.starts is not None:
        w = max(1, max(len(enc.starts[i]) for i in idx))
        starts = np.full((len(idx), w), NO_WORD, dtype=np.int64)
        for r, i in enumerate(idx):
            starts[r, :len(enc.starts[i])] = enc.starts[i]
    labels: dict[str, Any] = {}
    if enc.labels is not None:
        labels[task] = [enc.labels[i] for i in idx] if isinstance(enc.labels, list) else enc.labels[idx]
    return TextBatch(ids, mask, types, starts, labels, enc.rows[idx])


class TextLoader:
    """Batches of one split for one rank; ``epoch(e, skip_batches)`` is deterministic.

    ``stats`` counts tokens of the most recent pass: ``real`` (rows' own tokens) and
    ``padded`` (slots of the padded batches), so ``1 - real/padded`` is the padding waste;
    ``totals`` adds them up over every pass.
    """

    def __init__(self, source: Any, encoder: TextEncoder, batch_size: int, *, padding: str = "bucket",
                 pool_batches: int = 32, pad_to_multiple_of: int = 8, shuffle: bool = False, seed: int = 0,
                 shuffle_buffer_rows: int = 100_000, with_labels: bool = True, limit_rows: int | None = None,
                 rank: int = 0, world_size: int = 1, prefetch: int = 8) -> None:
        self.source = source
        self.encoder = encoder
        self.batch_size = batch_size
        self.padding = padding
        self.pool_rows = batch_size * pool_batches
        self.multiple = pad_to_multiple_of
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer_rows = shuffle_buffer_rows
        self.with_labels = with_labels
        self.limit_rows = limit_rows
        self.rank = rank
        self.world_size = world_size
        self.prefetch = prefetch
        self.stats = {"real": 0, "padded": 0, "batches": 0}
        self.totals = {"real": 0, "padded": 0}  # over every pass of this loader

    def on_bad(self, row: int, reason: str) -> None:
        """A bad row of the current pool: raise (data.on_error=raise) or count it in the source's stats."""
        if self.encoder.data.on_error == "raise":
            files = getattr(self.source, "files", [])
            where = files[0] if len(files) == 1 else f"{len(files)} files"
            raise DataError(f"{reason} (set data.on_error=skip to drop such rows)", file=where)
        self.source.stats["bad_rows"] = self.source.stats.get("bad_rows", 0) + 1

    def cut_pool(self, epoch: int, pool_no: int, enc: Encoded) -> Iterator[TextBatch]:
        """The padded batches of one encoded pool, in the order ``padding`` gives (bucket: by
        length, batch order shuffled per epoch when training; longest / max_length: input order)."""
        n = len(enc.ids)
        if not n:
            return
        order = np.arange(n)
        length = self.encoder.data.max_len if self.padding == "max_length" else None
        if self.padding == "bucket":
            lens = np.asarray([len(x) for x in enc.ids])
            order = np.argsort(lens, kind="stable")
        cuts = [order[i:i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.padding == "bucket" and self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, self.rank, pool_no, 7])
            cuts = [cuts[i] for i in rng.permutation(len(cuts))]
        pad_id = self.encoder.tokenizer.pad_id
        for idx in cuts:
            yield make_batch(enc, idx, pad_id, length, self.multiple, self.encoder.task)

    def batches(self, epoch: int, skip_batches: int = 0) -> Iterator[TextBatch]:
        """The epoch's batches in this thread (no prefetch)."""
        self.stats = {"real": 0, "padded": 0, "batches": 0}
        pools = self.source.iter_batches(
            self.pool_rows, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
            shuffle_buffer_rows=self.shuffle_buffer_rows, rank=self.rank, world_size=self.world_size,
            limit_rows=self.limit_rows)
        done = 0
        for pool_no, rb in enumerate(pools):
            enc = self.encoder.encode(rb, self.with_labels, self.on_bad)
            for batch in self.cut_pool(epoch, pool_no, enc):
                done += 1
                if done <= skip_batches:
                    continue
                self.stats["real"] += batch.real_tokens
                self.stats["padded"] += batch.padded_tokens
                self.stats["batches"] += 1
                self.totals["real"] += batch.real_tokens
                self.totals["padded"] += batch.padded_tokens
                yield batch

    def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[tuple[int, TextBatch]]:
        """(index, batch) pairs, prepared by a background thread while the model trains."""
        from trainer.prefetch import prefetch

        return prefetch(lambda: enumerate(self.batches(epoch, skip_batches)), self.prefetch,
                        name="lingjie-text-loader")
