"""Delta exports, the applier: patch a loaded torch program (torch.export ``.module()`` or a
TorchScript module) with a delta written by :mod:`easyrec.delta_writer`.

    from easyrec.serving import ExportedModel
    model = ExportedModel("outputs/.../export")
    model.apply_pending_deltas()          # every delta of its base, in step order
    model.predict(rows)

Checks before anything is changed: the manifest's format and version, the tensor file's sha256,
that the delta applies to the loaded export (``base`` = meta.json ``version``) and extends the
chain already applied (``previous`` = the step of the last applied delta, None after a fresh
load); a DataError says which. Names: the program wraps the training model in
``ServingModule`` (attribute ``model``), so a delta's ``<name>`` is ``model.<name>`` there.

Dynamic tables: the program holds each as sorted ``keys`` (+ a max-int64 sentinel) and ``weight``
(+ the default row last). A delta's admitted / changed / evicted keys are merged into a new
sorted table. TorchScript reads the table's size at run time, so the buffers are replaced at
the new size. torch.export bakes the size into its graph (the default row's index), so there
the table keeps its exported size: a smaller table is padded with sentinel keys and default
rows (never looked up), a larger one is refused (the writer exports in full instead).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dataio.atomic import sha256_of
from easyrec.delta_format import read_manifest
from lingjie.errors import DataError

KEY_SENTINEL = torch.iinfo(torch.int64).max  # the last key of a frozen dynamic table (never a real id)
PREFIX = "model."  # ServingModule(model): the training model's names under ``model.``


def program_tensors(program: Any) -> dict[str, Tensor]:
    """Every parameter and buffer of a loaded program by name (tied ones under each name)."""
    try:
        return {**dict(program.named_buffers(remove_duplicate=False)),
                **dict(program.named_parameters(remove_duplicate=False))}
    except TypeError:  # TorchScript modules list each name already
        return {**dict(program.named_buffers()), **dict(program.named_parameters())}


def check_delta(delta_dir: Path, base: str, previous: int | None) -> dict[str, Any]:
    """The manifest of ``delta_dir`` once it is known to apply after ``previous`` on ``base``."""
    delta_dir = Path(delta_dir)
    manifest = read_manifest(delta_dir)
    if str(manifest["base"]) != str(base):
        raise DataError(f"delta of step {manifest['step']} applies to the export of version {manifest['base']!r}; "
                        f"the loaded export is version {base!r} (a newer full export replaced its base)",
                        file=str(delta_dir))
    if manifest.get("previous") != previous:
        had = "no delta" if previous is None else f"the delta of step {previous}"
        follows = "the base itself" if manifest.get("previous") is None else f"the delta of step {manifest['previous']}"
        raise DataError(f"delta of step {manifest['step']} follows {follows}; the loaded model has {had} applied "
                        "(out of chain: a delta is missing or was already applied)", file=str(delta_dir))
    path = delta_dir / str(manifest["file"])
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise DataError(f"cannot read the delta's tensors: {exc}", file=str(path)) from None
    if digest != manifest["sha256"]:
        raise DataError(f"sha256 mismatch: the manifest says {manifest['sha256'][:12]}..., the file is "
                        f"{digest[:12]}... (corrupt or still being copied)", file=str(path))
    return manifest


def apply_delta(program: Any, delta_dir: Path, base: str, previous: int | None) -> dict[str, Any]:
    """Patch ``program`` in place with ``delta_dir`` (see the module doc); returns its manifest.
    Apply to a copy when a half-patched program must never be seen (a raise may leave it so)."""
    manifest = check_delta(delta_dir, base, previous)
    path = Path(delta_dir) / str(manifest["file"])
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a DataError for the caller
        raise DataError(f"cannot load the delta's tensors: {type(exc).__name__}: {exc}", file=str(path)) from None
    state = program_tensors(program)
    parts: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in tensors.items():
        kind, _, rest = key.partition("/")
        name, part = (rest.rsplit("/", 1) + [""])[:2] if kind != "full" else (rest, "")
        parts.setdefault((kind, name), {})[part] = value
    with torch.no_grad():
        for (kind, name), values in parts.items():
            if kind == "full":
                _copy_into(_target(state, name, path), values[""], name, path)
            elif kind == "rows":
                _apply_rows(_target(state, name, path), values, name, path)
            elif kind == "dyn":
                _apply_dynamic(program, state, name, values, path)
            else:
                raise DataError(f"unknown entry {kind}/{name} in the delta", file=str(path))
    return manifest


def _target(state: dict[str, Tensor], name: str, path: Path) -> Tensor:
    for candidate in (PREFIX + name, name):
        if candidate in state:
            return state[candidate]
    raise DataError(f"the delta patches {name!r}, which the loaded program does not hold "
                    "(a delta of another model?)", file=str(path))


def _copy_into(target: Tensor, value: Tensor, name: str, path: Path) -> None:
    if target.shape != value.shape:
        raise DataError(f"{name}: the delta holds shape {list(value.shape)}, the program {list(target.shape)}",
                        file=str(path))
    target.copy_(value)


def _apply_rows(target: Tensor, values: dict[str, Tensor], name: str, path: Path) -> None:
    ids, rows = values["ids"], values["values"]
    if ids.numel() and (int(ids.max()) >= target.shape[0] or int(ids.min()) < 0):
        raise DataError(f"{name}: row ids up to {int(ids.max())} in a table of {target.shape[0]} rows", file=str(path))
    if rows.shape[1:] != target.shape[1:] or rows.shape[0] != ids.numel():
        raise DataError(f"{name}: rows of shape {list(rows.shape)} for a table {list(target.shape)}", file=str(path))
    target.index_copy_(0, ids, rows.to(target.dtype))


def _apply_dynamic(program: Any, state: dict[str, Tensor], name: str, values: dict[str, Tensor], path: Path) -> None:
    """Merge admitted / changed / evicted keys into the frozen table ``name`` (sorted keys)."""
    keys_t, weight_t = _target(state, f"{name}.keys", path), _target(state, f"{name}.weight", path)
    real = int((keys_t != KEY_SENTINEL).sum())
    old_keys, old_rows = keys_t[:real], weight_t[:real]
    drop = torch.cat([values["evicted"], values["keys"]])
    keep = ~torch.isin(old_keys, drop)
    merged_keys = torch.cat([old_keys[keep], values["keys"]])
    merged_rows = torch.cat([old_rows[keep], values["rows"].to(weight_t.dtype)])
    order = torch.argsort(merged_keys)
    new_keys = torch.cat([merged_keys[order], torch.tensor([KEY_SENTINEL], dtype=torch.int64)])
    default = values["default"].to(weight_t.dtype).unsqueeze(0)
    new_rows = torch.cat([merged_rows[order], default])
    if new_keys.numel() == keys_t.numel():
        keys_t.copy_(new_keys)
        weight_t.copy_(new_rows)
        return
    if isinstance(program, torch.jit.ScriptModule):  # sizes are read at run time: resize
        owner = program
        for part in (PREFIX + name).split("."):
            owner = getattr(owner, part)
        owner.keys, owner.weight = new_keys, new_rows
        return
    pad = keys_t.numel() - new_keys.numel()
    if pad < 0:
        raise DataError(f"dynamic table {name}: {new_keys.numel()} rows do not fit the {keys_t.numel()} of the "
                        "torch.export program (its graph fixes the size): load a newer full export", file=str(path))
    keys_t.copy_(torch.cat([new_keys[:-1], torch.full((pad + 1,), KEY_SENTINEL, dtype=torch.int64)]))
    weight_t.copy_(torch.cat([new_rows[:-1], default.expand(pad + 1, -1)]))
