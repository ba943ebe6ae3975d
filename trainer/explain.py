"""Help a newcomer can use: ``lingjie --help``, ``lingjie explain PATH``, ``lingjie schema``.

Why: Hydra's generic help page lists no experiment and no knob, and the knobs' docs live in
the dataclasses (``F(default, help)``). These commands read those dataclasses, so what they
print is what the validator enforces:

    lingjie explain trainer.optimizer              # every knob under a path: type, default, range, help
    lingjie explain model +experiment=movielens_din  # the chosen model's knobs
    lingjie schema --out lingjie.schema.json       # JSON Schema for editor completion
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lingjie.errors import ConfigError, LingjieError
from lingjie.schema import close_names, to_plain, type_name
from trainer.compose import CONFIGS
from trainer.schema.defaults import Knob, walk
from trainer.schema.spec import RootSpec

COMMANDS = ("explain", "schema", "--help", "-h")
_RANGE_SIGNS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
MAX_HELP = 90
WIDTH = 110  # --help line width  # help column characters before "..." (the dataclass has the rest)


def main(argv: list[str]) -> int:
    """Run the help command ``argv[0]`` (one of :data:`COMMANDS`); the exit status."""
    try:
        if argv[0] == "explain":
            return explain(argv[1:])
        if argv[0] == "schema":
            return write_schema(argv[1:])
        if len(argv) > 1:  # `--help trainer.optimizer [overrides]` is `explain trainer.optimizer ...`
            return explain(argv[1:])
        print(help_text())
        return 0
    except LingjieError as exc:  # ConfigError included
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


# ------------------------------------------------------------------------------------- explain


def explain(argv: list[str]) -> int:
    """``explain [PATH] [overrides]``: the knobs under PATH (all groups without one) as a table.
    The overrides pick the domain and model (``+experiment=NAME``, ``model=dcnv2``)."""
    parser = argparse.ArgumentParser(prog="lingjie explain", description="every knob under a config path")
    parser.add_argument("path", nargs="?", default="", help="dotted config path, e.g. trainer.optimizer")
    parser.add_argument("overrides", nargs="*", help="e.g. +experiment=movielens_deepfm or model=dcnv2")
    parser.add_argument("--config-dir", "-cd", help="an extra config directory, as for a run")
    args = parser.parse_args(argv)
    path = args.path
    if "=" in path:  # `explain +experiment=X`: no path, only overrides
        args.overrides.insert(0, path)
        path = ""
    rows = select(list(tree_knobs(_composed(args.overrides, args.config_dir))), path.strip("."))
    print(table(rows))
    return 0


def _composed(overrides: list[str], config_dir: str | None) -> dict[str, Any]:
    """The composed config (it says which domain, model and features the tree holds)."""
    from trainer.compose import compose_config

    try:
        return compose_config(overrides, config_dir)
    except Exception as exc:  # a bad override: the run's own one-line message
        from trainer.compose import explain_compose_error

        message = explain_compose_error(exc, overrides, config_dir)
        if message is None:
            raise
        raise LingjieError(message) from exc


def tree_knobs(cfg: dict[str, Any]) -> Iterator[Knob]:
    """Every knob of the config ``cfg`` is an instance of: the shared groups, its domain's data
    group, its chosen model and its features (each by its ``type``)."""
    from trainer.domains import domain_module

    parts = domain_module(str(cfg.get("domain", "rec"))).schema_parts()
    model = str((cfg.get("model") or {}).get("name", ""))
    for knob in walk(RootSpec, ""):
        top = knob.path.split(".")[0].split("[")[0]
        if top in ("data", "model", "features") and knob.path != top:
            continue
        group = {"data": parts["data"], "model": parts["models"].get(model)}.get(knob.path)
        if group is None:
            yield knob
        else:  # the domain's own dataclass stands in for RootSpec's untyped slot
            yield dataclasses.replace(knob, hint=group, default=_instance(group))
            yield from walk(group, knob.path)
        if knob.path == "features":
            for name, item in (cfg.get("features") or {}).items():
                ftype = (item or {}).get("type")
                if ftype in parts["features"]:
                    yield from walk(parts["features"][ftype], f"features.{name}")


def _instance(cls: type) -> Any:
    """The default instance of group ``cls`` ("(group)" in the table); MISSING if it has required knobs."""
    try:
        return cls()
    except TypeError:
        return dataclasses.MISSING


def select(rows: list[Knob], path: str) -> list[Knob]:
    """The rows at or under ``path``; ConfigError with a did-you-mean when it names no knob."""
    if not path:
        return [r for r in rows if "." not in r.path]
    found = [r for r in rows if r.path == path or r.path.startswith(path + ".") or r.path.startswith(path + "[]")]
    if found:
        return found
    parent, _, last = path.rpartition(".")
    depth = parent.count(".") + 1 if parent else 0
    siblings = [r.path.split(".")[depth] for r in rows
                if r.path.startswith(parent + ".") or not parent and r.path.count(".") == 0]
    siblings = [s for s in dict.fromkeys(siblings) if s]
    known = parent and any(r.path == parent or r.path.startswith(parent + ".") for r in rows)
    if parent and not known:
        return select(rows, parent)  # raises naming the first unknown part
    raise ConfigError(path, "unknown key", close_names(last, siblings))


def table(rows: list[Knob]) -> str:
    """An aligned text table: key, type, default, range, help."""
    cells = [("KEY", "TYPE", "DEFAULT", "RANGE", "HELP")]
    for r in rows:
        help_text = r.field.metadata.get("help", "")  # Literal choices are in the type column
        if len(help_text) > MAX_HELP:
            help_text = help_text[: MAX_HELP - 3] + "..."
        cells.append((r.path, _type(r), _default(r), _range(r.field), help_text))
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(4)) + "  " + c[4] for c in cells).rstrip()


def _type(knob: Knob) -> str:
    text = type_name(knob.hint)
    return text if len(text) <= 40 else text[:37] + "..."


def _default(knob: Knob) -> str:
    value = knob.default
    if value is dataclasses.MISSING:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return "(group)"
    if "interpolation" in knob.field.metadata:
        return str(knob.field.metadata["interpolation"])
    text = json.dumps(to_plain(value), default=str) if not isinstance(value, str) else value
    return text if len(text) <= 30 else text[:27] + "..."


def _range(f: dataclasses.Field) -> str:
    return ", ".join(f"{sign} {f.metadata[k]}" for k, sign in _RANGE_SIGNS if k in f.metadata)


# ------------------------------------------------------------------------------------- schema


def write_schema(argv: list[str]) -> int:
    """``schema [--out FILE]``: the JSON Schema of the whole config tree, to FILE or stdout."""
    from trainer.schema.json_schema import domain_parts, root_schema

    parser = argparse.ArgumentParser(prog="lingjie schema", description="JSON Schema of the config tree")
    parser.add_argument("--out", "-o", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = json.dumps(root_schema(domain_parts()), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------------------- help


def help_text(configs: Path = CONFIGS) -> str:
    """Our ``--help`` page: usage, the shipped experiments, the groups and their options."""
    usage = [
        ("lingjie +experiment=NAME [key=value ...]", "run one job (python -m trainer ... works too)"),
        ("lingjie +experiment=NAME trainer.mode=MODE", "train (default) | evaluate | predict | export | stream"),
        ("lingjie +experiment=NAME -m key=a,b", "a sweep (Hydra multirun)"),
        ("lingjie explain PATH [overrides]", "every knob under PATH: type, default, range, help"),
        ("", "e.g. explain trainer.optimizer; explain model model=dcnv2"),
        ("lingjie schema [--out FILE]", "JSON Schema of the config tree (editor completion)"),
        ("lingjie serve PATH [--port N] [--host H]", "serve an export / run dir over HTTP (KServe v1, v2, /metrics)"),
        ("lingjie incremental +experiment=NAME", "train data.dates day by day, each warm-started from the "
         "day before"),
        ("lingjie --hydra-help", "Hydra's own options (--cfg job, --config-dir, -m, ...)"),
    ]
    lines = ["Lingjie: config-driven training (Hydra YAML). Usage:", ""]
    lines += [f"  {cmd.ljust(44)}{what}" for cmd, what in usage]
    lines += ["", "Experiments (configs/experiment; run one with +experiment=NAME):"]
    for path in sorted((configs / "experiment").glob("*.yaml")):
        about = textwrap.shorten(_about(path), WIDTH - 30, placeholder="...")
        lines.append(f"  {path.stem.ljust(28)}{about}".rstrip())
    lines += ["", "Config groups (choose with group=option; list a group's knobs with explain GROUP):"]
    for group in sorted(p for p in configs.iterdir() if p.is_dir() and p.name not in ("hydra", "experiment")):
        options = ", ".join(p.stem for p in sorted(group.glob("*.yaml")) if not _internal(p.stem))
        lines += textwrap.wrap(options, WIDTH, initial_indent=f"  {group.name.ljust(16)}", subsequent_indent=" " * 18)
    lines += ["", "Knob names: lingjie explain trainer | data | model | features | hardware | paths | logger"]
    return "\n".join(lines)


def _internal(stem: str) -> bool:
    """Base files other files include: no option a user picks."""
    return stem == "base" or stem.endswith("_base")


def _about(path: Path) -> str:
    """An experiment's first comment line (after ``# @package``), its one-line description."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
        if line and not line.startswith("#"):
            break
    return ""
