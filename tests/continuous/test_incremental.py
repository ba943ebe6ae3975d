"""Continuous training: date partitions, the day-by-day driver (``lingjie incremental``) and
publishing each day's export to a serving model repository (``trainer.export.repository``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import SHRINK, compose, run_cli

EXPERIMENT = "+experiment=movielens_deepfm_days"
DAYS = ["1997-09-20", "1997-10-16", "1997-11-13"]


@pytest.fixture(scope="module")
def days_dir() -> Path:
    """The bundled movielens-100k-days partitions (prepared once per machine)."""
    from dataio.datasets import ensure_dataset

    return ensure_dataset("movielens-100k-days", os.environ.get("LINGJIE_DATA_DIR"), show_progress=False)


# ----- date partitions
def test_the_dataset_is_consecutive_equal_count_days(days_dir: Path) -> None:
    import pyarrow.parquet as pq

    from dataio.datasets.movielens import DAY_DATES

    meta = json.loads((days_dir / "meta.json").read_text())
    assert meta["dates"] == list(DAY_DATES) and len(DAY_DATES) >= 6
    assert sorted(DAY_DATES) == list(DAY_DATES) and sum(meta["rows"].values()) == 100_000
    last_end = None
    for date in DAY_DATES:
        table = pq.read_table(days_dir / f"dt={date}" / "part-0.parquet")
        assert table.num_rows == 12_500 and "hist_item_id" in table.column_names and "rating" in table.column_names
        ts = table["timestamp"].to_numpy()
        assert (ts[1:] >= ts[:-1]).all() and (last_end is None or ts[0] >= last_end)
        last_end = ts[-1]
    cfg = compose([EXPERIMENT, "data.date=1997-10-16", "data.eval_date=1997-11-13"])
    assert cfg["data"]["train_path"].endswith("movielens-100k-days/dt=1997-10-16/")
    assert cfg["data"]["dates"] == list(DAY_DATES)


def test_a_null_date_in_a_path_is_one_config_error() -> None:
    from lingjie.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'data.train_path'.*data.date is null.*data.date=YYYY-MM-DD"):
        compose([EXPERIMENT, "data.date=null"])
    with pytest.raises(ConfigError, match=r"'data.eval_path'.*data.eval_date is null.*data.eval_path=null"):
        compose([EXPERIMENT, "data.eval_date=null"])
    compose([EXPERIMENT, "data.eval_date=null", "data.eval_path=null"])  # no evaluation: fine


def test_the_cli_names_the_key_and_leaves_no_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli([EXPERIMENT, "data.date=null", f"hydra.run.dir={run}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: config error at 'data.train_path'") and "lingjie incremental" in last
    assert not run.exists()


def test_a_missing_partition_names_its_path(tmp_path: Path, days_dir: Path) -> None:
    proc = run_cli([EXPERIMENT, *SHRINK, "data.date=2001-01-01", f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "dt=2001-01-01" in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]


# ----- publishing
def _fake_export(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "model.pt2").write_text(tag)
    (path / "sub").mkdir()
    (path / "sub" / "x.json").write_text("{}")
    (path / "meta.json").write_text(json.dumps({"program": "model.pt2", "tag": tag}))
    return path


def test_publish_numbers_versions_and_serve_resolves_the_newest(tmp_path: Path) -> None:
    from trainer.publish import next_version, publish_export, publish_run
    from trainer.serve.repository import resolve

    repo = tmp_path / "repo"
    assert publish_export(_fake_export(tmp_path / "a", "a"), str(repo)) == 1
    (repo / "3.1.0").mkdir()  # a hand-made version: numbers continue above it
    assert next_version(["1", "3.1.0", "x", ".publish-tmp"]) == 4
    run = tmp_path / "run"
    run.mkdir()
    assert publish_run(run, _fake_export(tmp_path / "b", "b"), str(repo)) == 4
    assert publish_run(run, tmp_path / "b", str(repo)) == 4  # published once per run
    assert json.loads((run / "published.json").read_text())["version"] == 4
    found = resolve(repo)
    assert found.version == "4" and found.meta["tag"] == "b" and (found.export_dir / "sub" / "x.json").exists()
    assert not [p for p in repo.iterdir() if p.name.startswith(".")]  # no staging dir left


def test_publish_to_an_fsspec_url_writes_meta_json_last(tmp_path: Path) -> None:
    from trainer.publish import publish_export
    from trainer.serve.repository import Repository

    url = f"memory://publish-{os.getpid()}/repo"
    for tag in ("a", "b"):
        publish_export(_fake_export(tmp_path / tag, tag), url)
    versions = Repository(url).versions()
    assert [v.name for v in versions] == ["2", "1"] and versions[0].meta["tag"] == "b"


# ----- the driver
def test_the_driver_refuses_what_it_sets_and_undated_paths() -> None:
    from lingjie.errors import ConfigError
    from trainer.incremental import plan

    with pytest.raises(ConfigError, match="'data.date'.*sets it for every day"):
        plan([EXPERIMENT, "data.date=1997-09-20"])
    with pytest.raises(ConfigError, match="'data.train_path'.*does not depend on"):
        plan(["+experiment=movielens_deepfm", "data.dates=[a,b]"])
    with pytest.raises(ConfigError, match="'data.dates'.*no days"):
        plan([EXPERIMENT, "data.dates=[]"])
    p = plan([EXPERIMENT, "trainer.init_from=/runs/x", "--out", "/tmp/o"])
    assert p.first_init == "/runs/x" and p.repository == "/tmp/o/repository" and len(p.dates) == 8
    assert p.last_eval_path_null and not any("init_from" in o for o in p.overrides)


@pytest.mark.slow
def test_three_days_publish_resume_and_a_failing_day(tmp_path: Path, days_dir: Path) -> None:
    from trainer.serve.repository import resolve

    out, repo = tmp_path / "out", tmp_path / "served"
    args = ["incremental", "--out", str(out), EXPERIMENT, *SHRINK, f"data.dates=[{','.join(DAYS)}]",
            f"trainer.export.repository={repo}"]
    proc = run_cli(args, cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("day ")]
    assert len(lines) == 3 and lines[0].startswith(f"day 1/3 {DAYS[0]}: next day {DAYS[1]}: auc="), lines
    summary = json.loads((out / "incremental.json").read_text())
    days = summary["days"]
    assert summary["finished"] and [d["date"] for d in days] == DAYS and [d["version"] for d in days] == [1, 2, 3]
    assert [d["init_from"] for d in days] == [None, str(out / DAYS[0]), str(out / DAYS[1])]
    for d in days:
        assert (Path(d["run_dir"]) / "DONE").exists() and d["wall_s"] > 0
    assert 0.5 < days[0]["metrics"]["eval/auc"] < 1 and days[2]["eval_date"] is None and not days[2]["metrics"]
    config = (out / DAYS[1] / "config.yaml").read_text()
    assert f"dt={DAYS[1]}/" in config and f"dt={DAYS[2]}/" in config  # trained on day 2, evaluated on day 3
    found = resolve(repo)
    assert found.version == "3" and (found.export_dir / "meta.json").exists()

    again = run_cli(args, cwd=tmp_path)  # re-run: every day done, nothing trained or published again
    assert again.stdout.count("done before, skipped") == 3 and "run directory:" not in again.stdout
    assert sorted(p.name for p in repo.iterdir()) == ["1", "2", "3"]

    bad = args[:-2] + [f"data.dates=[{','.join(DAYS)},2099-01-01]", f"trainer.export.repository={repo}"]
    failed = run_cli(bad, cwd=tmp_path, check=False)
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 2 and last.startswith("error: day 2099-01-01 (4/4) failed"), failed.stderr[-2000:]
    assert str(out / "2099-01-01") in last
    summary = json.loads((out / "incremental.json").read_text())
    assert [d["status"] for d in summary["days"]] == ["done"] * 3 + ["failed"] and not summary["finished"]


def test_day_overrides_chain_the_days_and_resume_an_unfinished_one(tmp_path: Path) -> None:
    from trainer.incremental import Plan, day_overrides, quote

    p = Plan(["+experiment=x"], ["d1", "d2", "d3"], tmp_path / "o u t", "/repo", None, True)
    first, middle, last = (day_overrides(p, i) for i in range(3))
    assert "data.eval_date=d2" in first and not any(o.startswith("trainer.init_from") for o in first)
    assert quote("trainer.init_from", str(tmp_path / "o u t" / "d1")) in middle
    assert "trainer.init_from='" in middle[-3] and "data.eval_path=null" in last and "data.eval_date=null" in last
    assert quote("a", "x'y z") == "a='x\\'y z'" and quote("a", "/p/q-1.2") == "a=/p/q-1.2"
    ckpt = tmp_path / "o u t" / "d2" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "step-10.pt").write_bytes(b"")
    (ckpt.parent / "config.yaml").write_text("{}")
    assert day_overrides(p, 1)[-1] == quote("trainer.resume", str(ckpt.parent))  # continues, not restarts
