"""Checkpoint rows: files that would run code when loaded, torn or foreign files, pointers
that lead out of the run directory. The payload of a malicious file creates ``{tmp}/pwned``;
each row checks that file never appears."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

from tests.reliability.case import SMALL, Case, run_dirs

MARKER = "pwned"


class _Payload:
    """Unpickling this calls ``open(path, "w")``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def _evil_pt(tmp: Path) -> None:
    import torch

    torch.save({"format_version": 1, "model": {}, "meta": {"x": _Payload(tmp / MARKER)}}, tmp / "evil.pt")


def _evil_tf(tmp: Path) -> None:
    import pickle

    ckpt = tmp / "evil.tfckpt"
    ckpt.mkdir()
    (ckpt / "meta.pkl").write_bytes(pickle.dumps({"x": _Payload(tmp / MARKER)}))


def _torn_pt(tmp: Path) -> None:
    _evil_pt(tmp)
    data = (tmp / "evil.pt").read_bytes()
    (tmp / "torn.pt").write_bytes(data[: len(data) // 2])
    (tmp / "evil.pt").unlink()


def _not_a_checkpoint(tmp: Path) -> None:
    (tmp / "notes.pt").write_text("hello, I am not a checkpoint\n")


_TRAIN_LOCK = threading.Lock()  # the table runs two rows at a time: train once, not twice


@lru_cache(maxsize=1)
def _train_once() -> Path:
    """One finished SMALL run (step checkpoints every 2 steps, no export), made once per session."""
    from tests.conftest import run_cli

    base = Path(tempfile.mkdtemp(prefix="lingjie-ckpt-run-"))
    run_cli([*SMALL, "trainer.export.enabled=false", "trainer.checkpoint.every_n_steps=2",
             f"paths.output_root={base / 'out'}"], cwd=base,
            env={"OMP_NUM_THREADS": "1"})  # one thread, as the table's rows: another row runs beside it
    (run,) = run_dirs(base)
    return run


def _trained(tmp: Path) -> None:
    """A real finished SMALL run under {tmp}/out (for rows that tamper with it): a copy of the
    one run trained per session (the rows change their copy, never that run)."""
    with _TRAIN_LOCK:
        run = _train_once()
    dest = tmp / "out" / run.parent.name / run.name
    shutil.copytree(run, dest)
    (dest / "LOCK").unlink(missing_ok=True)


def _evil_in_run(tmp: Path) -> None:
    """A killed-looking run whose newest checkpoint was swapped for a malicious file."""
    _trained(tmp)
    (run,) = run_dirs(tmp)
    (run / "DONE").unlink()
    _evil_pt(tmp)
    (tmp / "evil.pt").replace(run / "checkpoints" / "epoch-0001.pt")


def _pointer_escapes(tmp: Path) -> None:
    _trained(tmp)
    (run,) = run_dirs(tmp)
    (run / "DONE").unlink()
    _evil_pt(tmp)
    (run / "checkpoints" / "latest").write_text("../../../evil.pt")


def _no_marker(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    assert not (tmp / MARKER).exists(), "the checkpoint's payload ran"


def _pointer_ignored(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    _no_marker(tmp, proc)
    assert "ignoring" in proc.stdout + proc.stderr and "latest" in proc.stdout + proc.stderr
    (run,) = run_dirs(tmp)
    assert (run / "DONE").exists(), "the run did not resume from its own newest checkpoint"


def _no_marker_run_kept(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    _no_marker(tmp, proc)
    (run,) = run_dirs(tmp)
    assert (run / "checkpoints" / "epoch-0001.pt").exists(), "the run's files were changed"


REFUSED = r"refus.*(Python objects|code)"
CASES = [
    Case("ckpt-evaluate-pickle-payload", [*SMALL, "trainer.mode=evaluate", "trainer.evaluate.checkpoint={tmp}/evil.pt"],
         message=rf"evil\.pt.*{REFUSED}|{REFUSED}.*evil\.pt", setup=_evil_pt, check=_no_marker,
         before="ran the payload (os.system), then failed or exited 0"),
    Case("ckpt-predict-pickle-payload", [*SMALL, "trainer.mode=predict", "trainer.predict.checkpoint={tmp}/evil.pt"],
         message=r"evil\.pt", setup=_evil_pt, check=_no_marker, before="ran the payload"),
    Case("ckpt-export-pickle-payload", [*SMALL, "trainer.mode=export", "trainer.export.checkpoint={tmp}/evil.pt"],
         message=r"evil\.pt", setup=_evil_pt, check=_no_marker, before="ran the payload"),
    Case("ckpt-tf-meta-pickle", [*SMALL, "trainer.backend=tf", "trainer.mode=evaluate",
                                 "trainer.evaluate.checkpoint={tmp}/evil.tfckpt"],
         message=r"evil\.tfckpt", setup=_evil_tf, check=_no_marker, before="ran the payload (pickle.load of meta.pkl)"),
    Case("ckpt-resume-pickle-payload", [*SMALL, "trainer.export.enabled=false", "trainer.resume=true"],
         message=r"epoch-0001\.pt", setup=_evil_in_run, check=_no_marker_run_kept, before="ran the payload"),
    Case("ckpt-latest-pointer-escapes", [*SMALL, "trainer.export.enabled=false", "trainer.resume=true"],
         code=0, setup=_pointer_escapes, check=_pointer_ignored,
         before="followed ../ out of the run dir and ran the payload"),
    Case("ckpt-torn-file", [*SMALL, "trainer.mode=evaluate", "trainer.evaluate.checkpoint={tmp}/torn.pt"],
         message=r"torn\.pt", setup=_torn_pt, check=_no_marker, before="one line (same)"),
    Case("ckpt-not-a-checkpoint", [*SMALL, "trainer.mode=evaluate", "trainer.evaluate.checkpoint={tmp}/notes.pt"],
         message=r"notes\.pt", setup=_not_a_checkpoint, before="one line (same)"),
    Case("ckpt-missing-file", [*SMALL, "trainer.mode=evaluate", "trainer.evaluate.checkpoint={tmp}/nope.pt"],
         message=r"nope\.pt", before="one line (same)"),
    Case("ckpt-no-run-to-evaluate", [*SMALL, "trainer.mode=evaluate"],
         message=r"no run of experiment", before="one line (same)"),
]
