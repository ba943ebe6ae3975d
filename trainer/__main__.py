"""`python -m trainer +experiment=NAME [overrides]`: compose, validate and run one job.

Errors the user can fix (config, data, a full disk or an unwritable output root) print one
clear line and exit with status 2; a bug keeps its traceback and exits with status 1; the
last line of a successful run names the run directory.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

# TensorFlow's C++ log lines (CUDA probing on CPU machines, op placement) drown the progress
# output; Python-level errors still surface. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hydra
from omegaconf import DictConfig, OmegaConf

from lingjie.config_tree import CONFIG_DIR
from lingjie.errors import LingjieError

log = logging.getLogger("lingjie")
FULL_ERROR = "HYDRA_FULL_ERROR"
_user_full_error = os.environ.get(FULL_ERROR)  # the user's choice, given back to the job


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from omegaconf.errors import OmegaConfBaseException

    from trainer.date_partitions import check_date_templates
    from trainer.job import run_job

    _restore_full_error()
    try:
        check_date_templates(cfg)  # before resolving: a null date would read as the text "None"
    except LingjieError as exc:
        _discard_untouched_run_dir(cfg)
        _fail(str(exc))
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
        config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # e.g. an interpolation that names no key
        from trainer.compose import omegaconf_line

        where = getattr(exc, "full_key", None)
        _discard_untouched_run_dir(cfg)
        _fail(f"config error at '{where}': {omegaconf_line(exc)}" if where else f"config error: {omegaconf_line(exc)}")
    try:
        run_dir = run_job(plain, config_yaml)
    except LingjieError as exc:  # run_job removed a fresh run dir or marked the run FAILED
        _fail(str(exc))
    except OSError as exc:  # a full disk, an unwritable directory: one line; other OSErrors are bugs
        message = _os_error_line(exc, str((plain.get("paths") or {}).get("run_dir") or ""))
        if message is None:
            raise
        _fail(message)
    print(f"run directory: {run_dir}", flush=True)
    return None


def cli() -> None:
    """Run :func:`main` and turn what Hydra raises before it (a key typo, a bad override, a YAML
    syntax error, an unwritable run directory) into one ``error:`` line, exit status 2.

    Hydra reports those itself in several lines (and advises appending a typo with ``+``), so
    $HYDRA_FULL_ERROR=1 is set while Hydra composes: the exception then reaches this frame
    instead of Hydra's printer. :func:`main` gives the user's own value back to the job.
    """
    if len(sys.argv) > 1 and sys.argv[1] == "serve":  # the inference server: no Hydra, no job
        from trainer.serve.__main__ import main as serve_main

        sys.exit(serve_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "incremental":  # day-by-day training: one job per day
        _incremental(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("explain", "schema", "--help", "-h"):
        from trainer.explain import main as help_main  # our help pages; --hydra-help stays Hydra's

        sys.exit(help_main(sys.argv[1:]))
    os.environ[FULL_ERROR] = "1"
    try:
        main()
    except Exception as exc:
        message = explain_error(exc, sys.argv[1:])
        if message is None:
            raise
        _fail(message)
    finally:
        _restore_full_error()


def _incremental(argv: list[str]) -> None:
    """``lingjie incremental``: trainer.incremental's driver; a failed day or a config it refuses
    is one ``error:`` line, exit status 2."""
    from trainer.incremental import run as run_days

    try:
        summary = run_days(argv)
    except Exception as exc:
        message = explain_error(exc, argv)
        if message is None:
            raise
        _fail(message)
    print(f"incremental summary: {summary}", flush=True)


def explain_error(exc: Exception, argv: list[str]) -> str | None:
    """The one line for ``exc`` when the user can fix it, else None."""
    from trainer.compose import explain_compose_error, explain_os_error, user_paths

    overrides, config_dir = _overrides(argv)
    if isinstance(exc, LingjieError):
        return str(exc)
    message = explain_compose_error(exc, overrides, config_dir)
    if message is None and isinstance(exc, OSError):
        message = explain_os_error(exc, user_paths(overrides, dict(os.environ)))
    return message


def _overrides(argv: list[str]) -> tuple[list[str], str | None]:
    """(the overrides, --config-dir) of a command line, parsed as Hydra parses them."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config-dir", "-cd")
    parser.add_argument("--config-name", "-cn")
    parser.add_argument("--config-path", "-cp")
    parser.add_argument("overrides", nargs="*")
    known, _ = parser.parse_known_args(argv)
    return [o for o in known.overrides if not o.startswith("-")], known.config_dir


def _restore_full_error() -> None:
    """Give $HYDRA_FULL_ERROR its value from before :func:`cli` (the job and its child processes
    see what the user set)."""
    if _user_full_error is None:
        os.environ.pop(FULL_ERROR, None)
    else:
        os.environ[FULL_ERROR] = _user_full_error


def _os_error_line(exc: OSError, run_dir: str) -> str | None:
    """The one line of a user-fixable OSError raised by the job; a write that fails for lack of
    space names no file, so the run directory stands in for it."""
    from trainer.compose import explain_os_error, user_paths

    return explain_os_error(exc, user_paths(_overrides(sys.argv[1:])[0], dict(os.environ)), where=run_dir)


def _discard_untouched_run_dir(cfg: DictConfig) -> None:
    """Remove the run directory Hydra made for a job whose config does not even resolve: it
    holds only Hydra's log, and left behind it reads as a run (to people and to
    ``trainer.resume=true``). Errors after this point are handled by :func:`trainer.job.run_job`."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from trainer.process import remove_fresh_dir

    try:
        remove_fresh_dir(Path(HydraConfig.get().runtime.output_dir))
    except ValueError:  # no Hydra config (not run through hydra.main)
        return


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    cli()
