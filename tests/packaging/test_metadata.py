"""The package metadata users install from: ranges (not pins), extras that each work alone, and
every third-party module the code imports declared by some requirement."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lingjie", "trainer", "easyrec", "easycv", "easynlp", "automl", "dataio", "hydra_plugins")
# imported only behind a guard that falls back (torchvision) or brought by a declared requirement
OPTIONAL = {"torchvision"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    project = _project()
    reqs = list(project["dependencies"]) + [r for rs in project["optional-dependencies"].values() for r in rs]
    return {_name(r) for r in reqs if not r.startswith("lingjie[")}


def _with_their_requirements(names: set[str]) -> set[str]:
    """``names`` and everything they require, as installed here (one level is enough for
    modules such as requests, which kubernetes brings)."""
    out = set(names)
    for name in names:
        try:
            out |= {_name(r) for r in (requires(name) or []) if "extra ==" not in r}
        except Exception:  # a declared extra not installed in this venv
            continue
    return out


def _imported_modules() -> set[str]:
    mods: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    mods |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m not in PACKAGES and m not in OPTIONAL}


def test_requirements_are_ranges_not_pins() -> None:
    project = _project()
    for group, reqs in {"dependencies": project["dependencies"], **project["optional-dependencies"]}.items():
        if group == "bench":  # the benchmark peer is pinned on purpose: results name its version
            continue
        pinned = [r for r in reqs if "==" in r]
        assert not pinned, f"{group}: exact pins belong in requirements-lock.txt: {pinned}"


def test_extras_work_alone_and_all_leaves_the_peer_out() -> None:
    extras = _project()["optional-dependencies"]
    for alone in ("nlp", "cv"):
        assert "torch" in {_name(r) for r in extras[alone]}, f"[{alone}] must bring torch"
    assert "faster-coco-eval" in {_name(r) for r in extras["cv"]}
    everything = extras["all"][0]
    assert "bench" not in everything and "dev" not in everything
    assert {_name(r) for r in extras["mlflow"]} >= {"mlflow-skinny"}
    assert {_name(r) for r in extras["onnx"]} >= {"onnx", "onnxruntime"}


def test_every_imported_module_is_declared() -> None:
    dists = packages_distributions()
    declared = _with_their_requirements(_declared())
    missing = {}
    for module in sorted(_imported_modules()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        if not names & declared:
            missing[module] = sorted(names) or "not installed"
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_lock_pins_every_declared_requirement() -> None:
    locked = {_name(line) for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    declared = _declared() - {"deepctr-torch"}
    assert declared <= locked, f"not in requirements-lock.txt (run scripts/lock.sh): {sorted(declared - locked)}"
