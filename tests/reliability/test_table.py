"""The reliability table (README "Reliability"): every row of every ``cases_*.py`` module."""
from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.reliability import case as case_mod


def _all_cases() -> list[case_mod.Case]:
    pkg = Path(__file__).parent
    out: list[case_mod.Case] = []
    for info in sorted(pkgutil.iter_modules([str(pkg)]), key=lambda i: i.name):
        if info.name.startswith("cases_"):
            out += importlib.import_module(f"tests.reliability.{info.name}").CASES
    return out


CASES = _all_cases()


def test_the_table_is_big_enough() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(ids) >= 40, f"the reliability table has {len(ids)} rows; issue 17 asks for at least 40"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: case_mod.Case, tmp_path: Path, data_dir: Path) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    if not any(a.startswith(("paths.output_root=", "hydra.run.dir=")) for a in args):
        args.append(f"paths.output_root={tmp_path / 'out'}")
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()}
    proc = run_cli(args, cwd=tmp_path, env=env, check=False, timeout=300)
    both = proc.stdout + proc.stderr
    where = f"\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    assert proc.returncode == case.code, f"exit {proc.returncode}, expected {case.code}{where}"
    assert "Traceback" not in both, f"a traceback{where}"
    if case.code != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, f"expected one 'error:' line, got {errors}{where}"
        assert re.search(case.message, errors[0]), f"{errors[0]!r} does not match {case.message!r}{where}"
    if case.check is not None:
        case.check(tmp_path, proc)
