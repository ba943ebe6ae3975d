"""Synthetic Criteo-shaped click data for scale tests: 13 dense + 26 categorical, a learnable label.

Shape follows the Criteo display-ads logs: ``label`` (int64 0/1), ``I1..I13`` (float32 counts,
heavy-tailed, ~10% null), ``C1..C26`` (8-hex-digit string ids, Zipf-distributed over
per-column vocabularies of ~10 to ~100k ids, ~2% null). The label comes from a hidden
logistic model over a few dense columns, a few categorical columns and one categorical
pair (a cross, for FM/DeepFM to find), so a good model reaches AUC well above 0.5.

The hidden model is fixed (its own seed), independent of the data ``seed``: files made with
different seeds are different samples of the *same* task, so one can be the test set of
another. Rows are generated chunk by chunk, so memory does not grow with ``rows``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lingjie.errors import ConfigError

DENSE = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
MODEL_SEED = 20240601
DENSE_NULL_RATE = 0.10
CATEGORICAL_NULL_RATE = 0.02
ZIPF_EXPONENT = 1.1
CHUNK_ROWS = 262_144
ROW_GROUP_ROWS = 65_536
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class HiddenModel:
    """The generating process: vocabularies, value distributions and the true logit."""

    cardinality: np.ndarray  # [26] vocabulary size per categorical column
    zipf_cdf: list[np.ndarray]  # per column, the CDF over ranks 0..K-1
    dense_mu: np.ndarray  # [13] lognormal location of each dense column
    dense_sigma: np.ndarray  # [13] lognormal scale
    dense_weight: np.ndarray  # [13] logit weight of standardised log1p(value); mostly 0
    cat_effect: dict[int, np.ndarray]  # column index -> logit effect per rank
    cross: tuple[int, int, np.ndarray]  # (column a, column b, effect[rank_a, rank_b])
    bias: float

    @classmethod
    def build(cls) -> "HiddenModel":
        rng = np.random.default_rng(MODEL_SEED)
        cardinality = np.round(np.geomspace(10, 100_000, len(CATEGORICAL))).astype(np.int64)
        cardinality = cardinality[rng.permutation(len(CATEGORICAL))]
        cdfs = []
        for k in cardinality:  # one step per column
            weights = np.arange(1, k + 1, dtype=np.float64) ** -ZIPF_EXPONENT
            cdfs.append(np.cumsum(weights) / weights.sum())
        dense_weight = np.zeros(len(DENSE))
        dense_weight[[0, 2, 5, 10]] = [0.6, -0.5, 0.4, 0.3]
        by_size = np.argsort(cardinality)
        effect_columns = [int(by_size[1]), int(by_size[6]), int(by_size[12]), int(by_size[20])]
        cat_effect = {c: rng.normal(0.0, 0.8, int(cardinality[c])) for c in effect_columns}
        a, b = int(by_size[0]), int(by_size[3])
        cross = (a, b, rng.normal(0.0, 0.9, (int(cardinality[a]), int(cardinality[b]))))
        return cls(cardinality=cardinality, zipf_cdf=cdfs,
                   dense_mu=rng.uniform(0.5, 3.0, len(DENSE)),
                   dense_sigma=rng.uniform(0.8, 1.8, len(DENSE)),
                   dense_weight=dense_weight, cat_effect=cat_effect, cross=cross, bias=-1.3)


def _hex_ids(ranks: np.ndarray, column: int, valid: np.ndarray) -> pa.Array:
    """Ranks -> 8-hex-digit string ids (a fixed bijection per column), built without loops."""
    salt = np.uint64((column + 1) * 0x9E3779B1)
    code = ((ranks.astype(np.uint64) * np.uint64(2654435761) + salt) & np.uint64(0xFFFFFFFF))
    shifts = np.arange(28, -1, -4, dtype=np.uint64)
    digits = _HEX[((code[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.int64)]
    n = len(ranks)
    offsets = np.arange(0, 8 * n + 1, 8, dtype=np.int32)
    validity = pa.array(valid).buffers()[1]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits.tobytes()),
                                       validity, null_count=int(n - valid.sum()))


def _chunk(model: HiddenModel, rows: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` rows of the task, drawn from ``rng``."""
    columns: dict[str, pa.Array] = {}
    logit = np.full(rows, model.bias)
    for j, name in enumerate(DENSE):
        z = rng.normal(0.0, 1.0, rows)
        value = np.ceil(np.exp(model.dense_mu[j] + model.dense_sigma[j] * z)).astype(np.float32)
        present = rng.random(rows) >= DENSE_NULL_RATE
        logit += model.dense_weight[j] * np.where(present, z, 0.0)  # z is the standardised log
        columns[name] = pa.array(value, mask=~present)
    ranks = {}
    for j, name in enumerate(CATEGORICAL):
        rank = np.searchsorted(model.zipf_cdf[j], rng.random(rows), side="right")
        rank = np.minimum(rank, model.cardinality[j] - 1)
        present = rng.random(rows) >= CATEGORICAL_NULL_RATE
        ranks[j] = (rank, present)
        if j in model.cat_effect:
            logit += np.where(present, model.cat_effect[j][rank], 0.0)
        columns[name] = _hex_ids(rank, j, present)
    a, b, effect = model.cross
    (ra, pa_), (rb, pb) = ranks[a], ranks[b]
    logit += np.where(pa_ & pb, effect[ra, rb], 0.0)
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pa.table({"label": label, **columns})


def write_criteo_synth(out_dir: str | Path, rows: int, seed: int = 0, files: int = 1,
                       prefix: str = "part") -> list[Path]:
    """Write ``rows`` rows as ``files`` parquet files ``<prefix>-NNNNN.parquet`` in ``out_dir``.

    Deterministic in (rows, seed, files); memory is one chunk of ``CHUNK_ROWS`` rows.
    """
    if not isinstance(rows, int) or rows < 1:
        raise ConfigError("rows", f"must be a positive integer, got {rows!r}")
    if not isinstance(files, int) or not 1 <= files <= rows:
        raise ConfigError("files", f"must be between 1 and rows ({rows}), got {files!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = HiddenModel.build()
    rng = np.random.default_rng([seed, MODEL_SEED])
    per_file = np.full(files, rows // files)
    per_file[: rows % files] += 1
    written = []
    for index, count in enumerate(per_file):  # one step per file
        path = out / f"{prefix}-{index:05d}.parquet"
        writer = None
        try:
            for start in range(0, int(count), CHUNK_ROWS):  # one step per chunk
                table = _chunk(model, min(CHUNK_ROWS, int(count) - start), rng)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()
        written.append(path)
    return written


def prepare(inputs: dict[str, Path], out: Path, train_rows: int = 100_000,
            test_rows: int = 25_000) -> dict:
    """The registry's ``criteo-synth``: ``train.parquet`` (seed 0) and ``test.parquet`` (seed 1)."""
    for name, rows, seed in (("train", train_rows, 0), ("test", test_rows, 1)):
        (path,) = write_criteo_synth(out, rows, seed=seed, files=1, prefix=name)
        path.rename(out / f"{name}.parquet")
    schema = pq.read_schema(out / "train.parquet")
    return {"rows": {"train": train_rows, "test": test_rows},
            "split": "independent samples of the same hidden model (seeds 0 and 1)",
            "columns": {f.name: str(f.type) for f in schema}}
