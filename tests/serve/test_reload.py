"""Hot reload, pinning / rollback and remote repositories of ``lingjie serve``.

A real server subprocess follows a ``file://`` model repository while 8 client threads keep
it busy: a new version dropped in (copied under a temp name, then renamed, as a deploy does)
is swapped in with zero failed requests; a broken version is reported and skipped; pins move
the server between versions. Version 2 is a second tiny run with another seed, so its scores
differ from version 1's: the version a response names is the model that computed it.
In-process tests cover a ``memory://`` repository (download into the cache), in-place re-exports
(stream mode) and the micro-batcher never mixing models in one pass, without a server.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import run_cli
from tests.serve.conftest import NAME, TRAIN, Client, serving
from tests.serve.load import Load
from trainer.serve.batching import MicroBatcher
from trainer.serve.models import LoadedModel, ModelManager
from trainer.serve.repository import Repository, Version

POLL = 0.5
ROW = {"user_id": 3, "item_id": 323, "gender": "M", "age": 23, "occupation": "writer", "zip_code": "32067",
       "genres": "Action|Thriller", "release_year": 1997}
PREDICT, LOAD = f"/v1/models/{NAME}:predict", f"/v2/repository/models/{NAME}/load"


@pytest.fixture(scope="module")
def second_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run again with another seed: version 2, with scores of its own."""
    tmp = tmp_path_factory.mktemp("seed7")
    run_cli([*TRAIN, "seed=7", f"hydra.run.dir={tmp / 'train'}"], cwd=tmp)
    return tmp / "train"


def deploy(export: Path, repo: Path, version: str, corrupt: bool = False) -> None:
    """Copy an export in under a temp name, then rename it into place (what a deploy job does)."""
    staged = repo / f".incoming-{version}"
    shutil.copytree(export, staged)
    if corrupt:
        program = json.loads((staged / "meta.json").read_text())["program"]
        (staged / program).write_bytes(b"not a program")
    os.rename(staged, repo / version)


@pytest.fixture(scope="module")
def repo_server(tiny_run: Path, second_run: Path, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("reload")
    repo = tmp / "repo"
    repo.mkdir()
    deploy(tiny_run / "export", repo, "1")
    with serving(f"file://{repo}", tmp, "--poll-seconds", str(POLL), "--max-latency-ms", "5") as client:
        yield {"client": client, "repo": repo, "v2": second_run / "export"}


def served(client: Client) -> tuple[str, float]:
    """(the version that answered, its score for ROW)."""
    status, body, headers = client.call_full("POST", PREDICT, {"instances": [ROW]})
    assert status == 200, body
    return headers["x-model-version"], body["predictions"][0]["like"]


def until(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_new_version_is_swapped_in_under_load_without_a_failed_request(repo_server: dict[str, Any]) -> None:
    client, repo = repo_server["client"], repo_server["repo"]
    v1 = served(client)
    assert v1[0] == "1"
    with Load(client.port, PREDICT, json.dumps({"instances": [ROW]}).encode(), "x-model-version", threads=8) as load:
        time.sleep(1.0)
        deploy(repo_server["v2"], repo, "2")
        deployed = time.monotonic()
        switched = until(lambda: any(r[2] == "2" for r in load.results[-50:]), 20)
        time.sleep(1.0)
    assert not load.errors, load.errors[:5]
    assert switched, "version 2 was never served"
    first_v2 = min(r[0] for r in load.results if r[2] == "2")
    rate = len(load.results) / load.seconds
    assert rate >= 200, f"{rate:.0f} requests/s"
    assert first_v2 - deployed < 10 * POLL + 5, f"version 2 served {first_v2 - deployed:.1f}s after the deploy"
    tail = [r for r in load.results if r[0] > load.results[-1][0] - 0.5]
    assert {r[2] for r in tail} == {"2"}, "requests after the swap still answered by version 1"
    scores = {r[2]: r[3][0] for r in load.results}
    assert scores["1"] == pytest.approx(v1[1], abs=1e-6) and scores["2"] != pytest.approx(v1[1], abs=1e-6)
    assert client.metric("lingjie_serve_reloads_total") == 1
    print(f"{len(load.results)} requests at {rate:.0f}/s, zero failed; version 2 after {first_v2 - deployed:.1f}s")


def test_broken_version_is_reported_and_the_old_one_keeps_serving(repo_server: dict[str, Any]) -> None:
    client, repo = repo_server["client"], repo_server["repo"]
    deploy(repo_server["v2"], repo, "3", corrupt=True)
    assert until(lambda: client.metric("lingjie_serve_reload_failures_total") >= 1), "no failure reported"
    assert served(client)[0] == "2"
    _, index = client.call("GET", "/v2/repository/index")
    rows = {r["version"]: r for r in index}
    assert rows["3"]["state"] == "UNAVAILABLE" and rows["3"]["reason"], rows
    assert rows["2"]["state"] == "READY" and rows["1"]["state"] == "UNAVAILABLE" and rows["2"]["name"] == NAME
    _, meta = client.call("GET", f"/v2/models/{NAME}")
    assert meta["versions"] == ["2"] and [f["version"] for f in meta["reload_failures"]] == ["3"]
    time.sleep(4 * POLL)
    assert client.metric("lingjie_serve_reload_failures_total") == 1, "retried though its files did not change"
    meta_json = repo / "3" / "meta.json"
    meta_json.write_text(meta_json.read_text())  # files changed: worth one more try
    assert until(lambda: client.metric("lingjie_serve_reload_failures_total") >= 2, 10)
    assert served(client)[0] == "2"


def test_pin_rollback_and_unpin(repo_server: dict[str, Any]) -> None:
    client = repo_server["client"]
    v2_score = served(client)[1]
    status, body = client.call("POST", LOAD, {"parameters": {"version": "1"}})
    assert (status, body["version"], body["pinned"]) == (200, "1", "1"), body
    version, score = served(client)
    assert version == "1" and score != pytest.approx(v2_score, abs=1e-6)
    status, body = client.call("POST", f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "INT64", "data": [v]}
        for k, v in ROW.items()]})
    assert status == 200 and body["model_version"] == "1", body
    time.sleep(3 * POLL)
    assert served(client)[0] == "1", "a pinned server moved on"
    assert {r["version"]: r["state"] for r in client.call("GET", "/v2/repository/index")[1]}["1"] == "READY"
    status, body = client.call("POST", LOAD, {"parameters": {"version": "latest"}})
    assert (status, body["version"], body["pinned"]) == (200, "2", None), body  # 3 is broken: the newest good
    status, body = client.call("POST", LOAD, {"parameters": {"version": "9"}})
    assert status == 404 and "'9'" in body["error"] and body["field"] == "parameters.version", body
    status, body = client.call("POST", LOAD, {"parameters": {"version": "3"}})
    assert status == 409 and "version 3 failed to load" in body["error"], body
    assert served(client)[0] == "2"
    assert client.call("POST", "/v2/repository/models/nope/load", {})[0] == 404
    assert client.call("POST", LOAD, b"")[1]["version"] == "2"  # no body: follow the newest


def _fake_loader(calls: list[str]) -> Any:
    """A loader without a model: the 'program' file's text is the model; 'bad' fails."""

    def load(export_dir: Path, version: Version) -> LoadedModel:
        calls.append(version.name)
        text = (export_dir / "model.bin").read_text()
        if text == "bad":
            raise ValueError("corrupt program")
        return LoadedModel(None, version.name, version.stamp, export_dir, version.meta, {}, text)

    return load


def _export(fs: Any, path: str, program: str = "good", **meta: Any) -> None:
    fs.pipe(f"{path}/model.bin", program.encode())
    fs.pipe(f"{path}/meta.json", json.dumps({"program": "model.bin", "domain": "rec", **meta}).encode())


def test_memory_repository_is_downloaded_into_the_cache(tmp_path: Path) -> None:
    import fsspec

    fs, root = fsspec.filesystem("memory"), f"/serve-{os.getpid()}-{time.time_ns()}"
    _export(fs, f"{root}/1")
    _export(fs, f"{root}/2/export")  # a run dir as a version
    fs.pipe(f"{root}/3/meta.json", b'{"program": "model.bin"}')  # still uploading: skipped
    calls: list[str] = []
    manager = ModelManager(Repository(f"memory://{root}", tmp_path / "cache"), loader=_fake_loader(calls))
    model = manager.load_initial()
    assert model.version == "2" and model.export_dir.parent == tmp_path / "cache"
    assert (model.export_dir / "model.bin").read_text() == "good"
    _export(fs, f"{root}/4", program="bad")
    manager.poll()
    manager.poll()  # not retried: its files did not change
    assert manager.current.version == "2" and calls == ["2", "4"]
    _export(fs, f"{root}/5")
    manager.poll()
    assert manager.current.version == "5" and [p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()
                                               if not p.name.startswith(".")].count("5") == 1
    assert manager.pin("1").version == "1" and manager.pinned == "1"
    manager.poll()
    assert manager.current.version == "1"
    assert manager.pin("latest").version == "5"


def test_in_place_re_export_is_reloaded(tmp_path: Path) -> None:
    """Stream mode rewrites ``<run>/export`` in place, meta.json last: a new meta.json is a reload."""
    import fsspec

    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("experiment_name: x\n")
    fs = fsspec.filesystem("file")
    _export(fs, str(export), version="10")
    calls: list[str] = []
    manager = ModelManager(Repository(str(tmp_path / "run")), loader=_fake_loader(calls))
    assert manager.load_initial().version == "10"
    manager.poll()
    assert calls == ["10"]
    _export(fs, str(export), program="second", version="200")  # another size: a new stamp even within one mtime tick
    manager.poll()
    assert (manager.current.version, manager.current.platform) == ("200", "second")


def test_batcher_never_mixes_models_in_one_pass() -> None:
    passes: list[tuple[str, int]] = []

    def model(tag: str) -> Any:
        def predict(rows: list[Any]) -> list[dict[str, Any]]:
            passes.append((tag, len(rows)))
            return [{"tag": tag, "row": r} for r in rows]
        return predict

    old, new = model("old"), model("new")

    async def main() -> list[list[dict[str, Any]]]:
        batcher = MicroBatcher(old, max_batch_size=64, max_latency_ms=20, workers=1)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([i], old if i % 2 else new) for i in range(20)))
        finally:
            await batcher.stop()

    answers = asyncio.run(main())
    for i, answer in enumerate(answers):
        assert answer == [{"tag": "old" if i % 2 else "new", "row": i}]
    assert sum(n for _, n in passes) == 20 and len(passes) < 20
