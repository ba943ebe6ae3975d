"""Delta exports, the writer: every N steps (or T seconds) what changed since the last export.

Why deltas: a full export of a recommendation model is mostly embedding rows, and between two
exports only the rows of the ids seen meanwhile change. A delta holds the changed rows of every
embedding weight (exact: compared bit for bit against a snapshot taken at the last export, so
replaying the chain reproduces the model), the changed / admitted / evicted keys of every
dynamic table, and every other tensor in full (dense weights are small). Format: see
:mod:`easyrec.delta_format`; applying: :mod:`easyrec.delta_apply`.

The chain: a full export (meta.json ``version`` = its step) is the base; each delta names the
base and the delta before it. After ``full_every_deltas`` deltas the next export is a full one
(``<run>/export`` rewritten in place, meta.json last); the older deltas are then removed. A
torch.export program bakes the size of a dynamic table's buffers into its graph, so when a
dynamic table outgrows the size of its base export the next export is a full one too; to make
that rare, the full exports of a torch.export program hold each dynamic table with room for twice
its rows, at most its capacity (padded with sentinel keys that are never looked up).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from dataio.atomic import atomic_write_bytes, atomic_write_json, fsync_dir, sha256_of
from easyrec.delta_format import DELTAS, FORMAT, MANIFEST, TENSORS, VERSION, delta_name, list_deltas
from trainer.callbacks import Callback

log = logging.getLogger("lingjie")


def export_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors the export writes (dynamic tables frozen), as CPU copies, and the kind of
    each delta-able entry: ``rows`` (an embedding weight: name) or ``dynamic`` (a frozen
    dynamic table: module name, its ``.keys`` / ``.weight`` buffers)."""
    from easyrec.dynamic.module import FrozenDynamicEmbedding, frozen_for_export

    with torch.no_grad(), frozen_for_export(model):
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if isinstance(v, Tensor)}
        kinds: dict[str, str] = {}
        for name, module in model.named_modules():
            prefix = f"{name}." if name else ""
            if isinstance(module, (nn.EmbeddingBag, nn.Embedding)) and f"{prefix}weight" in state:
                kinds[f"{prefix}weight"] = "rows"
            elif isinstance(module, FrozenDynamicEmbedding):
                kinds[name] = "dynamic"
    return state, kinds


def rows_equal(a: Tensor, b: Tensor) -> Tensor:
    """Per row of two [R, ...] tensors: bit-identical (NaN == NaN, -0.0 != 0.0)."""
    if a.numel() == 0:
        return torch.ones(a.shape[0], dtype=torch.bool)
    return (a.reshape(a.shape[0], -1).contiguous().view(torch.uint8)
            == b.reshape(b.shape[0], -1).contiguous().view(torch.uint8)).all(1)


def diff_rows(name: str, prev: Tensor, cur: Tensor, out: dict[str, Tensor]) -> dict[str, int]:
    """Changed rows of one embedding weight into ``out``; returns its manifest entry."""
    ids = (~rows_equal(cur, prev)).nonzero().squeeze(1)
    out[f"rows/{name}/ids"] = ids
    out[f"rows/{name}/values"] = cur[ids].clone()
    return {"kind": "rows", "rows": int(cur.shape[0]), "changed": int(ids.numel())}


def real_rows(state: dict[str, Tensor], name: str) -> tuple[Tensor, Tensor]:
    """The keys and rows of a frozen dynamic table without its sentinel keys / default rows."""
    keys = state[f"{name}.keys"]
    n = int((keys != torch.iinfo(torch.int64).max).sum())
    return keys[:n], state[f"{name}.weight"][:n]


def diff_dynamic(name: str, prev: dict[str, Tensor], cur: dict[str, Tensor], out: dict[str, Tensor]) -> dict[str, int]:
    """Changed / admitted keys (with rows) and evicted keys of one frozen dynamic table."""
    pk, pr = real_rows(prev, name)
    ck, cr = real_rows(cur, name)
    known = torch.isin(ck, pk)
    same = torch.zeros_like(known)
    if pk.numel():
        pos = torch.searchsorted(pk, ck).clamp(max=pk.numel() - 1)
        same = known & rows_equal(cr, pr[pos])
    out[f"dyn/{name}/keys"] = ck[~same].clone()
    out[f"dyn/{name}/rows"] = cr[~same].clone()
    out[f"dyn/{name}/evicted"] = pk[~torch.isin(pk, ck)].clone()
    out[f"dyn/{name}/default"] = cur[f"{name}.weight"][-1].clone()
    return {"kind": "dynamic", "rows": int(ck.numel()), "changed": int((~same).sum()),
            "admitted": int((~known).sum()), "evicted": int(out[f"dyn/{name}/evicted"].numel())}


def diff_state(prev: dict[str, Tensor], cur: dict[str, Tensor], kinds: dict[str, str]
               ) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, int]]:
    """(tensors, tables, dense) of the delta from ``prev`` to ``cur``."""
    out: dict[str, Tensor] = {}
    tables: dict[str, Any] = {}
    covered = set()
    for name, kind in kinds.items():
        if kind == "rows" and prev.get(name) is not None and prev[name].shape == cur[name].shape:
            tables[name] = diff_rows(name, prev[name], cur[name], out)
            covered.add(name)
        elif kind == "dynamic":
            tables[name] = diff_dynamic(name, prev, cur, out)
            covered.update((f"{name}.keys", f"{name}.weight"))
    dense = {}
    for name, value in cur.items():
        if name not in covered:
            out[f"full/{name}"] = value
            dense[name] = int(value.numel())
    return out, tables, dense


def write_delta(export_dir: Path, step: int, base: str, previous: int | None, program_format: str,
                tensors: dict[str, Tensor], tables: dict[str, Any], dense: dict[str, int]) -> Path:
    """``export_dir/deltas/delta-<step>/``: delta.pt, then manifest.json, in a temp dir renamed
    into place (a reader never sees a half-written delta)."""
    import io

    root = Path(export_dir) / DELTAS
    root.mkdir(parents=True, exist_ok=True)
    final = root / delta_name(step)
    tmp = root / f".{delta_name(step)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    buf = io.BytesIO()
    torch.save(tensors, buf)
    atomic_write_bytes(tmp / TENSORS, buf.getvalue())
    manifest = {"format": FORMAT, "version": VERSION, "base": base, "step": step, "previous": previous,
                "program_format": program_format, "file": TENSORS, "bytes": len(buf.getvalue()),
                "sha256": sha256_of(tmp / TENSORS), "tables": tables, "dense": dense}
    atomic_write_json(tmp / MANIFEST, manifest)
    if final.exists():  # a resumed run writing the same step again
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    return final


def remove_deltas(export_dir: Path, keep_base: str) -> None:
    """Remove the deltas (and stale temp dirs) that do not apply to the base ``keep_base``."""
    import json

    root = Path(export_dir) / DELTAS
    if not root.is_dir():
        return
    keep = set()
    for _, path in list_deltas(export_dir):
        try:
            if str(json.loads((path / MANIFEST).read_text()).get("base")) == keep_base:
                keep.add(path)
        except (OSError, ValueError):
            pass
    for entry in root.iterdir():
        if entry not in keep:
            shutil.rmtree(entry, ignore_errors=True)


class DeltaWriter:
    """The export schedule of one run: a full base export, deltas every N steps / T seconds,
    a full export again after K deltas. ``full_export(version)`` writes the full export."""

    def __init__(self, export_spec: Any, export_dir: Path, full_export: Callable[[str], Any]) -> None:
        self.every_steps = export_spec.delta_every_steps
        self.every_seconds = export_spec.delta_every_seconds
        self.full_every = export_spec.full_every_deltas
        self.format = export_spec.format
        self.export_dir = Path(export_dir)
        self.full_export = full_export
        self.base = ""
        self.previous: int | None = None
        self.count = 0
        self.snapshot: dict[str, Tensor] = {}
        self.base_sizes: dict[str, int] = {}  # dynamic table -> its buffers' rows in the base export
        self.last_time = time.monotonic()

    def due(self, step: int) -> bool:
        if self.every_steps and step % self.every_steps == 0:
            return True
        return bool(self.every_seconds) and time.monotonic() - self.last_time >= self.every_seconds

    def maybe_write(self, model: nn.Module, step: int) -> Path | None:
        """The scheduled export at ``step`` if one is due (a delta, or a full one)."""
        if not self.due(step) or (self.previous is not None and step <= self.previous) or str(step) == self.base:
            return None
        return self.write(model, step)

    def write(self, model: nn.Module, step: int) -> Path:
        state, kinds = export_state(model)
        if self.count >= self.full_every or not self.base or self._outgrown(state, kinds):
            return self.full(model, step, (state, kinds))
        tensors, tables, dense = diff_state(self.snapshot, state, kinds)
        path = write_delta(self.export_dir, step, self.base, self.previous, self.format, tensors, tables, dense)
        self.snapshot, self.previous, self.count = state, step, self.count + 1
        self.last_time = time.monotonic()
        log.info("delta export %s (base %s): %d bytes", path.name, self.base, (path / TENSORS).stat().st_size)
        return path

    def full(self, model: nn.Module, step: int, current: tuple[dict[str, Tensor], dict[str, str]] | None = None
             ) -> Path:
        """A full export labelled ``step`` (the new base); then the old deltas go."""
        if self.format == "torch_export":  # its graph fixes the tables' sizes: room for what deltas admit
            from easyrec.dynamic.module import pad_frozen_tables

            pad_frozen_tables(model)
            current = None  # the snapshot must hold the padded tables the program holds
        out = Path(self.full_export(str(step)))
        self.snapshot, kinds = current if current is not None else export_state(model)
        self.base_sizes = {n: self.snapshot[f"{n}.keys"].numel() - 1 for n, k in kinds.items() if k == "dynamic"}
        self.base, self.previous, self.count = str(step), None, 0
        self.last_time = time.monotonic()
        remove_deltas(self.export_dir, self.base)
        return out

    def _outgrown(self, state: dict[str, Tensor], kinds: dict[str, str]) -> bool:
        """A torch.export program's dynamic table cannot grow past its base export's size."""
        if self.format != "torch_export":
            return False
        return any(real_rows(state, n)[0].numel() > self.base_sizes.get(n, 0) for n, k in kinds.items() if k == "dynamic")


class DeltaCallback(Callback):
    """Train mode: the base export at fit start, then :class:`DeltaWriter`'s schedule after each
    step; at fit end the recipe's final export is labelled with the last step."""

    def __init__(self, writer: DeltaWriter, on_end: Callable[[int], None]) -> None:
        self.writer = writer
        self.on_end = on_end

    def on_fit_start(self, loop: Any) -> None:
        self.writer.full(loop.engine.model, loop.progress.global_step)

    def on_train_step(self, loop: Any, loss: float) -> bool:
        self.writer.maybe_write(loop.engine.model, loop.progress.global_step)
        return False

    def on_fit_end(self, loop: Any) -> None:
        self.on_end(loop.progress.global_step)
