"""Compose the config tree with Hydra's compose API: the resolved config dict that
`python -m trainer <overrides>` would see (used by tests and the automl tools), and the one-line
explanation of an error Hydra raises while composing (used by the CLI boundary)."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

from lingjie.config_tree import CONFIG_DIR

CONFIGS = CONFIG_DIR  # the shipped tree: configs/ in a clone, lingjie/configs in a wheel
GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def compose_config(overrides: list[str], config_dir: str | None = None) -> dict[str, Any]:
    """The resolved config dict for ``overrides`` (e.g. ``["+experiment=movielens_deepfm"]``).

    ``paths.run_dir`` (Hydra's runtime output dir, unknown outside a job) is set to a
    placeholder; override it when it matters. ``config_dir``: a user's extra config directory
    (the CLI's ``--config-dir``), searched after the shipped tree.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from trainer.date_partitions import check_date_templates

    extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir else []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose("config", overrides=["paths.run_dir=/nonexistent/run", *extra, *overrides],
                          return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            with open_dict(cfg):
                del cfg["hydra"]
            check_date_templates(cfg)
            return OmegaConf.to_container(cfg, resolve=True)
    finally:
        GlobalHydra.instance().clear()


def explain_compose_error(exc: BaseException, overrides: list[str], config_dir: str | None = None) -> str | None:
    """One line (without the ``error:`` prefix) for an error Hydra raised while composing the
    user's command line, or None when ``exc`` is not one (a bug keeps its traceback).

    Hydra's own reports are several lines and, for a key typo, advise appending the typo with
    ``+``; the user needs the schema's did-you-mean instead.
    """
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    if isinstance(exc, OverrideParseException):
        problem = exc.message.splitlines()[0] if exc.message else "cannot parse"
        return f"bad override '{exc.override}': {problem} (syntax: {GRAMMAR})"
    if isinstance(exc, MissingConfigException):  # before OSError: it is an IOError too
        return _missing_config(exc)
    marked = _yaml_cause(exc)
    if marked is not None:
        return yaml_error_line(marked)
    if isinstance(exc, ConfigCompositionException):
        key = re.match(r"Could not override '([^']+)'", str(exc))
        if key and "not in struct" in str(exc.__cause__ or ""):
            return unknown_key_line(key.group(1), overrides, config_dir)
        if key and exc.__cause__ is not None:  # e.g. hydra.job.chdirr: Hydra's own typed config
            return typed_key_line(key.group(1), exc.__cause__)
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        return " ".join(lines[:2]) if lines else None
    return None


def typed_key_line(key: str, cause: BaseException) -> str:
    """A typo under a structured config (hydra.*, hydra.sweeper.*: dataclasses, not our schema):
    the closest field names of that dataclass, as the schema does for ours."""
    import dataclasses

    from lingjie.schema import close_names

    cls = getattr(cause, "object_type", None)
    if not (dataclasses.is_dataclass(cls) and getattr(cause, "key", None)):
        return f"{key}: {omegaconf_line(cause)}"
    parent = key.rpartition(".")[0]
    close = close_names(str(cause.key), [f.name for f in dataclasses.fields(cls)])
    text = f"{key}: unknown key"
    return text + ("; did you mean " + " or ".join(f"{parent}.{c}" for c in close) + "?" if close else "")


def omegaconf_line(exc: BaseException) -> str:
    """The first line of an OmegaConf error (its text goes on with full_key / object_type lines)."""
    msg = getattr(exc, "msg", None) or str(exc)
    return msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__


def _yaml_cause(exc: BaseException) -> Any:
    """The yaml.MarkedYAMLError ``exc`` is or was raised from (Hydra may wrap it), else None."""
    import yaml

    seen = exc
    while seen is not None:
        if isinstance(seen, yaml.MarkedYAMLError) and seen.problem_mark is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def yaml_error_line(err: Any) -> str:
    """``<file>:<line>:<column>: <problem>`` of a yaml.MarkedYAMLError (1-based, as editors count)."""
    mark = err.problem_mark
    problem = err.problem or "invalid YAML"
    if err.context:
        problem = f"{problem} ({err.context})"
    return f"{mark.name}:{mark.line + 1}:{mark.column + 1}: {problem}"


def _missing_config(exc: Any) -> str:
    """``model=deepfn`` or ``+experiment=nope``: the group option that does not exist, the
    closest ones and the list to choose from."""
    from lingjie.schema import close_names

    missing = str(exc.missing_cfg_file or "")
    group, _, name = missing.rpartition("/")
    options = [str(o) for o in (exc.options or [])]
    if not group or not options:
        return f"config '{missing}' not found (is it in configs/ or your --config-dir?)"
    text = f"{group}={name}: no such {group} config"
    close = close_names(name, options)
    if close:
        text += "; did you mean " + " or ".join(f"{group}={c}" for c in close) + "?"
    return f"{text} (available: {', '.join(options)})"


def unknown_key_line(key: str, overrides: list[str], config_dir: str | None = None) -> str:
    """``trainer.epochz=3`` (no ``+``) names a key the composed config lacks. Compose again with
    the key appended and let the domain's schema judge it: a key the schema rejects gets its
    did-you-mean (``trainer.epochz: unknown key; did you mean trainer.epochs?``); only a key the
    schema accepts (a new entry of a free-form mapping such as data.storage_options) is told to
    use ``+``."""
    from lingjie.errors import ConfigError

    from trainer.schema.validate import validate

    given = next((o for o in overrides if o.split("=", 1)[0] == key), None)
    if given is None:
        return f"{key}: unknown key"
    appended = [f"+{o}" if o is given else o for o in overrides]
    try:
        validate(compose_config(appended, config_dir))
    except ConfigError as err:
        if key == err.path or key.startswith(f"{err.path}."):
            return _did_you_mean(err)
    except Exception:  # noqa: BLE001 - the first error stands; this compose only looks for a hint
        return f"{key}: unknown key"
    return f"{key}: not in the config; to add it, write +{given} (or ++{given} to add or override)"


def _did_you_mean(err: Any) -> str:
    """``path: unknown key; did you mean parent.a or parent.b?`` from a schema ConfigError."""
    parent = err.path.rpartition(".")[0]
    text = f"{err.path}: {err.message}"
    if err.suggestions:
        text += "; did you mean " + " or ".join(f"{parent}.{s}" if parent else s for s in err.suggestions) + "?"
    return text


# errno -> what to do; the OS errors a user fixes (space, permissions, a wrong path), not bugs
FIXES = {
    errno.ENOSPC: "free space or set paths.output_root",
    errno.EDQUOT: "free space (disk quota exceeded) or set paths.output_root",
    errno.EFBIG: "the file size limit (ulimit -f) is too small",
    errno.EACCES: "set paths.output_root to a writable directory",
    errno.EPERM: "set paths.output_root to a writable directory",
    errno.EROFS: "set paths.output_root to a writable directory",
    errno.ENOTDIR: "a part of the path is a file; set paths.output_root to a directory",
    errno.ENAMETOOLONG: "use a shorter paths.output_root",
}
SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # out of room: whichever file was being written


def explain_os_error(exc: BaseException, user_paths: list[str], where: str | None = None) -> str | None:
    """``cannot write <path>: <cause> (<fix>)`` for an OSError the user can fix: one that
    names a file and whose errno is in :data:`FIXES`, or "no such file" under a path the user
    gave (``paths.output_root=/proc/x``). A full disk (or quota, or file size limit) is never a
    bug, but the OS names no file when a write() fails: ``where`` (the run directory) stands in.
    None otherwise: an OSError without a file or errno, or a missing file the code itself
    chose, is a bug and keeps its traceback."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    if not exc.filename:
        if exc.errno not in SPACE or not where:
            return None
        return f"cannot write under {where}: {exc.strerror or os.strerror(exc.errno)} ({FIXES[exc.errno]})"
    path = str(exc.filename)
    absolute = os.path.abspath(path)
    cause = exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno))
    if exc.errno in FIXES:
        return f"cannot write {path}: {cause} ({FIXES[exc.errno]})"
    given = [p for p in user_paths if absolute == p or absolute.startswith(p.rstrip("/") + "/")]
    if exc.errno == errno.ENOENT and given:
        return f"cannot write {path}: {cause} (set paths.output_root to a writable directory)"
    return None


def user_paths(overrides: list[str], env: dict[str, str]) -> list[str]:
    """Every absolute path the user named: override values and $LINGJIE_OUTPUT_ROOT."""
    values = [o.split("=", 1)[1] for o in overrides if "=" in o] + [env.get("LINGJIE_OUTPUT_ROOT", "")]
    return [os.path.abspath(v) for v in values if v and "/" in v and "://" not in v]
