"""Delta exports on disk: what a writer and an applier agree on (no torch import here).

A delta directory ``<export>/deltas/delta-<step:08d>/`` holds ``delta.pt`` (a dict of tensors,
loaded with ``torch.load(weights_only=True)``) and ``manifest.json``, written last::

    {"format": "lingjie.delta", "version": 1, "base": "<meta.json version of the full export>",
     "step": N, "previous": <step of the delta before it in the chain, or null>,
     "program_format": "torch_export" | "torchscript", "file": "delta.pt", "bytes": ..., "sha256": ...,
     "tables": {"<name>": {"kind": "rows" | "dynamic", ...sizes}}, "dense": {"<name>": numel}}

Tensor names in ``delta.pt`` (``<name>`` is a state_dict name of the training model with its
dynamic tables frozen, as the export writes them): ``rows/<name>/ids`` + ``rows/<name>/values``
(changed rows of an embedding weight), ``dyn/<module>/keys`` + ``dyn/<module>/rows`` (keys of a
dynamic table whose row changed or that were admitted, with their rows), ``dyn/<module>/evicted``
and ``dyn/<module>/default`` (the learned default row), ``full/<name>`` (every other tensor).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lingjie.errors import ConfigError, DataError

FORMAT = "lingjie.delta"
VERSION = 1
TENSORS = "delta.pt"
MANIFEST = "manifest.json"
DELTAS = "deltas"
_NAME = re.compile(r"delta-(\d{8,})")


def deltas_on(export_spec: Any) -> bool:
    """Whether ``trainer.export`` asks for delta exports."""
    return bool(export_spec.delta_every_steps or export_spec.delta_every_seconds)


def check_delta_config(trainer: Any) -> None:
    """ConfigError when deltas are asked for where they cannot work: they patch the weights of a
    torch program in place (torch.export / TorchScript), which a SavedModel or an ONNX graph
    (weights folded into the graph) does not allow."""
    if not deltas_on(trainer.export):
        return
    key = "trainer.export.delta_every_steps" if trainer.export.delta_every_steps else \
        "trainer.export.delta_every_seconds"
    if trainer.backend != "torch":
        raise ConfigError(key, "delta exports patch a torch program's weights in place: they need "
                          "trainer.backend=torch (set it to 0 / null for the tf backend)")
    if not trainer.export.enabled:
        raise ConfigError(key, "delta exports patch a full export: they need trainer.export.enabled=true")
    if trainer.export.format == "onnx":
        raise ConfigError(key, "delta exports patch a torch program's weights in place; an ONNX graph cannot "
                          "be patched: use trainer.export.format=torch_export or torchscript, or turn deltas off")


def delta_name(step: int) -> str:
    return f"delta-{step:08d}"


def read_manifest(delta_dir: Path) -> dict[str, Any]:
    """The checked manifest of ``delta_dir``; DataError naming what is wrong."""
    path = Path(delta_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable delta (manifest.json: {exc})", file=str(delta_dir)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"not a {FORMAT} manifest (format: {manifest.get('format') if isinstance(manifest, dict) else None!r})",
                        file=str(path))
    if manifest.get("version") != VERSION:
        raise DataError(f"delta format version {manifest.get('version')!r}; this Lingjie reads version {VERSION}",
                        file=str(path))
    for key in ("base", "step", "sha256", "file"):
        if key not in manifest:
            raise DataError(f"manifest.json lacks {key!r}", file=str(path))
    return manifest


def list_deltas(export_dir: Path) -> list[tuple[int, Path]]:
    """(step, dir) of the complete deltas under ``export_dir/deltas`` (manifest present), by step."""
    root = Path(export_dir) / DELTAS
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match and (entry / MANIFEST).exists():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def pending_chain(export_dir: Path, base: str, after: int | None) -> list[Path]:
    """The delta dirs to apply, in order, to an export of version ``base`` that has the deltas up
    to step ``after`` (None: none) applied: those of this base, after that step. Which of them
    really extend the chain (``previous``) is checked when each is applied."""
    out = []
    for step, path in list_deltas(export_dir):
        if after is not None and step <= after:
            continue
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            out.append(path)  # unreadable: applying it reports why
            continue
        if isinstance(manifest, dict) and str(manifest.get("base")) == str(base):
            out.append(path)
    return out
