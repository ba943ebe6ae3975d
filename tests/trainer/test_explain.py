"""`lingjie explain PATH`, `lingjie schema` and `lingjie --help` (issue 18: help a newcomer can use).

In-process where possible (the suite is at its time budget); one CLI run for the one-line
error of an unknown path and one for --help through the real entry point.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lingjie.errors import ConfigError
from trainer.compose import compose_config
from trainer.explain import explain, help_text
from trainer.explain import main as help_main
from trainer.schema.json_schema import domain_parts, root_schema

ROOT = Path(__file__).resolve().parents[2]
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
          "integer": int, "number": (int, float)}


def _errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """A tiny JSON Schema check (the keywords root_schema writes); jsonschema is not installed."""
    if "anyOf" in schema:
        return [] if any(not _errors(value, s, path) for s in schema["anyOf"]) else [f"{path}: no anyOf matches"]
    if "const" in schema and value != schema["const"] or "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not allowed"]
    want = schema.get("type")
    if want and (not isinstance(value, _TYPES[want]) or isinstance(value, bool) and want in ("integer", "number")):
        return [f"{path}: expected {want}, got {value!r}"]
    out = [f"{path}: out of range" for k, ok in (("minimum", lambda v, b: v >= b), ("maximum", lambda v, b: v <= b),
                                                  ("exclusiveMinimum", lambda v, b: v > b),
                                                  ("exclusiveMaximum", lambda v, b: v < b))
           if k in schema and isinstance(value, (int, float)) and not ok(value, schema[k])]
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        out += [f"{path}.{k}: missing" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                out += _errors(v, props[k], f"{path}.{k}")
            elif extra is False:
                out.append(f"{path}.{k}: unknown key")
            elif isinstance(extra, dict):
                out += _errors(v, extra, f"{path}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += _errors(v, schema["items"], f"{path}[{i}]")
    return out


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return root_schema(domain_parts())


@pytest.mark.parametrize("argv", [["explain", "trainer.optimizer"], ["--help", "trainer.optimizer"]])
def test_explain_optimizer_lists_lr_with_default_and_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert help_main(argv) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "0.001" in lines["trainer.optimizer.dense.lr"] and "learning rate" in lines["trainer.optimizer.dense.lr"]
    assert "> 0" in lines["trainer.optimizer.dense.lr"]
    assert "0.01" in lines["trainer.optimizer.sparse.lr"].split()  # the group's own default, not the class's
    assert "'adam' | 'adamw'" in lines["trainer.optimizer.dense.name"]


def test_explain_model_follows_the_chosen_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert explain(["model", "model=dcnv2"]) == 0
    assert "dcnv2" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"'trainer\.optimiser': unknown key \(did you mean: optimizer\?\)"):
        explain(["trainer.optimiser"])


def test_explain_unknown_path_is_one_error_line_exit_2() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "trainer", "explain", "trainer.optimiser"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: config error at 'trainer.optimiser': unknown key (did you mean: optimizer?)"]


@pytest.mark.parametrize("experiment", ["movielens_deepfm", "digits_resnet"])
def test_json_schema_accepts_shipped_experiments(schema: dict[str, Any], experiment: str) -> None:
    cfg = compose_config([f"+experiment={experiment}"])
    assert _errors(cfg, schema) == []


def test_json_schema_rejects_a_typo_and_carries_docs(schema: dict[str, Any]) -> None:
    cfg = compose_config(["+experiment=movielens_deepfm"])
    cfg["trainer"]["optimiser"] = cfg["trainer"].pop("optimizer")
    assert _errors(cfg, schema) == [".trainer.optimiser: unknown key"]
    lr = schema["properties"]["trainer"]["properties"]["optimizer"]["properties"]["dense"]["properties"]["lr"]
    assert lr == {"type": "number", "description": "learning rate", "exclusiveMinimum": 0, "default": 0.001}
    assert schema["$schema"].endswith("2020-12/schema")


def test_help_lists_experiments_and_no_base_files() -> None:
    text = help_text()
    assert "explain" in text and "schema" in text and "+experiment=NAME" in text
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "trainer", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == text.strip()
    words = proc.stdout.replace(",", " ").split()
    assert "movielens_deepfm" in words and "deepfm" in words
    assert not [w for w in words if w == "base" or w.endswith("_base")]
