"""The config files that list every knob of a group, rendered from the dataclasses.

Why: the dataclass defaults are the one source of truth. A config validated without those
files (a test, a library caller, a partial dict) gets the same values as a user of
``python -m trainer``, and the files exist only so that every knob is overridable without ``+``
and readable in one place. Kept by hand, the two drifted (``trainer.epochs`` 1 vs 5); so the
files are generated, and a test fails when one differs:

    python -m trainer.schema.defaults --check   # exit 1 naming every knob whose file value differs
    python -m trainer.schema.defaults --write   # re-render the files from the dataclasses

A knob whose file value is an interpolation (``paths.run_dir: ${hydra:runtime.output_dir}``)
declares it as ``F(default, help, interpolation="${...}")``: the file holds the interpolation,
the dataclass default is what a config composed without Hydra gets.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Iterator, Literal, Union, get_args, get_origin

import yaml

from lingjie.schema import to_plain, type_hints
from trainer.compose import CONFIGS
from trainer.schema.group_file import GroupFile

WIDTH = 110  # longest generated line (comments wrap)
COMMENT_COLUMN = 32  # trailing help comments start here when the line is shorter
COMMAND = "python -m trainer.schema.defaults --write"


TRAINER_FILES: tuple[GroupFile, ...] = (
    GroupFile("trainer/default.yaml", "trainer.schema.spec:TrainerSpec",
              "Every trainer knob with its default (see README: trainer reference)."),
    GroupFile("hardware/cpu.yaml", "trainer.schema.spec:HardwareSpec",
              "One CPU process (the default). Every hardware knob with its default; the other profiles "
              "(gpu, ddp_cpu, k8s_pytorchjob, ...) include this and override what differs."),
    GroupFile("logger/default.yaml", "trainer.schema.spec:LoggerSpec", "Every logger knob with its default."),
    GroupFile("paths/default.yaml", "trainer.schema.spec:PathsSpec",
              "Where datasets, runs and their mirrors live; every paths knob with its default."),
)


def group_files() -> tuple[GroupFile, ...]:
    """The shared groups' files, then each domain's (its module's ``CONFIG_FILES``, found by
    name through trainer.domains: trainer imports no domain package)."""
    from trainer.domains import DOMAINS, domain_module

    files = list(TRAINER_FILES)
    for name in DOMAINS:
        files += getattr(domain_module(name), "CONFIG_FILES", ())
    return tuple(files)


def spec_class(group: GroupFile) -> type:
    """The dataclass whose defaults ``group``'s file lists."""
    module, name = group.spec.split(":")
    return getattr(importlib.import_module(module), name)


def render(group: GroupFile) -> str:
    """The file text of ``group``: a header, then every knob with its default and help."""
    cls = spec_class(group)
    lines = [f"# {line}" for line in textwrap.wrap(group.about, WIDTH - 2)]
    lines += [f"# Generated from {cls.__module__}.{cls.__qualname__} by `{COMMAND}`;",
              "# do not edit by hand: change the dataclass default (and its help) instead."]
    return "\n".join(lines + _block(cls(), 0)) + "\n"


def knobs(obj: Any) -> list[dataclasses.Field]:
    """The user-settable fields of a dataclass or instance (``init=False`` fields are derived)."""
    return [f for f in dataclasses.fields(obj) if f.init]


@dataclasses.dataclass(frozen=True)
class Knob:
    """One knob met by :func:`walk`: its dotted path, field, resolved type and default
    (``dataclasses.MISSING`` when required)."""

    path: str
    field: dataclasses.Field
    hint: Any
    default: Any
    owner: type


def nested_class(hint: Any) -> type | None:
    """The dataclass a knob of type ``hint`` holds (directly, ``X | None`` or ``list[X]``), or None:
    where :func:`walk` descends."""
    if dataclasses.is_dataclass(hint):
        return hint
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType, list, tuple) else ()
    found = [a for a in args if dataclasses.is_dataclass(a)]
    return found[0] if len(found) == 1 else None


def field_default(f: dataclasses.Field, parent: Any = None) -> Any:
    """The default of knob ``f``: its value in ``parent`` (the default instance of the group
    holding it, e.g. ``OptimizerPart(lr=0.01)`` for trainer.optimizer.sparse) when given, else the
    field's own; ``dataclasses.MISSING`` when required."""
    if parent is not None:
        return getattr(parent, f.name)
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def walk(cls: type, prefix: str, parent: Any = None) -> Iterator[Knob]:
    """Every knob of dataclass ``cls`` under ``prefix``, depth first; a nested group yields its
    own row, then its knobs (``list[X]`` items as ``path[]``). ``parent``: the default instance
    of ``cls`` where the enclosing group gives one. The one walk over the schema that
    ``python -m trainer explain`` reads (and the group files render, through :func:`knobs`)."""
    hints = type_hints(cls)
    for f in knobs(cls):
        default = field_default(f, parent)
        path = f"{prefix}.{f.name}" if prefix else f.name
        yield Knob(path, f, hints[f.name], default, cls)
        inner = nested_class(hints[f.name])
        if inner is not None:
            listed = get_origin(hints[f.name]) in (list, tuple)
            yield from walk(inner, path + ("[]" if listed else ""),
                            default if isinstance(default, inner) else None)


def file_value(f: dataclasses.Field, value: Any) -> Any:
    """What a group file holds for knob ``f`` whose default is ``value``: its interpolation, if it
    declares one, else the plain default."""
    if "interpolation" in f.metadata:
        return f.metadata["interpolation"]
    if dataclasses.is_dataclass(value):
        return {g.name: file_value(g, getattr(value, g.name)) for g in knobs(value)}
    return to_plain(value)


def _block(obj: Any, indent: int) -> list[str]:
    """Block-style lines of dataclass ``obj``'s knobs; a nested mapping or list too long for
    one line opens its own block."""
    pad = " " * indent
    lines: list[str] = []
    for f in knobs(obj):
        value = getattr(obj, f.name)
        plain = file_value(f, value)
        line = f"{pad}{f.name}: {_flow(plain)}"
        help_text = describe(type(obj), f)
        if len(line) > WIDTH and dataclasses.is_dataclass(value):
            lines += _comment(pad, help_text) + [f"{pad}{f.name}:"] + _block(value, indent + 2)
        elif len(line) > WIDTH and isinstance(plain, list):
            lines += _comment(pad, help_text) + [f"{pad}{f.name}:"] + [f"{pad}  - {_flow(v)}" for v in plain]
        else:
            lines += _with_comment(line, pad, help_text)
    return lines


def describe(cls: type, f: dataclasses.Field) -> str:
    """The comment of knob ``f``: its help, and its choices when it is a Literal the help does
    not spell out (the YAML file is where users look them up)."""
    text = f.metadata.get("help", "")
    tp = type_hints(cls)[f.name]
    args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    choices = [str(c) for a in args if get_origin(a) is Literal for c in get_args(a)]
    if choices and not all(c in text for c in choices):
        text = f"{text} ({' | '.join(choices)})" if text else " | ".join(choices)
    return text


def _with_comment(line: str, pad: str, help_text: str) -> list[str]:
    """``line`` with its help as a trailing comment, or as comment lines above when too long."""
    if not help_text:
        return [line]
    trailing = f"{line.ljust(COMMENT_COLUMN - 2)}  # {help_text}"
    return [trailing] if len(trailing) <= WIDTH else _comment(pad, help_text) + [line]


def _comment(pad: str, text: str) -> list[str]:
    return [f"{pad}# {line}" for line in textwrap.wrap(text, WIDTH - len(pad) - 2)] if text else []


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style); interpolations are written as they are."""
    if isinstance(value, str) and value.startswith("${"):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False).strip()
    return text[: -len("...")].rstrip() if text.endswith("\n...") else text


def differences(group: GroupFile, text: str | None = None) -> list[str]:
    """Every knob whose value in ``group``'s file (or in ``text``) differs from the dataclass
    default, is missing, or is no knob at all; one line each, naming the dotted key."""
    if text is None:
        text = (CONFIGS / group.path).read_text(encoding="utf-8")
    cls = spec_class(group)
    want = {f.name: file_value(f, getattr(cls(), f.name)) for f in knobs(cls)}
    return _compare(want, yaml.safe_load(text) or {}, "")


def _compare(want: Any, have: Any, prefix: str) -> list[str]:
    if isinstance(want, dict) and isinstance(have, dict):
        out = [f"{prefix}{k}: missing from the file (dataclass default {want[k]!r})" for k in want if k not in have]
        out += [f"{prefix}{k}: in the file but no knob of the dataclass" for k in have if k not in want]
        for k in want:
            if k in have:
                out += _compare(want[k], have[k], f"{prefix}{k}.")
        return out
    if want != have or isinstance(want, bool) != isinstance(have, bool):
        return [f"{prefix[:-1]}: file {have!r}, dataclass default {want!r}"]
    return []


def check(configs: Path = CONFIGS) -> list[str]:
    """Problems of every group file under ``configs``: value differences first, then files
    whose text is not what ``--write`` renders (hand edits, stale comments)."""
    problems = []
    for group in group_files():
        path = configs / group.path
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        found = differences(group, text)
        problems += [f"{group.path}: {d}" for d in found]
        if not found and text != render(group):
            problems.append(f"{group.path}: not as generated (comments or layout edited by hand)")
    return problems


def write(configs: Path = CONFIGS) -> list[str]:
    """Render every group file under ``configs``; the paths that changed."""
    changed = []
    for group in group_files():
        path = configs / group.path
        text = render(group)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(group.path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """The command line: ``--check`` (exit 1 on a difference) or ``--write``."""
    parser = argparse.ArgumentParser(prog="python -m trainer.schema.defaults", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report group files that differ from the dataclasses")
    mode.add_argument("--write", action="store_true", help="render the group files from the dataclasses")
    parser.add_argument("--configs", type=Path, default=CONFIGS, help="the config tree (default: the project's)")
    args = parser.parse_args(argv)
    if args.write:
        changed = write(args.configs)
        print(f"wrote {', '.join(changed)}" if changed else "every group file is up to date")
        return 0
    problems = check(args.configs)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} difference(s); the dataclass defaults are the truth: fix the dataclass "
              f"if the file was right, then run `{COMMAND}`", file=sys.stderr)
        return 1
    print(f"{len(group_files())} group files match the dataclass defaults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
