"""The recommendation part of a warm start (``trainer.init_from``): embedding rows by value.

A fused lookup keeps every table of one width in one weight (``FusedEmbeddingBag``: table
``t`` at rows ``base_t ..``), so a state-dict name like ``embeddings.fused.0.bag.weight``
says nothing a user would recognise, and its shape changes whenever any vocabulary does.
Here each table is addressed as ``<collection>.<table>`` (``embedding.item_id``,
``wide.emb.item_id``: what ``init_from_map`` renames or skips) and its rows are planned
one by one:

- vocabulary tables: by value -- a value in both vocabularies keeps its vector (row
  ``1 + old position`` -> ``1 + new position``), a value new to today's vocabulary keeps its
  fresh initialisation, a value gone is dropped; row 0 (out-of-vocabulary) is copied;
- hash, identity, bucketised and combo tables: row for row, when the row count is the same
  (a different bucket count changes what every row means: a mismatch);
- dynamic tables ride in the state dict whole (keys, rows, counters: ``_extra_state``).

Everything else (MLPs, towers, gates) goes by name through :mod:`trainer.warm_start`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainer.warm_start import Plan, RowCopy, plan_whole, source_names


def table_slots(model: Any) -> dict[str, tuple[str, int, int, int]]:
    """``<collection>.<table>`` -> (state-dict name of its fused weight, first row, rows, width)."""
    from easyrec.models.torch.embedding import FusedEmbeddingBag

    slots: dict[str, tuple[str, int, int, int]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, FusedEmbeddingBag):
            continue
        collection = name.rsplit(".fused.", 1)[0]
        total, width = module.bag.weight.shape
        bases = sorted(module.table_bases.items(), key=lambda kv: kv[1])
        for i, (table, base) in enumerate(bases):
            end = bases[i + 1][1] if i + 1 < len(bases) else total
            slots[f"{collection}.{table}"] = (f"{name}.bag.weight", base, end - base, int(width))
    return slots


def row_plan(old: Any, new: Any, old_rows: int, new_rows: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]] | str:
    """(source rows, target rows, counts) for one table, or why the rows cannot be carried."""
    old_kind, new_kind = getattr(old, "kind", "fixed"), getattr(new, "kind", "fixed")
    if old_kind == "vocab" and new_kind == "vocab":
        import pandas as pd

        pos = pd.Index(np.array(old.vocabulary, dtype=object)).get_indexer(np.array(new.vocabulary, dtype=object))
        kept = np.flatnonzero(pos >= 0)
        src = np.concatenate([[0], pos[kept] + 1]).astype(np.int64)  # + the OOV row
        dst = np.concatenate([[0], kept + 1]).astype(np.int64)
        return src, dst, {"remapped by value": len(kept), "new": len(new.vocabulary) - len(kept),
                          "dropped": len(old.vocabulary) - len(kept)}
    if old_kind != new_kind:
        return f"{old_kind} -> {new_kind} ids"
    if old_rows != new_rows:
        return f"{old_rows} -> {new_rows} rows ({new_kind} ids: every row would change meaning)"
    rows = np.arange(new_rows, dtype=np.int64)
    return rows, rows, {"copied": new_rows}


def plan_warm_start(target: Any, source: Any, new_pipeline: Any, old_pipeline: Any,
                    mapping: dict[str, str | None]) -> Plan:
    """The whole plan: tables row by row, then everything else by name."""
    import torch

    plan = Plan()
    new_slots, old_slots = table_slots(target), table_slots(source)
    fed = source_names(list(new_slots), list(old_slots), mapping)
    for logical, (param, base, rows, width) in new_slots.items():
        src_name = fed.get(logical)
        if src_name is None:
            plan.fresh.append(logical)
            continue
        s_param, s_base, s_rows, s_width = old_slots[src_name]
        table, s_table = logical.rsplit(".", 1)[1], src_name.rsplit(".", 1)[1]
        rows_or_why = row_plan(old_pipeline.mappings.get(s_table), new_pipeline.mappings.get(table), s_rows, rows)
        if isinstance(rows_or_why, str) or s_width != width:
            why = rows_or_why if isinstance(rows_or_why, str) else f"width {s_width} -> {width}"
            plan.mismatched.append(f"table {src_name} -> {logical}: {why}")
            continue
        src, dst, counts = rows_or_why
        plan.rows.setdefault(param, []).append(
            RowCopy(s_param, torch.from_numpy(src + s_base), torch.from_numpy(dst + base)))
        plan.tables[logical] = counts
    for param in {p for p, _, _, _ in new_slots.values()} - set(plan.rows):
        plan.rows[param] = []  # a fused weight no table feeds: fresh, never copied whole
    claimed = {p for p, _, _, _ in old_slots.values()}
    plan_whole(plan, target.state_dict(), source.state_dict(), mapping, claimed)
    return plan


def dynamic_report(model: Any, plan: Plan) -> dict[str, dict[str, int]]:
    """``dynamic.<table>`` -> how many keys (with their rows, counters and row-wise optimizer
    state) came over whole from the source's dynamic table."""
    from easyrec.dynamic.module import dynamic_modules

    out: dict[str, dict[str, int]] = {}
    names = {id(m): n for n, m in model.named_modules()}
    for m in dynamic_modules(model):
        if f"{names[id(m)]}._extra_state" in plan.whole:
            out[f"dynamic.{m.table.name}"] = {"keys copied with counters": int(sum(m.table.tier_rows()))}
    return out


def warm_start(engine: Any, new_pipeline: Any, checkpoint: Path, trainer_spec: Any) -> dict[str, Any]:
    """Load ``checkpoint``'s weights (and optimizer state with ``init_optimizer``) into
    ``engine``, tables remapped by value from the source run's feature state."""
    from easyrec.features.pipeline import FeaturePipeline
    from easyrec.restore import make_engine
    from easyrec.schema import build_model_config
    from lingjie.errors import ConfigError
    from trainer.checkpoint_io import read_meta
    from trainer.warm_start import apply_plan, carry_optimizer, check_plan, log_plan

    meta = read_meta(checkpoint)
    old_pipeline = FeaturePipeline.from_state_dict(meta["feature_state"])
    model_cfg = build_model_config(meta["config"]["model"], "torch")
    with_opt = bool(trainer_spec.init_optimizer)
    source = make_engine("torch", model_cfg, old_pipeline, trainer_spec if with_opt else None, device="cpu")
    try:
        source.restore(checkpoint) if with_opt else source.load_weights(checkpoint)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError("trainer.init_optimizer", f"the source run's optimizers do not fit this run's "
                          f"(trainer.optimizer differs?): {str(exc).splitlines()[0]}; set "
                          "trainer.init_optimizer=false") from None
    mapping = dict(trainer_spec.init_from_map or {})
    plan = plan_warm_start(engine.model, source.model, new_pipeline, old_pipeline, mapping)
    source_keys = list(table_slots(source.model)) + [k for k in source.model.state_dict()
                                                      if k not in {p for p, *_ in table_slots(source.model).values()}]
    check_plan(plan, bool(trainer_spec.init_from_strict), mapping, source_keys)
    state = source.model.state_dict()
    apply_plan(engine.model, plan, state)
    plan.tables.update(dynamic_report(engine.model, plan))
    report = log_plan(plan, checkpoint)
    if with_opt:
        report["optimizer_states"] = carry_optimizer(engine, source, plan)
    return report
