"""train | evaluate | predict | export for text models, on the shared trainer machinery.

The flow mirrors the recommendation one (trainer/job.py's ``_train``): rank 0 prepares the
bundled data and fits the tokenizer and the label vocabulary on the train split (every rank
then uses the identical state), the shared :class:`trainer.loop.TrainLoop` runs epochs,
evaluation, checkpoints, early stopping, resume and Optuna pruning on a
:class:`~trainer.torch_backend.engine.TorchEngine` (DDP, autocast, schedulers), and the run
directory, metrics.json, TensorBoard and the final ``run directory:`` line are the same.
A checkpoint's meta holds the tokenizer JSON, the labels and the network description, so the
other modes rebuild everything from the checkpoint alone.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes, atomic_write_json
from easynlp.schema import NLPDataSpec, NLPRunSpec
from lingjie.errors import ConfigError, DataError
from trainer.run_dir import RunDir, resolve_checkpoint

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


def run(spec: NLPRunSpec, run: RunDir, config_yaml: str, resumed: bool) -> Path:
    root = spec.root
    mode = root.trainer.mode
    if mode == "train":
        return train(spec, run, config_yaml, resumed)
    run.create()
    atomic_write_bytes(run.config, config_yaml.encode())
    ref = getattr(root.trainer, mode).checkpoint
    ckpt = resolve_checkpoint(ref, root.paths.output_root, root.experiment_name)
    log.info("%s with checkpoint %s", mode, ckpt)
    from trainer.job import _setup_threads

    _setup_threads(spec)
    restored = restore(ckpt, spec)
    if mode == "evaluate":
        _evaluate_mode(restored, run, ckpt)
    elif mode == "predict":
        out = predict_to_file(restored, run)
        log.info("predictions written to %s", out)
    else:
        out = export(restored, run.export)
        log.info("exported %s program to %s", root.trainer.export.format, out)
    return run.root


# ---------------------------------------------------------------------- pieces
def resolve_pretrained(spec: NLPRunSpec) -> Path | None:
    """``model.pretrained`` as a local directory: a path, or a bundled name prepared on first use."""
    name = getattr(spec.model, "pretrained", None)
    if not name:
        return None
    from dataio.datasets import DATASETS, ensure_dataset

    if name in DATASETS:
        return ensure_dataset(name, spec.root.paths.data_dir)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ConfigError("model.pretrained", f"'{name}' is neither a directory nor a bundled model "
                          f"({', '.join(n for n in DATASETS if n.startswith('minilm'))})")
    return path


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


def _tokenizer_texts(data: NLPDataSpec, src: Any, limit: int | None, token_task: bool, pair: bool,
                     label_values: set[str], counter: list[int]) -> Any:
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
    from easynlp.tokenizer import TextTokenizer

    data = spec.root.data
    src = make_source(data, data.train_path, _columns(spec, with_labels=True))
    label_values: set[str] = set()
    rows = [0]
    limit = data.fit_rows or data.limit_train_rows
    texts = _tokenizer_texts(data, src, limit, spec.is_token, spec.is_pair, label_values, rows)
    t = time.perf_counter()
    kind = data.tokenizer.type
    if kind == "auto":
        kind = "pretrained" if pretrained else "char"
    if kind == "pretrained":
        tok = TextTokenizer.from_pretrained(data.tokenizer.path or pretrained)
        for _ in texts:  # still count rows and collect labels
            pass
    else:
        tok = TextTokenizer.train(texts, kind, data.tokenizer.vocab_size, data.tokenizer.min_frequency,
                                  data.tokenizer.lowercase)
    if not rows[0]:
        raise DataError("the training data has no rows", file=data.train_path)
    if data.fit_rows and (not data.limit_train_rows or data.limit_train_rows > data.fit_rows):
        rows = [src.count_rows()]  # read only the fit rows: Parquet footers know the total (else None)
    labels = _label_list(spec, label_values)
    log.info("%s tokenizer: %d tokens (%.1fs); %d %s", kind, tok.vocab_size, time.perf_counter() - t, len(labels),
             "tags" if spec.is_token else "classes")
    arch = arch_of(spec.model, tok.vocab_size, tok.pad_id, pretrained)
    if pretrained is not None and arch["vocab_size"] < tok.vocab_size:
        raise ConfigError("data.tokenizer", f"the tokenizer has {tok.vocab_size} tokens but the pretrained "
                          f"embeddings only {arch['vocab_size']}")
    return TextState(tok.to_json(), kind, labels, arch, rows[0])


def _label_list(spec: NLPRunSpec, found: set[str]) -> list[str]:
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


def _columns(spec: NLPRunSpec, with_labels: bool) -> list[str]:
    d = spec.root.data
    cols = [d.text_column] + ([d.text_pair_column] if spec.is_pair else [])
    return cols + ([d.label_column] if with_labels else [])


def make_encoder(spec: NLPRunSpec, state: TextState) -> Any:
    from easynlp.data import TextEncoder
    from easynlp.tokenizer import TextTokenizer

    tok = TextTokenizer.from_json(state.tokenizer_json, state.tokenizer_kind)
    kind = spec.task_types[spec.task_name]
    return TextEncoder(tok, spec.root.data, spec.task_name, kind, state.labels, spec.is_pair)


def make_loader(spec: NLPRunSpec, encoder: Any, path: str, train: bool, with_labels: bool = True,
                dist: Any = None, padding: str | None = None, extra_columns: list[str] | None = None) -> Any:
    from easynlp.data import TextLoader
    from dataio.sharding import shard_limit

    data = spec.root.data
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    bs = data.batch_size if train else data.eval_batch_size
    # distributed: small chunks, so that round-robin chunk sharding gives every rank a fair share
    read_rows = min(data.read_rows, 4 * bs) if world > 1 else data.read_rows
    src = make_source(data, path, _columns(spec, with_labels), read_rows, extra_columns)
    limit = shard_limit(data.limit_train_rows if train else data.limit_eval_rows, src.read_rows, rank, world)
    return TextLoader(src, encoder, bs, padding=padding or data.padding, pool_batches=data.bucket_pool_batches,
                      pad_to_multiple_of=data.pad_to_multiple_of, shuffle=train and data.shuffle, seed=spec.root.seed,
                      shuffle_buffer_rows=data.shuffle_buffer_rows, with_labels=with_labels, limit_rows=limit,
                      rank=rank, world_size=world)


def new_model(spec: NLPRunSpec, state: TextState) -> Any:
    from easynlp.models import build_model

    o_index = state.labels.index("O") if "O" in state.labels else 0
    return build_model(state.arch, len(state.labels), spec.is_token, spec.task_name, spec.model.dropout,
                       spec.model.label_smoothing, o_index)


def make_engine(model: Any, trainer: Any, device: str, total_steps: int, dist: Any, precision: str) -> Any:
    import torch

    from trainer.torch_backend.engine import TorchEngine

    return TorchEngine(model, trainer, torch.device(device), total_steps, dist, precision)


def _plain(spec: NLPRunSpec) -> dict[str, Any]:
    from lingjie.schema import to_plain

    model = to_plain(spec.model)
    model.pop("tasks", None)
    return {"root": to_plain(spec.root), "model": model}


def spec_from_meta(meta: dict[str, Any]) -> NLPRunSpec:
    """The training-time spec saved in a checkpoint."""
    from easynlp.domain import build_model_spec, validate

    root = dict(meta["config"]["root"])
    root["model"] = meta["config"]["model"]
    spec = validate({**root, "trainer": {**root["trainer"], "mode": "evaluate"}})
    spec.model = build_model_spec(meta["config"]["model"])
    return spec


# ---------------------------------------------------------------------- train
def train(spec: NLPRunSpec, run: RunDir, config_yaml: str, resumed: bool) -> Path:
    from trainer.checkpoint_io import read_meta
    from trainer.job import run_metrics, start_training_process
    from trainer.loop import TrainLoop, format_metrics

    root, data = spec.root, spec.root.data
    dist, device = start_training_process(spec, run, config_yaml)
    pretrained = None
    if dist.is_main:
        if data.dataset:
            from dataio.datasets import ensure_dataset

            ensure_dataset(data.dataset, root.paths.data_dir)
        pretrained = resolve_pretrained(spec)
    dist.barrier()
    if not dist.is_main:
        pretrained = resolve_pretrained(spec)  # prepared by rank 0: now only a lookup

    ckpt = run.latest_checkpoint() if resumed else None
    meta = read_meta(ckpt) if ckpt is not None else None
    if meta is not None:
        state = TextState.from_meta(meta["text_state"])
    else:
        fitted = fit_text_state(spec, pretrained).to_meta() if dist.is_main else None
        if dist.distributed:
            fitted = dist.all_gather_object(fitted)[0]
        state = TextState.from_meta(fitted)
    model = new_model(spec, state)
    if pretrained is not None and meta is None:
        from easynlp.models import load_pretrained_weights

        load_pretrained_weights(model, pretrained)
        log.info("loaded pretrained encoder weights from %s", pretrained)

    encoder = make_encoder(spec, state)
    train_loader = make_loader(spec, encoder, data.train_path, train=True, dist=dist)
    eval_loader = make_loader(spec, encoder, data.eval_path, train=False, dist=dist) if data.eval_path else None
    rows = state.train_rows
    if rows and data.limit_train_rows:
        rows = min(rows, data.limit_train_rows)
    steps_per_epoch = -(-(-(-rows // dist.world_size)) // data.batch_size) if rows else None
    eval_rows = eval_loader.source.count_rows() if eval_loader is not None else None
    if eval_rows and data.limit_eval_rows:
        eval_rows = min(eval_rows, data.limit_eval_rows)
    eval_steps = -(-eval_rows // data.eval_batch_size) if eval_rows else None
    total_steps = root.trainer.max_steps or (steps_per_epoch or 1000) * root.trainer.epochs
    engine = make_engine(model, root.trainer, device, total_steps, dist, root.hardware.precision)
    log.info("model %s (%s) on %s: %s parameters, %d %s, max_len %d, padding=%s", spec.model.name,
             spec.model.task, device, f"{engine.num_parameters:,}", len(state.labels),
             "tags" if spec.is_token else "classes", data.max_len, data.padding)
    writer = None
    if root.logger.tensorboard and dist.is_main:
        from trainer.tensorboard import EventWriter

        writer = EventWriter(run.tensorboard)
    from easynlp.metrics import NLPMetrics

    metrics = NLPMetrics(spec.task_types, {spec.task_name: state.labels})
    extra = {"config": _plain(spec), "text_state": state.to_meta(), "domain": "nlp"}
    loop = TrainLoop(engine, root.trainer, train_loader, eval_loader, spec.task_types, run, steps_per_epoch,
                     extra, writer, None, eval_steps, dist, metrics)
    if ckpt is not None:
        loop.resume_from(ckpt)
        log.info("resumed from %s (epoch %d, step %d)", ckpt.name, loop.progress.epoch + 1, loop.progress.global_step)
    tokens = {"real": 0, "padded": 0}  # over all ranks, filled in after training

    def count_tokens() -> dict[str, Any]:
        """Tokens of this run's training batches (padding waste, tokens/s): this process's own
        counts while training, every rank's at the end."""
        totals = tokens if tokens["padded"] else train_loader.totals
        real, padded = totals["real"], totals["padded"]
        p = loop.progress
        return {"real": real, "padded": padded,
                "padding_fraction": 1 - real / padded if padded else 0.0,
                "train_tokens_per_sec": real / p.train_time if p.train_time else 0.0}

    def write_metrics(final: bool) -> None:
        if not dist.is_main:
            return
        bad = {"train": train_loader.source.stats.get("bad_rows", 0),
               "eval": eval_loader.source.stats.get("bad_rows", 0) if eval_loader else 0}
        atomic_write_json(run.metrics, run_metrics(loop, root, spec.model.name, "torch", engine, dist.world_size,
                                                   bad, final, trial_reporter, domain="nlp", task=spec.model.task,
                                                   tokens=count_tokens(), padding=data.padding))

    loop.on_epoch_end = lambda: write_metrics(False)
    from automl.reporting import attach_trial_reporter

    trial_reporter = attach_trial_reporter(loop)
    try:
        loop.fit()
    finally:
        if writer is not None:
            writer.close()
    totals = [train_loader.totals["real"], train_loader.totals["padded"]]
    tokens["real"], tokens["padded"] = (int(v) for v in (dist.sum(totals) if dist.distributed else totals))
    write_metrics(True)
    dist.barrier()
    if dist.is_main:
        if root.trainer.export.enabled:
            best = sorted(run.checkpoints.glob("best.*"))
            if best:
                engine.load_weights(best[0])
            export(Restored(spec, state, engine, encoder), run.export)
        atomic_write_bytes(run.done_marker, b"")
        final = loop.progress.history[-1] if loop.progress.history else {}
        log.info("final: %s", format_metrics(final))
    dist.barrier()
    dist.shutdown()
    return run.root


# ---------------------------------------------------------------------- other modes
@dataclass
class Restored:
    spec: NLPRunSpec  # the training-time spec (columns, model), with this run's data paths
    state: TextState
    engine: Any
    encoder: Any


def restore(ckpt: Path, current: NLPRunSpec) -> Restored:
    """Model, tokenizer and labels from a checkpoint; data paths and batching from ``current``."""
    from trainer.checkpoint_io import read_meta

    meta = read_meta(ckpt)
    if meta.get("domain") != "nlp" or "text_state" not in meta:
        raise ConfigError("checkpoint", f"{ckpt} is not a text-model checkpoint (domain {meta.get('domain', 'rec')!r})")
    trained = spec_from_meta(meta)
    cur = current.root.data
    d = trained.root.data
    for key in ("train_path", "eval_path", "format", "csv", "schema", "batch_size", "eval_batch_size",
                "limit_eval_rows", "on_error", "storage_options", "read_rows", "padding", "pad_to_multiple_of",
                "bucket_pool_batches"):
        setattr(d, key, getattr(cur, key))
    trained.root.trainer = current.root.trainer
    trained.root.paths = current.root.paths
    trained.root.hardware = current.root.hardware
    state = TextState.from_meta(meta["text_state"])
    model = new_model(trained, state)
    engine = make_engine(model, None, "cpu", 1, None, "fp32")
    engine.load_weights(ckpt)
    return Restored(trained, state, engine, make_encoder(trained, state))


def _evaluate_mode(r: Restored, run: RunDir, ckpt: Path) -> None:
    from easynlp.metrics import NLPMetrics
    from trainer.loop import evaluate, format_metrics

    root = r.spec.root
    path = root.trainer.evaluate.data_path or root.data.eval_path
    if not path:
        raise ConfigError("trainer.evaluate.data_path", "no data to evaluate on (nor data.eval_path)")
    loader = make_loader(r.spec, r.encoder, path, train=False)
    metrics = evaluate(r.engine, loader, r.spec.task_types, root.trainer.limit_eval_batches,
                       show_progress=root.trainer.progress_bar,
                       metrics=NLPMetrics(r.spec.task_types, {r.spec.task_name: r.state.labels}))
    atomic_write_json(run.metrics, {"mode": "evaluate", "checkpoint": str(ckpt), "data": path,
                                    "bad_rows": loader.source.stats.get("bad_rows", 0), "final": metrics})
    log.info("evaluation: %s", format_metrics(metrics))


def prediction_columns(spec: NLPRunSpec, labels: list[str], probs: list[Any]) -> dict[str, list[Any]]:
    """Named predictions of a list of per-row outputs (class probabilities or tag ids)."""
    import numpy as np

    name = f"{spec.task_name}_pred"  # beside a passthrough copy of the true label, if asked for
    if spec.is_token:
        return {name: [[labels[int(t)] for t in row] for row in probs]}
    p = np.asarray(probs, dtype=np.float32).reshape(len(probs), -1)
    best = p.argmax(1) if len(p) else np.zeros(0, dtype=np.int64)
    return {name: [labels[int(i)] for i in best], f"{spec.task_name}_prob": p.max(1).tolist() if len(p) else [],
            f"{spec.task_name}_probs": p.tolist()}


def predict_rows(r: Restored, path: str, extra_columns: list[str] | None = None,
                 ) -> tuple[dict[str, list[Any]], Any, dict]:
    """Predictions for every good row of ``path`` in input order, those rows (a table with the
    text and ``extra_columns``), and the source's stats (bad rows)."""
    import numpy as np
    import pyarrow as pa

    spec = r.spec
    loader = make_loader(spec, r.encoder, path, train=False, with_labels=False, padding="longest",
                         extra_columns=extra_columns)
    raw: list[Any] = []
    kept: list[Any] = []
    # pools as the loader cuts them; the kept rows of each pool (bad rows dropped) in order
    pools = loader.source.iter_batches(loader.pool_rows, limit_rows=spec.root.data.limit_eval_rows)
    for pool_no, rb in enumerate(pools):
        enc = r.encoder.encode(rb, False, loader.on_bad)
        for batch in loader.cut_pool(0, pool_no, enc):
            out = r.engine.predict(batch)[spec.task_name]
            raw.extend(list(out) if isinstance(out, list) else list(np.asarray(out)))
        kept.append(rb.take(pa.array(enc.rows)))
    table = pa.Table.from_batches(kept) if kept else None
    return prediction_columns(spec, r.state.labels, raw), table, loader.source.stats


def predict_to_file(r: Restored, run: RunDir) -> Path:
    """trainer.mode=predict: predictions (+ passthrough columns) as parquet or CSV."""
    import io

    import pyarrow as pa

    spec = r.spec
    p = spec.root.trainer.predict
    path = p.input_path or spec.root.data.eval_path
    if not path:
        raise ConfigError("trainer.predict.input_path", "no rows to predict (nor data.eval_path)")
    extra = [c for c in p.passthrough if c not in _columns(spec, with_labels=False)]
    cols, rows, stats = predict_rows(r, path, extra)
    table = pa.table({**{c: rows[c] if rows is not None else pa.array([]) for c in p.passthrough}, **cols})
    out = Path(p.output_path) if p.output_path else run.root / f"predictions.{p.format}"
    buf = io.BytesIO()
    if p.format == "csv":
        import pyarrow.csv as pacsv

        task = spec.task_name
        if spec.is_token:  # a tag list becomes one space-separated string
            for col in (c for c in table.column_names if pa.types.is_list(table[c].type)):
                table = table.set_column(table.column_names.index(col), col,
                                         pa.array([" ".join(map(str, t)) for t in table[col].to_pylist()], pa.string()))
        else:
            table = table.drop_columns([f"{task}_probs"])
        pacsv.write_csv(table, buf)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, buf)
    atomic_write_bytes(out, buf.getvalue())
    log.info("%d rows predicted (%d bad rows skipped)", table.num_rows, stats.get("bad_rows", 0))
    return out


# ---------------------------------------------------------------------- export
def export(r: Restored, out_dir: Path) -> Path:
    from easynlp.export import export_text_model

    spec = r.spec
    meta = {"experiment": spec.root.experiment_name, "model": spec.model.name, "task": spec.model.task,
            "task_name": spec.task_name, "labels": r.state.labels, "max_len": spec.root.data.max_len,
            "text_column": spec.root.data.text_column, "text_pair_column": spec.root.data.text_pair_column,
            "tokenizer_kind": r.state.tokenizer_kind, "arch": r.state.arch}
    return export_text_model(r.engine.model, r.state.tokenizer_json, out_dir, spec.root.trainer.export.format, meta)

