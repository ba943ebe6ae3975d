"""easycv models: shapes, label assignment, NMS, a tiny overfit per model, EMA, export round trip."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from easycv.engine import CVEngine
from easycv.metrics import DetectionMetrics
from easycv.models import build_model
from easycv.models import ops
from easycv.models.ops import batched_nms, greedy_nms, load_torchvision_nms
from easycv.schema import ClassifierSpec, EmaSpec, NormalizeT, YoloxSpec, build_model_spec
from trainer.schema.spec import TrainerSpec
from trainer.torch_backend.engine import to_host
from trainer.torch_backend.programs import load_program



pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops: 1 intra-op thread is faster here


TINY_BACKBONE = {"stem_channels": 8, "widths": [8, 16], "depths": [1, 1]}


def tiny(name: str) -> object:
    if name == "yolox":
        return build_model_spec({"name": "yolox", "backbone": {"stem_channels": 8, "stem_stride": 2,
                                                               "widths": [8, 16, 24], "depths": [1, 1, 1],
                                                               "strides": [2, 2, 2]},
                                 "neck_channels": 16, "head_channels": 16})
    return build_model_spec({"name": name, **TINY_BACKBONE})


@pytest.mark.parametrize("name", ["resnet", "mobilenet"])
def test_classifier_shapes_and_configurable_stages(name: str) -> None:
    spec = build_model_spec({"name": name, "stem_channels": 8, "stem_stride": 2, "widths": [8, 16, 32],
                             "depths": [2, 1, 3], "strides": [1, 2, 2]})
    model = build_model(spec, num_classes=7, channels=3)
    feats = model.backbone(torch.zeros(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    assert model.backbone.reductions == [2, 4, 8]
    assert [len(s) for s in model.backbone.stages] == [2, 1, 3]
    assert model(torch.zeros(2, 3, 32, 32))["logits"].shape == (2, 7)


def test_bottleneck_resnet_and_yolox_shapes() -> None:
    spec = build_model_spec({"name": "resnet", "block": "bottleneck", **TINY_BACKBONE})
    assert build_model(spec, 3, 1)(torch.zeros(1, 1, 16, 16))["logits"].shape == (1, 3)
    det = build_model(tiny("yolox"), num_classes=10, channels=1)
    out = det(torch.zeros(2, 1, 64, 64))
    points = (64 // 8) ** 2 + (64 // 16) ** 2  # levels of stride 8 and 16
    assert out["raw"].shape == (2, points, 5 + 10) and out["points"].shape == (points, 2)
    assert out["points"][0].tolist() == [4.0, 4.0] and out["strides"][-1] == 16  # cell centres
    det.eval()
    boxes = det.predict(det(torch.zeros(2, 1, 64, 64)))["boxes"]
    assert len(boxes) == 2 and all(b.shape[1] == 6 for b in boxes)
    det.train()
    assert det.predict(out) == {}  # no NMS during training steps


@pytest.mark.parametrize("assigner", ["simota", "center"])
def test_assignment_picks_points_on_the_object(assigner: str) -> None:
    spec = tiny("yolox")
    spec.assigner = assigner
    det = build_model(spec, num_classes=2, channels=1)
    out = det(torch.zeros(1, 1, 64, 64))
    gt = torch.tensor([[1, 8.0, 8.0, 40.0, 40.0], [0, 50.0, 50.0, 53.0, 53.0]])  # big box, 3-px box
    idx, gt_i, ious = det.assign(out, det.decode(out)[0], out["raw"][0], gt)
    assert len(idx) and set(gt_i.tolist()) == {0, 1}  # every box gets a point, even the tiny one
    centre = out["points"][idx]
    big = centre[gt_i == 0]
    assert ((big >= 8 - 2.5 * 16) & (big <= 40 + 2.5 * 16)).all()
    assert ((ious >= 0) & (ious <= 1)).all() and len(set(idx.tolist())) == len(idx)  # one box per point


def test_nms_by_hand() -> None:
    boxes = torch.tensor([[0, 0, 10, 10.], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = torch.tensor([.9, .8, .7, .6])
    # box 1 overlaps box 0 (IoU 81/119 = .68) and box 3 is box 0 again: both suppressed
    assert greedy_nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert greedy_nms(boxes, scores, 0.7).tolist() == [0, 1, 2]
    # class-wise: box 3 of another class survives
    assert sorted(batched_nms(boxes, scores, torch.tensor([0, 0, 0, 1]), 0.5).tolist()) == [0, 2, 3]


class BrokenTorchvision:
    """A meta-path finder making ``import torchvision`` fail as a wheel built for another torch
    does (RuntimeError from its operator registration), or as a missing one (ImportError)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name.split(".")[0] == "torchvision":
            raise self.error


@pytest.mark.parametrize("error", [RuntimeError("operator torchvision::nms does not exist"),
                                   ImportError("No module named 'torchvision'")])
def test_broken_torchvision_falls_back_to_own_nms(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BrokenTorchvision(error), *sys.meta_path])
    assert load_torchvision_nms() is None


def test_torchvision_nms_failing_at_call_time_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError("Could not run 'torchvision::nms' with arguments from the 'CUDA' backend")

    monkeypatch.setattr(ops, "TORCHVISION_NMS", broken)
    boxes = torch.tensor([[0, 0, 10, 10.], [1, 1, 11, 11], [20, 20, 30, 30]])
    kept = batched_nms(boxes, torch.tensor([.9, .8, .7]), torch.tensor([0, 0, 0]), 0.5)
    assert kept.tolist() == [0, 2] and ops.TORCHVISION_NMS is None  # not retried on every batch


def _digit_batch(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Four easy 'classes' of 16x16 grey images: a bar in one of four places (plus noise)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 16, 16, generator=g) * 0.3
    y = torch.arange(n) % 4
    for i in range(n):
        k = int(y[i])
        x[i, 0, 4 * k:4 * k + 3, 2:14] += 1.0
    return x, y


@pytest.mark.parametrize("name", ["resnet", "mobilenet"])
def test_tiny_classifier_overfits(name: str) -> None:
    torch.manual_seed(0)
    x, y = _digit_batch()
    model = build_model(tiny(name), 4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (model.predict(model(x))["label"].argmax(1) == y).float().mean() == 1.0
    assert loss.item() < 0.05


def _squares(n: int = 4) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """64x64 images with a filled (class 0) and a hollow (class 1) square at fixed places."""
    x = torch.zeros(n, 1, 64, 64)
    targets = []
    for i in range(n):
        a, b = 6 + 4 * i, 36 - 2 * i
        x[i, 0, a:a + 16, a:a + 16] = 1.0
        x[i, 0, b:b + 20, 40:60] = 1.0
        x[i, 0, b + 3:b + 17, 43:57] = 0.0
        targets.append(torch.tensor([[0, a, a, a + 16, a + 16], [1, 40, b, 60, b + 20]], dtype=torch.float32))
    return x, targets


@pytest.mark.slow
def test_tiny_detector_overfits() -> None:
    torch.manual_seed(0)
    x, targets = _squares()
    det = build_model(tiny("yolox"), 2, 1)
    opt = torch.optim.AdamW(det.parameters(), lr=5e-3)
    for _ in range(120):
        loss = det.loss(det(x), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    det.eval()
    with torch.no_grad():
        preds = to_host(det.predict(det(x)))
    metrics = DetectionMetrics({"boxes": "detection"}, 2)
    c = metrics.collector()
    c.add(preds, {"boxes": [t.numpy() for t in targets]})
    out = metrics.compute("eval", c)
    assert out["eval/map50"] == pytest.approx(1.0) and out["eval/map"] > 0.6, out


def test_ema_follows_weights_and_export_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(tiny("resnet"), 4, 1)
    engine = CVEngine(model, TrainerSpec(), torch.device("cpu"), ema=EmaSpec(decay=0.9, warmup_steps=1))
    x, y = _digit_batch(8)

    class B:  # the loader's batch protocol, minimal
        size = 8
        labels = {"label": y.numpy()}

        def to_torch(self, device: torch.device) -> torch.Tensor:
            return x

        def labels_to_torch(self, device: torch.device) -> torch.Tensor:
            return y

    first = {k: v.clone() for k, v in engine.ema.module.state_dict().items()}
    for _ in range(3):
        engine.train_step(B())
    w, e = engine.model.head.weight, engine.ema.module.head.weight
    assert not torch.equal(e, first["head.weight"]) and not torch.equal(e, w)  # between init and now
    for fmt in ("torchscript", "torch_export"):
        out = engine.export_cv(tmp_path / fmt, fmt, torch.rand(2, 1, 16, 16), NormalizeT(mean=[0.5], std=[0.25]),
                               1, {"task": "classification"})
        program, meta = load_program(out)
        images = torch.rand(5, 1, 16, 16)  # another batch size than the example
        got = program(images)["label"]
        engine.ema.module.eval()
        want = engine.ema.module.serve((images - 0.5) / 0.25)["label"]
        assert meta["format"] == fmt and torch.allclose(got, want, atol=1e-5)


def test_yolox_export_round_trip(tmp_path: Path) -> None:
    det = build_model(tiny("yolox"), 3, 1).eval()
    engine = CVEngine(det, None, torch.device("cpu"))
    program, _ = load_program(engine.export_cv(tmp_path, "torchscript", torch.rand(1, 1, 64, 64), None, 1, {}))
    images = torch.rand(3, 1, 64, 64)
    got, want = program(images), det.serve(images)
    assert torch.allclose(got["boxes"], want["boxes"], atol=1e-4)
    assert torch.allclose(got["scores"], want["scores"], atol=1e-5)
    assert isinstance(tiny("resnet"), ClassifierSpec) and isinstance(tiny("yolox"), YoloxSpec)
