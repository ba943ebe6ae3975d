"""Reliability rows for run directories (issue 17): resume that would change the model is
refused and leaves the run as it was; evaluate with another model says which config it used;
a run in use by a live process is not touched; failed runs are passed over by the auto-pick;
a refused command leaves no run directory.

One SMALL training is made once per session (a few seconds) and copied into each row's temp
dir, so the rows cost one CLI call each.
"""
from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

from tests.conftest import ROOT, run_cli
from tests.reliability.case import SMALL, Case, run_dirs

EXP = "movielens_deepfm"
RUN = "{tmp}/out/" + EXP + "/run"
OLD = "2020-01-01_00-00-00_000000-0000"  # sorts before every run a row starts
_HOLDERS: dict[str, subprocess.Popen] = {}


_TRAIN_LOCK = threading.Lock()  # the table runs two rows at a time: train once, not twice


def _trained() -> Path:
    """One finished SMALL run (no export), made once per session."""
    with _TRAIN_LOCK:
        return _train_once()


@lru_cache(maxsize=1)
def _train_once() -> Path:
    base = Path(tempfile.mkdtemp(prefix="lingjie-runs-"))
    run_cli([*SMALL, "trainer.export.enabled=false", f"paths.output_root={base / 'out'}",
             f"hydra.run.dir={base / 'run'}"], cwd=base,
            env={"OMP_NUM_THREADS": "1"})  # one thread, as the table's rows: another row runs beside it
    return base / "run"


def _copy_run(tmp: Path, name: str = "run", failed: str | None = None) -> Path:
    """The trained run as an unfinished run ``name`` of the row's output root."""
    dest = tmp / "out" / EXP / name
    shutil.copytree(_trained(), dest)
    (dest / "DONE").unlink()
    (dest / "LOCK").unlink(missing_ok=True)
    if failed:
        (dest / "FAILED").write_text(failed + "\n")
    return dest


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unchanged(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    """The named run kept its config.yaml, got no new files, and no other run dir is left."""
    run = tmp / "out" / EXP / "run"
    assert _digest(run / "config.yaml") == _digest(_trained() / "config.yaml")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        sorted(p.name for p in (_trained() / "checkpoints").iterdir())
    assert not (run / "FAILED").exists() and not (run / "DONE").exists()
    assert run_dirs(tmp) == [run], run_dirs(tmp)


def _no_run_dirs(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    assert run_dirs(tmp) == [], run_dirs(tmp)


def _hold_lock(tmp: Path) -> None:
    """A live process (outliving the CLI call) holding the copied run's lock."""
    run = _copy_run(tmp)
    code = ("import sys, time\nfrom trainer.run_lock import try_lock_run\n"
            "assert try_lock_run(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    _HOLDERS[str(tmp)] = proc


def _locked_untouched(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    holder = _HOLDERS.pop(str(tmp))
    try:
        assert f"pid {holder.pid}" in proc.stderr
        _unchanged(tmp, proc)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def _evaluated_with_checkpoint_config(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    warnings = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "WARNING" in ln]
    assert any("model.name=deepfm" in ln and "using the checkpoint's config" in ln for ln in warnings), warnings
    new = [p for p in run_dirs(tmp) if p.name != "run"]
    assert len(new) == 1 and (new[0] / "metrics.json").exists()
    text = (new[0] / "config.yaml").read_text()
    assert "name: deepfm" in text and "dcnv2" not in text and "cross_layers" not in text


def _skipped_failed(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    old = tmp / "out" / EXP / OLD
    assert "skipping" in proc.stdout + proc.stderr and "it failed" in proc.stdout + proc.stderr
    assert (old / "FAILED").exists() and not (old / "DONE").exists()
    new = [p for p in run_dirs(tmp) if p.name != OLD]
    assert len(new) == 1 and (new[0] / "DONE").exists(), new


def _resumed_failed(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    run = tmp / "out" / EXP / "run"
    assert "resumed from" in proc.stdout + proc.stderr
    assert not (run / "FAILED").exists() and (run / "DONE").exists()
    assert _digest(run / "config.yaml") == _digest(_trained() / "config.yaml")
    assert run_dirs(tmp) == [run]


def _failed_marker(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    runs = run_dirs(tmp)
    assert len(runs) == 1 and "data error" in (runs[0] / "FAILED").read_text()


RESUME = [*SMALL, f"trainer.resume={RUN}"]

CASES: list[Case] = [
    Case("runs-resume-other-model", [*RESUME, "model=dcnv2"],
         message=r"trained with model\.name=deepfm.*says dcnv2 .*start a new run", setup=_copy_run, check=_unchanged,
         before="trained deepfm on (the checkpoint's model) and rewrote config.yaml to dcnv2"),
    Case("runs-resume-embedding-dim", [*RESUME, "features.user_id.embedding_dim=32"],
         message=r"features\.user_id\.embedding_dim=16; this command says 32", setup=_copy_run, check=_unchanged,
         before="trained at 16 and rewrote the run's config.yaml to 32"),
    Case("runs-resume-hidden-units", [*RESUME, "model.hidden_units=[64]"],
         message=r"model\.hidden_units=\[256,128,64\]; this command says \[64\]", setup=_copy_run, check=_unchanged,
         before="overwrote config.yaml, then a size-mismatch traceback"),
    Case("runs-evaluate-other-model", [*SMALL, "trainer.mode=evaluate", "model=dcnv2",
                                       f"trainer.evaluate.checkpoint={RUN}"],
         code=0, setup=_copy_run, check=_evaluated_with_checkpoint_config,
         before="exit 0 with the checkpoint's model, config.yaml claiming dcnv2"),
    Case("runs-resume-locked", RESUME, message=r"run .* is in use by a live process \(pid \d+\); wait for it",
         setup=_hold_lock, check=_locked_untouched,
         before="a second process trained into the same run dir"),
    Case("runs-resume-true-skips-failed", [*SMALL, "trainer.resume=true", "trainer.export.enabled=false"], code=0,
         setup=lambda tmp: _copy_run(tmp, OLD, failed="data error: boom"), check=_skipped_failed,
         before="resumed the failed run (and failed the same way)"),
    Case("runs-resume-failed-explicitly", [*RESUME, "trainer.export.enabled=false"], code=0,
         setup=lambda tmp: _copy_run(tmp, failed="data error: boom"), check=_resumed_failed,
         before="no FAILED marker existed"),
    Case("runs-config-error-no-dir", [*SMALL, "model.hidden_units=oops"], message=r"model\.hidden_units",
         check=_no_run_dirs, before="left a run dir holding only Hydra's log"),
    Case("runs-resume-nonexistent", [*SMALL, "trainer.resume={tmp}/nope"],
         message=r"trainer\.resume.*not a Lingjie run directory", check=_no_run_dirs,
         before="left a run dir holding only Hydra's log"),
    Case("runs-data-error-writes-failed", [*SMALL, "data.eval_path={tmp}/nope.parquet"],
         message=r"data error .*nope\.parquet", check=_failed_marker,
         before="the run dir looked like an unfinished run; resume=true picked it"),
]
