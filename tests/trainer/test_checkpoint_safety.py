"""Checkpoints load without running code (issue 17): ``.pt`` files through
``torch.load(weights_only=True)``, TF metadata as JSON; numpy state (RNG, collected
predictions) survives exactly; a file carrying a pickle payload is refused in one line and
its payload never runs; atomic writes make the rename itself durable."""
from __future__ import annotations

import collections
import errno
import io
import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dataio import atomic
from lingjie.errors import DataError
from trainer.checkpoint_io import META_FILE, from_safe, meta_json_bytes, read_checkpoint, read_meta, to_safe


class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


def _numpy_meta() -> dict:
    rs = np.random.RandomState(7)
    rs.standard_normal(3)  # has_gauss = 1: the cached gaussian is part of the state
    return {"rng": {"numpy": rs.get_state(legacy=False), "python": random.Random(3).getstate()},
            "train_collector": {"preds": {"ctr": np.array([0.25, np.nan, 1e-30], np.float32)},
                                "groups": np.arange(4, dtype=np.uint64).reshape(2, 2), "none": None},
            "vocab": np.array(["a", "ü", None], dtype=object), "scalar": np.int16(-3), "flag": np.bool_(True),
            "history": [{"eval/auc": np.float64(0.75)}],  # np.float64 is a float subclass: still tagged
            "config": {"lr": 0.1, "layers": [64, 32], "name": "x"}}


def _assert_same(a, b) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert type(a) is type(b) and a.dtype == b.dtype and np.shape(a) == np.shape(b)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes() if a.dtype != object else list(a) == list(b)
    else:
        assert a == b and type(a) is type(b)


def _assert_one_line_refusal(exc: DataError, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text and str(path) in text and "refusing to load" in text, text


def test_numpy_state_round_trips_exactly_through_torch_and_json() -> None:
    meta = _numpy_meta()
    buf = io.BytesIO()
    torch.save(to_safe(meta), buf)
    buf.seek(0)
    via_torch = from_safe(torch.load(buf, weights_only=True))
    via_json = from_safe(json.loads(meta_json_bytes(meta)))
    _assert_same(meta, via_torch)
    _assert_same({k: v for k, v in meta.items() if k != "rng"}, {k: v for k, v in via_json.items() if k != "rng"})
    for state in (via_torch["rng"]["numpy"], via_json["rng"]["numpy"]):  # the same draws follow
        rs = np.random.RandomState()
        rs.set_state(state)
        ref = np.random.RandomState()
        ref.set_state(meta["rng"]["numpy"])
        assert rs.standard_normal(5).tobytes() == ref.standard_normal(5).tobytes()


def test_to_safe_passes_tensors_through_and_rejects_objects_at_save_time() -> None:
    sd = torch.nn.BatchNorm1d(3).state_dict()
    assert to_safe(sd) is sd and from_safe(sd) is sd  # _metadata (module versions) kept
    import enum

    class Kind(str, enum.Enum):
        A = "a"

    point = collections.namedtuple("point", "x y")
    safe = to_safe({"kind": Kind.A, "n": enum.IntEnum("N", "X").X, "p": point(1, 2),
                    "counts": collections.defaultdict(int, {np.int64(3): 1})})
    buf = io.BytesIO()
    torch.save(safe, buf)  # every class here would be refused by the weights_only unpickler
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == {"kind": "a", "n": 1, "p": (1, 2), "counts": {3: 1}}
    with pytest.raises(TypeError, match="_Payload"):
        to_safe({"meta": {"x": _Payload(Path("unused"))}})


def test_torch_engine_checkpoint_loads_weights_only(tmp_path: Path) -> None:
    """A TorchEngine checkpoint (model, Adam state, a LambdaLR scheduler, torch RNG, the loop's
    numpy meta) loads with weights_only=True and restores the same values."""
    from trainer.run_dir import RunDir
    from trainer.torch_backend.engine import TorchEngine

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    sched.step()
    engine = TorchEngine.__new__(TorchEngine)  # only the checkpoint half of the engine
    engine.model, engine.optimizers, engine.schedulers, engine.scaler = model, [opt], [sched], None
    run = RunDir(tmp_path / "run")
    path = engine.save(run, "step-00000001", _numpy_meta())
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no exception: no pickled objects
    assert raw["format_version"] == 3
    state = read_checkpoint(path)
    _assert_same(_numpy_meta(), state["meta"])
    assert torch.equal(state["model"]["weight"], model.weight.detach())
    assert state["optimizers"][0]["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert state["schedulers"][0]["last_epoch"] == 1
    assert run.latest_checkpoint() == path


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_pickle_payload_is_refused_in_one_line_and_never_runs(tmp_path: Path, container: str) -> None:
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(_Payload(live))).close()
    assert live.exists()  # the payload is real: plain unpickling runs it

    marker = tmp_path / "marker"
    path = tmp_path / "epoch-0001.pt"
    if container == "zip":
        torch.save({"meta": {"x": _Payload(marker)}, "model": {}}, path)
    else:  # a bare pickle stream named .pt
        path.write_bytes(pickle.dumps({"meta": _Payload(marker)}, protocol=2))
    with pytest.raises(DataError) as err:
        read_checkpoint(path)
    _assert_one_line_refusal(err.value, path)
    assert not marker.exists()


def test_old_format_checkpoint_with_pickled_numpy_is_refused(tmp_path: Path) -> None:
    """Before this change the loop's meta held np.random.get_state() as pickled numpy."""
    path = tmp_path / "step-00000020.pt"
    torch.save({"model": {"w": torch.ones(2)}, "meta": {"rng": {"numpy": np.random.get_state()}}}, path)
    with pytest.raises(DataError, match="older Lingjie") as err:
        read_meta(path)
    _assert_one_line_refusal(err.value, path)


def test_tf_checkpoint_metadata_is_json_only(tmp_path: Path) -> None:
    old = tmp_path / "epoch-0001.tfckpt"
    old.mkdir()
    marker = tmp_path / "marker"
    (old / "meta.pkl").write_bytes(pickle.dumps({"x": _Payload(marker)}))
    with pytest.raises(DataError, match="older Lingjie") as err:
        read_meta(old)
    _assert_one_line_refusal(err.value, old)
    assert not marker.exists()

    bad = tmp_path / "epoch-0002.tfckpt"
    bad.mkdir()
    (bad / META_FILE).write_bytes(pickle.dumps({"x": _Payload(marker)}))
    with pytest.raises(DataError, match="meta.json") as err:
        read_meta(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    assert not marker.exists()

    for broken in ({"__ndarray__": "<f4", "shape": [3], "data": "AAAA"}, {"__ndarray__": "|O", "shape": [1], "data": "AA=="},
                   {"__ndarray__": "no-dtype", "shape": [], "data": ""}):
        (bad / META_FILE).write_text(json.dumps({"rng": broken}))
        with pytest.raises(DataError, match="malformed array") as err:
            read_meta(bad)
        assert "\n" not in str(err.value)

    good = tmp_path / "epoch-0003.tfckpt"
    good.mkdir()
    (good / META_FILE).write_bytes(meta_json_bytes(_numpy_meta()))
    _assert_same({k: v for k, v in _numpy_meta().items() if k != "rng"},
                 {k: v for k, v in read_meta(good).items() if k != "rng"})


def test_atomic_write_fsyncs_the_directory_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Path, bool]] = []
    target = tmp_path / "latest"
    real = atomic.fsync_dir
    monkeypatch.setattr(atomic, "fsync_dir", lambda d: (seen.append((d, target.exists())), real(d)))
    atomic.atomic_write_bytes(target, b"epoch-0001.pt")
    assert seen == [(tmp_path, True)] and target.read_bytes() == b"epoch-0001.pt"


def test_fsync_dir_ignores_einval_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(code: int):
        def fsync(fd: int) -> None:
            raise OSError(code, os.strerror(code))
        return fsync

    monkeypatch.setattr(atomic.os, "fsync", failing(errno.EINVAL))
    atomic.fsync_dir(tmp_path)  # a file system that cannot fsync directories: nothing to do
    monkeypatch.setattr(atomic.os, "fsync", failing(errno.EIO))
    with pytest.raises(OSError):
        atomic.fsync_dir(tmp_path)


def test_rebuilt_state_dict_keeps_module_versions() -> None:
    """A model state_dict with a numpy value inside (a dynamic table's extra state may hold
    one) is rebuilt by to_safe/from_safe: its _metadata (module versions) must survive."""
    sd = torch.nn.BatchNorm1d(3).state_dict()
    sd["table._extra_state"] = {"stats": {"hits": np.int64(5)}}
    buf = io.BytesIO()
    torch.save(to_safe(sd), buf)
    buf.seek(0)
    back = from_safe(torch.load(buf, weights_only=True))
    assert back._metadata == sd._metadata and back["table._extra_state"]["stats"]["hits"] == np.int64(5)
    assert isinstance(back["table._extra_state"]["stats"]["hits"], np.int64)


def test_tf_checkpoint_is_json_and_fsynced_before_and_after_the_rename(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The TF engine's save (checkpoint half only): meta.json, every file fsynced inside the
    temp dir before the rename, the checkpoints dir after it; restore reads the same meta."""
    tf = pytest.importorskip("tensorflow")
    from easyrec.tf_backend import engine as tf_engine
    from trainer.run_dir import RunDir

    events: list[str] = []
    real_tree, real_dir = tf_engine.fsync_tree, tf_engine.fsync_dir

    def tree(root: Path) -> None:
        events.append(f"tree {sorted(p.name for p in Path(root).iterdir())}")
        real_tree(root)

    def directory(d: Path) -> None:
        events.append(f"dir {Path(d).name} {sorted(p.name for p in Path(d).iterdir() if p.suffix == '.tfckpt')}")
        real_dir(d)

    monkeypatch.setattr(tf_engine, "fsync_tree", tree)
    monkeypatch.setattr(tf_engine, "fsync_dir", directory)
    engine = tf_engine.TFEngine.__new__(tf_engine.TFEngine)
    engine.is_chief, engine.optimizers = True, {}
    engine.ckpt = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0]))
    run = RunDir(tmp_path / "run")
    path = engine.save(run, "epoch-0001", _numpy_meta())
    assert events == ["tree ['meta.json', 'vars.data-00000-of-00001', 'vars.index']",
                      "dir checkpoints ['epoch-0001.tfckpt']"]
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "vars.data-00000-of-00001", "vars.index"]
    assert run.latest_checkpoint() == path
    engine.ckpt.v.assign([0.0, 0.0])
    meta = engine.restore(path)
    _assert_same({k: v for k, v in _numpy_meta().items() if k != "rng"}, {k: v for k, v in meta.items() if k != "rng"})
    assert engine.ckpt.v.numpy().tolist() == [1.0, 2.0]
