"""``trainer.init_from``: start a new run from another run's weights (a warm start).

Unlike ``trainer.resume`` (which continues one unfinished run: same data position, same
optimizer, same schedule), a warm start begins a *new* run -- new data, a fresh schedule --
with the weights of a previous one, the way a daily job retrains from yesterday's model
(EasyRec / TorchEasyRec ``fine_tune_checkpoint``, DeepRec's day-N -> day-N+1 restore).

What is generic lives here: finding the source checkpoint (a run directory, a checkpoint file,
a URL, or ``latest``), renaming or skipping parts (``init_from_map``: glob patterns whose
``*`` carry over into the new name), copying tensors by name with a shape check, building a
tensor from row copies (``RowCopy``: a domain says which source rows become which target rows,
e.g. recommendation tables remapped by vocabulary value), and carrying the optimizer state
over the same way (``init_optimizer``). Shapes that cannot match are one ConfigError listing
them all. Torch checkpoints only: a TF checkpoint is refused with one line.
"""
from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lingjie.errors import ConfigError

log = logging.getLogger("lingjie")

KEY = "trainer.init_from"


# ----- where the weights come from ---------------------------------------------------------
def resolve_init_source(ref: str, output_root: str, experiment_name: str, current_run: Path) -> Path:
    """The checkpoint file ``trainer.init_from`` names: ``latest`` (this experiment's newest
    finished run), a run directory, a checkpoint file, or a URL to either (fetched into
    ``<current_run>/init_from/``). A run's ``best`` checkpoint is preferred: it is what the
    run exported, so what was being served."""
    from trainer.run_dir import find_runs

    if ref == "latest":
        runs = [r for r in find_runs(output_root, experiment_name)
                if r.is_done() and r.root.resolve() != current_run.resolve()]
        if not runs:
            raise ConfigError(KEY, f"no finished run of experiment '{experiment_name}' under {output_root} to "
                              "warm-start from; train one first or give a run directory")
        return _checkpoint_of(runs[-1].root, ref)
    if "://" in ref and not ref.startswith("file://"):
        return _fetch_remote(ref, current_run / "init_from")
    path = Path(ref.removeprefix("file://")).expanduser()
    if path.is_file() or path.suffix == ".tfckpt":
        return path
    if path.is_dir():
        return _checkpoint_of(path, ref)
    raise ConfigError(KEY, f"'{ref}' does not exist: give a run directory, a checkpoint file (.pt), a URL or latest")


def _checkpoint_of(run_root: Path, ref: str) -> Path:
    """``checkpoints/best.pt`` of a run, else its latest checkpoint."""
    from trainer.run_dir import RunDir

    run = RunDir(run_root)
    best = sorted(run.checkpoints.glob("best.*")) if run.checkpoints.is_dir() else []
    found = best[0] if best else run.latest_checkpoint()
    if found is None:
        raise ConfigError(KEY, f"'{ref}' holds no checkpoint (expected {run_root}/checkpoints/best.pt or a "
                          "step / epoch checkpoint)")
    return found


def _fetch_remote(url: str, into: Path) -> Path:
    """A remote checkpoint file, or a remote run directory's best (else newest) checkpoint,
    copied to ``into`` (the new run's own directory: a later resume reads the same bytes)."""
    from dataio.atomic import atomic_write_bytes
    from dataio.filesystems import filesystem_for

    fs, path = filesystem_for(url)
    try:
        if fs.isdir(path):
            names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path.rstrip("/") + "/checkpoints", detail=False))
            pts = [n for n in names if n.endswith(".pt")]
            pick = next((n for n in pts if n.startswith("best")), pts[-1] if pts else None)
            if pick is None:
                raise ConfigError(KEY, f"{url} holds no checkpoints/*.pt")
            path = path.rstrip("/") + "/checkpoints/" + pick
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise ConfigError(KEY, f"{url} does not exist (a run directory or a checkpoint .pt file)") from None
    target = into / path.rsplit("/", 1)[-1]
    atomic_write_bytes(target, data)
    return target


# ----- names -------------------------------------------------------------------------------
def _pattern(glob: str) -> re.Pattern[str]:
    """A glob whose every ``*`` is a capture group (re-used by the new name's ``*``)."""
    return re.compile("".join("(.*)" if c == "*" else re.escape(c) for c in glob) + r"\Z")


def rename(name: str, mapping: dict[str, str | None]) -> str | None:
    """The name ``name`` takes in the new model under ``init_from_map`` (None: skipped).

    Keys are globs (``*`` matches anything); a value's ``*`` s take what the key's matched,
    in order: ``{"*.movie_id": "*.item_id"}``; ``{"wide.*": null}`` skips the wide part."""
    for glob, target in mapping.items():
        m = _pattern(glob).match(name) if "*" in glob else (re.match(re.escape(glob) + r"\Z", name))
        if not m:
            continue
        if target is None or target in ("", "null", "None"):
            return None
        parts = iter(m.groups())
        return re.sub(r"\*", lambda _: next(parts, ""), target)
    return name


def source_names(targets: list[str], sources: list[str], mapping: dict[str, str | None]) -> dict[str, str]:
    """target name -> the source name that feeds it (after renames; skipped sources feed nothing)."""
    fed: dict[str, str] = {}
    for s in sources:
        t = rename(s, mapping)
        if t is not None and t in targets:
            fed.setdefault(t, s)
    return fed


def unused_patterns(mapping: dict[str, str | None], names: list[str]) -> list[str]:
    """init_from_map keys that match no source name (most likely a typo)."""
    return [g for g in mapping if not any(fnmatch.fnmatchcase(n, g) for n in names)]


# ----- tensors -----------------------------------------------------------------------------
@dataclass
class RowCopy:
    """Rows ``src`` of source tensor ``source`` become rows ``dst`` of the target tensor."""

    source: str
    src: Any  # int64 index tensor
    dst: Any


@dataclass
class Plan:
    """How every target tensor is built: copied whole from a source name, assembled from row
    copies (the rest keeps its fresh value), or left fresh."""

    whole: dict[str, str] = field(default_factory=dict)  # target -> source
    rows: dict[str, list[RowCopy]] = field(default_factory=dict)  # target -> row copies
    fresh: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # report: table -> counts


def plan_whole(plan: Plan, target: dict[str, Any], source: dict[str, Any], mapping: dict[str, str | None],
               claimed: set[str]) -> None:
    """Fill ``plan`` for the tensors a domain did not plan by rows: same name (after
    ``init_from_map``), same shape -> copied; a shape difference is a mismatch."""
    targets = [t for t in target if t not in plan.rows]
    sources = [s for s in source if s not in claimed]
    fed = source_names(targets, sources, mapping)
    for t in targets:
        s = fed.get(t)
        if s is None:
            plan.fresh.append(t)
        elif _shape(source[s]) != _shape(target[t]):
            plan.mismatched.append(f"{s} {_shape(source[s])} -> {t} {_shape(target[t])}")
        else:
            plan.whole[t] = s
    used = set(plan.whole.values()) | claimed
    plan.unused = [s for s in source if s not in used and not s.endswith("num_batches_tracked")]


def _shape(v: Any) -> tuple[int, ...] | str:
    return tuple(v.shape) if hasattr(v, "shape") else type(v).__name__


def check_plan(plan: Plan, strict: bool, mapping: dict[str, str | None], source_keys: list[str]) -> None:
    """One ConfigError listing every part that cannot be carried over (and, with
    ``init_from_strict``, every new part the source lacks)."""
    if plan.mismatched:
        raise ConfigError(KEY, "shapes differ, cannot warm-start: " + "; ".join(plan.mismatched)
                          + " -- skip them with trainer.init_from_map={NAME: null} or keep the model's shape")
    if strict and plan.fresh:
        raise ConfigError("trainer.init_from_strict", "the source run has no " + ", ".join(plan.fresh)
                          + " -- map them with trainer.init_from_map or set trainer.init_from_strict=false")
    unused = unused_patterns(mapping, source_keys)
    if unused:
        raise ConfigError("trainer.init_from_map", f"{', '.join(unused)} match(es) nothing in the source run; "
                          f"its parts are: {', '.join(source_keys[:40])}")


def build_tensor(fresh: Any, copies: list[RowCopy], source: dict[str, Any]) -> Any:
    """``fresh`` (cloned) with each row copy applied."""
    out = fresh.detach().clone()
    for c in copies:
        if len(c.dst):
            out[c.dst.to(out.device)] = source[c.source][c.src].to(out.device, out.dtype)
    return out


def apply_plan(model: Any, plan: Plan, source: dict[str, Any]) -> None:
    """Load the planned state into ``model`` (fresh tensors stay as initialised)."""
    state = model.state_dict()
    for t, s in plan.whole.items():
        state[t] = source[s]
    for t, copies in plan.rows.items():
        state[t] = build_tensor(state[t], copies, source)
    model.load_state_dict(state)


def carry_optimizer(target_engine: Any, source_engine: Any, plan: Plan) -> int:
    """``init_optimizer``: the source optimizers' per-parameter state (Adam moments, Adagrad
    sums, step counts) moved onto the target parameters the plan feeds, row copies applied to
    every tensor shaped like its parameter (rows without a source start at zero). Returns how
    many parameters got state."""
    import torch

    src_params = dict(source_engine.model.named_parameters())
    src_state = {n: o.state[p] for o in source_engine.optimizers for n, p in src_params.items() if p in o.state}
    carried = 0
    for name, p in target_engine.model.named_parameters():
        opt = next((o for o in target_engine.optimizers if any(p is q for g in o.param_groups for q in g["params"])),
                   None)
        if opt is None:
            continue
        if name in plan.whole and plan.whole[name] in src_state:
            opt.state[p] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in src_state[plan.whole[name]].items()}
            carried += 1
        elif name in plan.rows:
            states = {c.source: src_state.get(c.source) for c in plan.rows[name]}
            first = next((s for s in states.values() if s), None)
            if first is None:
                continue
            shapes = {s: tuple(src_params[s].shape) for s in states if s in src_params}
            opt.state[p] = {k: _state_rows(k, v, p, plan.rows[name], states, shapes) for k, v in first.items()}
            carried += 1
    return carried


def _state_rows(key: str, value: Any, param: Any, copies: list[RowCopy], states: dict[str, Any],
                shapes: dict[str, tuple[int, ...]]) -> Any:
    """One optimizer-state entry of a row-planned parameter: a tensor shaped like its source
    parameter is rebuilt row by row at the target's shape (zeros where no row is copied);
    anything else (step counters) is copied."""
    import torch

    by_source = {s: st[key] for s, st in states.items()
                 if st and torch.is_tensor(st.get(key)) and tuple(st[key].shape) == shapes.get(s)}
    if not by_source:
        return value.clone() if torch.is_tensor(value) else value
    zero = torch.zeros(tuple(param.shape), dtype=next(iter(by_source.values())).dtype)
    return build_tensor(zero, [c for c in copies if c.source in by_source], by_source)


def warm_start_by_name(engine: Any, source_engine: Any, trainer_spec: Any, checkpoint: Path) -> dict[str, Any]:
    """The warm start of a model without remapped rows (vision, text): every tensor by name
    (after ``init_from_map``) with a shape check."""
    if trainer_spec.init_optimizer:
        raise ConfigError("trainer.init_optimizer", "this domain carries weights only; set trainer.init_optimizer=false")
    mapping = dict(trainer_spec.init_from_map or {})
    plan = Plan()
    source = source_engine.model.state_dict()
    plan_whole(plan, engine.model.state_dict(), source, mapping, set())
    check_plan(plan, bool(trainer_spec.init_from_strict), mapping, list(source))
    apply_plan(engine.model, plan, source)
    return log_plan(plan, checkpoint)


def log_plan(plan: Plan, source: Path) -> dict[str, Any]:
    """Log what the warm start did (per table: rows remapped, new, dropped) and return it as
    the report ``metrics.json`` keeps under ``init_from``."""
    log.info("init_from %s: %d tensors copied, %d built from remapped rows, %d freshly initialised%s",
             source, len(plan.whole), len(plan.rows), len(plan.fresh),
             f" ({', '.join(plan.fresh[:8])}{', ...' if len(plan.fresh) > 8 else ''})" if plan.fresh else "")
    for table, counts in plan.tables.items():
        log.info("init_from table %s: %s", table, ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    if plan.unused:
        log.info("init_from: not used from the source: %s", ", ".join(plan.unused[:12]))
    return {"source": str(source), "copied": len(plan.whole), "remapped": len(plan.rows), "fresh": plan.fresh,
            "unused": plan.unused, "tables": plan.tables}
