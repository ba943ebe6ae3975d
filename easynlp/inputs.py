"""Where a text model's rows come from: the source over a path, the encoder and the loader.

The same functions serve training (sharded by rank), evaluation and prediction, so every mode
reads the columns, the CSV header / EasyNLP schema and the bad-row policy of ``data`` alike.
"""
from __future__ import annotations

from typing import Any

from easynlp.schema import NLPDataSpec, NLPRunSpec
from lingjie.errors import ConfigError


def make_source(data: NLPDataSpec, path: str, columns: list[str], read_rows: int | None = None,
                extra_columns: list[str] | None = None) -> Any:
    """A :class:`dataio.source.Source` over ``path`` reading ``columns`` (required: a null is a
    bad row) and ``extra_columns`` (passed through), with the CSV header / EasyNLP schema of ``data``."""
    from dataio.source import Source

    required = list(columns)
    columns = required + [c for c in extra_columns or [] if c not in required]
    try:
        src = Source(path, format=data.format, columns=columns, on_error=data.on_error, required_columns=required,
                     csv_delimiter=data.csv.delimiter, csv_header=data.csv_header(),
                     csv_column_names=data.csv_column_names(), read_rows=read_rows or data.read_rows,
                     storage_options=data.storage_options or None,
                     column_types={k: v for k, v in data.column_types().items() if k in columns} or None)
    except ConfigError as exc:
        if exc.path in ("csv_delimiter",):
            raise ConfigError("data.csv.delimiter", exc.message) from None
        raise
    src.check_columns(columns)
    return src


def text_columns(spec: NLPRunSpec, with_labels: bool) -> list[str]:
    """The columns a model reads: the text, the pair text (matching) and the label."""
    d = spec.root.data
    cols = [d.text_column] + ([d.text_pair_column] if spec.is_pair else [])
    return cols + ([d.label_column] if with_labels else [])


def make_encoder(spec: NLPRunSpec, state: Any) -> Any:
    """The :class:`easynlp.data.TextEncoder` of a fitted :class:`easynlp.text_state.TextState`."""
    from easynlp.data import TextEncoder
    from easynlp.tokenizer import TextTokenizer

    tok = TextTokenizer.from_json(state.tokenizer_json, state.tokenizer_kind)
    kind = spec.task_types[spec.task_name]
    return TextEncoder(tok, spec.root.data, spec.task_name, kind, state.labels, spec.is_pair)


def make_loader(spec: NLPRunSpec, encoder: Any, path: str, train: bool, with_labels: bool = True,
                dist: Any = None, padding: str | None = None, extra_columns: list[str] | None = None) -> Any:
    """This rank's :class:`easynlp.data.TextLoader` over ``path`` (train: the train batch size,
    row limit and shuffling; else the eval ones)."""
    from dataio.sharding import shard_limit
    from easynlp.data import TextLoader

    data = spec.root.data
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    bs = data.batch_size if train else data.eval_batch_size
    # distributed: small chunks, so that round-robin chunk sharding gives every rank a fair share
    read_rows = min(data.read_rows, 4 * bs) if world > 1 else data.read_rows
    src = make_source(data, path, text_columns(spec, with_labels), read_rows, extra_columns)
    limit = shard_limit(data.limit_train_rows if train else data.limit_eval_rows, src.read_rows, rank, world)
    return TextLoader(src, encoder, bs, padding=padding or data.padding, pool_batches=data.bucket_pool_batches,
                      pad_to_multiple_of=data.pad_to_multiple_of, shuffle=train and data.shuffle, seed=spec.root.seed,
                      shuffle_buffer_rows=data.shuffle_buffer_rows, with_labels=with_labels, limit_rows=limit,
                      rank=rank, world_size=world)
