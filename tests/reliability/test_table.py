"""The reliability table (README "Reliability"): every row of every ``cases_*.py`` module."""
from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


def _run(case: case_mod.Case, tmp: Path) -> subprocess.CompletedProcess:
    """Set the case up and run its CLI in ``tmp`` (the row's own temp dir)."""
    if case.setup is not None:
        case.setup(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in case.args]
    if not any(a.startswith(("paths.output_root=", "hydra.run.dir=")) for a in args):
        args.append(f"paths.output_root={tmp / 'out'}")
    # one OpenMP/torch thread per CLI process: the table runs two rows at a time on a 2-core
    # machine, where two 2-thread processes spinning against each other train many times slower
    env = {"OMP_NUM_THREADS": "1", **{k: v.replace("{tmp}", str(tmp)) for k, v in case.env.items()}}
    return run_cli(args, cwd=tmp, env=env, check=False, timeout=300)


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            data_dir: Path) -> dict[str, tuple[Path, Any]]:
    """Every selected row run up front, two at a time (the CLI runs are single-threaded
    Python start-ups on a 2-core machine): id -> (temp dir, CompletedProcess or exception)."""
    chosen = [item.callspec.params["case"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_case" and item.module is request.module]

    def one(case: case_mod.Case) -> tuple[str, tuple[Path, Any]]:
        tmp = tmp_path_factory.mktemp(case.id)
        try:
            return case.id, (tmp, _run(case, tmp))
        except Exception as exc:  # noqa: BLE001 - reported by the row's own test
            return case.id, (tmp, exc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, chosen))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: case_mod.Case, results: dict[str, tuple[Path, Any]]) -> None:
    tmp, proc = results[case.id]
    if isinstance(proc, BaseException):
        raise proc
    both = proc.stdout + proc.stderr
    where = f"\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    assert proc.returncode == case.code, f"exit {proc.returncode}, expected {case.code}{where}"
    assert "Traceback" not in both, f"a traceback{where}"
    if case.code != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, f"expected one 'error:' line, got {errors}{where}"
        assert re.search(case.message, errors[0]), f"{errors[0]!r} does not match {case.message!r}{where}"
    if case.check is not None:
        case.check(tmp, proc)
