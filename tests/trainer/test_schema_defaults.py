"""The group YAML files that list every knob agree with the dataclass defaults (the one source
of truth), and the check that says so does catch a difference."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.compose import CONFIGS
from trainer.schema.defaults import GroupFile, check, differences, group_files, render, spec_class

GROUP_FILES = group_files()

ROOT = Path(__file__).resolve().parents[2]
TRAINER = next(g for g in GROUP_FILES if g.path == "trainer/default.yaml")


@pytest.mark.parametrize("group", GROUP_FILES, ids=[g.path for g in GROUP_FILES])
def test_every_group_file_holds_the_dataclass_defaults(group: GroupFile) -> None:
    found = differences(group)
    assert not found, (f"configs/{group.path} differs from {group.spec} (the dataclass is the truth; "
                       f"run `python -m trainer.schema.defaults --write`): {found}")
    assert (CONFIGS / group.path).read_text(encoding="utf-8") == render(group), \
        f"configs/{group.path} was edited by hand; run `python -m trainer.schema.defaults --write`"


def test_a_planted_difference_is_named() -> None:
    text = render(TRAINER)
    assert differences(TRAINER, text) == []
    planted = text.replace("epochs: 5 ", "epochs: 7 ").replace("lr: 0.01,", "lr: 0.05,")
    assert differences(TRAINER, planted) == ["epochs: file 7, dataclass default 5",
                                             "optimizer.sparse.lr: file 0.05, dataclass default 0.01"]
    missing = "\n".join(line for line in text.splitlines() if not line.startswith("dedup_ids:"))
    extra = text + "epochz: 3\n"
    assert differences(TRAINER, missing) == ["dedup_ids: missing from the file (dataclass default False)"]
    assert differences(TRAINER, extra) == ["epochz: in the file but no knob of the dataclass"]
    assert differences(TRAINER, text.replace("progress_bar: true", "progress_bar: 1")) == [
        "progress_bar: file 1, dataclass default True"]


def test_interpolations_are_declared_by_the_dataclass() -> None:
    paths = next(g for g in GROUP_FILES if g.path == "paths/default.yaml")
    assert "run_dir: ${hydra:runtime.output_dir}" in render(paths)
    assert spec_class(paths)().run_dir is None  # outside Hydra the dataclass default holds
    planted = render(paths).replace("${hydra:runtime.output_dir}", "${hydra:runtime.cwd}")
    assert differences(paths, planted) == [
        "run_dir: file '${hydra:runtime.cwd}', dataclass default '${hydra:runtime.output_dir}'"]


def test_the_command_checks_and_writes(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    for group in GROUP_FILES:
        (configs / group.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CONFIGS / group.path, configs / group.path)
    target = configs / TRAINER.path
    target.write_text(target.read_text().replace("epochs: 5 ", "epochs: 2 "))
    assert check(configs) == ["trainer/default.yaml: epochs: file 2, dataclass default 5"]
    cmd = [sys.executable, "-m", "trainer.schema.defaults", "--configs", str(configs)]
    bad = subprocess.run([*cmd, "--check"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and "trainer/default.yaml: epochs: file 2, dataclass default 5" in bad.stderr
    wrote = subprocess.run([*cmd, "--write"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "trainer/default.yaml" in wrote.stdout
    subprocess.run([*cmd, "--check"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert check(configs) == []
