"""``lingjie serve`` follows delta exports: under concurrent load, deltas copied into the served
export's ``deltas/`` are applied in place (one reference swap each: no failed request, every
answer is exactly the base's or a replayed delta's), the delta step is reported, and a corrupt or
out-of-chain delta is refused (logged, counted) while the model keeps serving."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.continuous.helpers import movielens_rows, train_with_deltas
from tests.serve.conftest import serving
from tests.serve.load import Load

POLL = 0.2
NAME = "movielens_deepfm"


def until(check: Any, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def deploy(src: Path, deltas: Path) -> None:
    """Copy a delta dir in as a deploy job would: into a dot-named temp dir, then one rename."""
    tmp = deltas / f".{src.name}.incoming"
    shutil.copytree(src, tmp)
    os.replace(tmp, deltas / src.name)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The kept base + deltas, a few instances and the scores the replayed model gives them
    after each delta ("" : the base), computed in-process with the server's own adapter."""
    from easyrec.serving_adapter import Adapter

    tmp = tmp_path_factory.mktemp("serve_deltas")
    _, kept = train_with_deltas(tmp, "movielens_deepfm")
    adapter = Adapter(kept)
    instances = [{c: row[c] for c in adapter.columns} for row in movielens_rows(6).to_pylist()]
    expected = {"": [p["like"] for p in adapter.predict(instances)]}
    for path in adapter.pending_deltas():
        adapter = adapter.with_delta(path)
        expected[str(adapter.delta_step)] = [p["like"] for p in adapter.predict(instances)]
    return {"tmp": tmp, "kept": kept, "instances": instances, "expected": expected}


def test_deltas_applied_under_load_then_broken_ones_refused(chain: dict[str, Any]) -> None:
    tmp, kept, expected = chain["tmp"], chain["kept"], chain["expected"]
    served = tmp / "served"
    shutil.copytree(kept, served, ignore=shutil.ignore_patterns("delta-*"))  # the base, no deltas yet
    deltas = sorted((kept / "deltas").iterdir())
    body = json.dumps({"instances": chain["instances"]}).encode()
    with serving(str(served), tmp, "--poll-seconds", str(POLL), "--max-latency-ms", "2") as client:
        _, meta = client.call("GET", f"/v2/models/{NAME}")
        assert meta["versions"] == ["0"] and meta["delta_step"] is None
        with Load(client.port, f"/v1/models/{NAME}:predict", body, "x-model-delta-step") as load:
            time.sleep(0.5)
            for path in deltas:
                deploy(path, served / "deltas")
                time.sleep(3 * POLL)
            assert until(lambda: client.call("GET", f"/v2/models/{NAME}")[1]["delta_step"] == 8)
            time.sleep(0.5)
        assert not load.errors, load.errors[:5]
        seen = [step for _, _, step, _ in load.results]
        assert set(seen) >= {"", "8"} and set(seen) <= set(expected), set(seen)
        for _, _, step, scores in load.results:  # each answer is wholly one model's: the base's or a delta's
            assert scores == pytest.approx(expected[step], abs=1e-7), step
        assert expected["8"] != pytest.approx(expected[""], abs=1e-6)
        assert client.metric("lingjie_serve_delta_step") == 8
        assert client.metric("lingjie_serve_deltas_applied_total") == 4
        assert client.metric("lingjie_serve_reloads_total") == 0  # patched in place, never reloaded

        # a corrupt delta (sha256 mismatch) and an out-of-chain one: refused, counted once, still serving
        corrupt = tmp / "delta-00000010"
        shutil.copytree(deltas[-1], corrupt)
        manifest = json.loads((corrupt / "manifest.json").read_text())
        (corrupt / "manifest.json").write_text(json.dumps({**manifest, "step": 10, "previous": 8}))
        (corrupt / "delta.pt").write_bytes(b"not a tensor file")
        deploy(corrupt, served / "deltas")
        assert until(lambda: client.metric("lingjie_serve_delta_failures_total") >= 1)
        stray = tmp / "delta-00000014"
        shutil.copytree(deltas[-1], stray)
        (stray / "manifest.json").write_text(json.dumps({**manifest, "step": 14, "previous": 12}))
        deploy(stray, served / "deltas")
        assert until(lambda: client.metric("lingjie_serve_delta_failures_total") >= 2)
        time.sleep(4 * POLL)
        assert client.metric("lingjie_serve_delta_failures_total") == 2  # not retried: files unchanged
        _, meta = client.call("GET", f"/v2/models/{NAME}")
        reasons = {f["delta"]: f["reason"] for f in meta["delta_failures"]}
        assert "sha256 mismatch" in reasons["delta-00000010"], reasons
        assert "out of chain" in reasons["delta-00000014"], reasons
        status, out, heads = client.call_full("POST", f"/v1/models/{NAME}:predict", {"instances": chain["instances"]})
        assert status == 200 and heads["x-model-delta-step"] == "8"
        assert [p["like"] for p in out["predictions"]] == pytest.approx(expected["8"], abs=1e-7)


def test_remote_repository_deltas_are_downloaded_then_applied(chain: dict[str, Any], tmp_path: Path) -> None:
    """A ``memory://`` repository: new deltas are copied into the version's cached copy once
    complete (an upload in progress is left for the next poll), then applied."""
    import fsspec

    from easyrec.serving_adapter import Adapter
    from trainer.serve.models import ModelManager
    from trainer.serve.repository import Repository

    kept, instances = chain["kept"], chain["instances"]
    fs, root = fsspec.filesystem("memory"), f"/deltas-{os.getpid()}-{time.time_ns()}"
    for name in ("meta.json", "feature_state.json", "model.pt2"):
        fs.pipe(f"{root}/1/{name}", (kept / name).read_bytes())
    manager = ModelManager(Repository(f"memory://{root}", tmp_path / "cache"))
    assert manager.load_initial().delta_step is None
    first = kept / "deltas" / "delta-00000002"
    remote = f"{root}/1/deltas/delta-00000002"
    fs.pipe(f"{remote}/manifest.json", (first / "manifest.json").read_bytes())
    fs.pipe(f"{remote}/delta.pt", (first / "delta.pt").read_bytes()[:100])  # still uploading
    manager.poll()
    assert manager.current.delta_step is None and not manager.deltas.failed
    fs.pipe(f"{remote}/delta.pt", (first / "delta.pt").read_bytes())
    for path in sorted((kept / "deltas").iterdir())[1:]:
        for name in ("delta.pt", "manifest.json"):
            fs.pipe(f"{root}/1/deltas/{path.name}/{name}", (path / name).read_bytes())
    manager.poll()
    assert manager.current.delta_step == 8 and manager.current.export_dir.parent == tmp_path / "cache"
    scores = [p["like"] for p in manager.current.predict(instances)]
    assert scores == pytest.approx(chain["expected"]["8"], abs=1e-7)
    assert isinstance(manager.current.adapter, Adapter)


def test_a_delta_that_arrives_before_its_predecessor_is_applied_after_it(chain: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    from trainer.serve.models import ModelManager
    from trainer.serve.repository import Repository

    kept = chain["kept"]
    served = tmp_path / "export"
    shutil.copytree(kept, served, ignore=shutil.ignore_patterns("delta-*"))
    manager = ModelManager(Repository(str(served)))
    manager.load_initial()
    deltas = sorted((kept / "deltas").iterdir())
    deploy(deltas[1], served / "deltas")  # step 4 first: out of chain for now
    manager.poll()
    assert manager.current.delta_step is None and [f["delta"] for f in manager.deltas.failures()] == \
        ["delta-00000004"]
    deploy(deltas[0], served / "deltas")
    manager.poll()
    assert manager.current.delta_step == 4 and manager.deltas.failures() == []
