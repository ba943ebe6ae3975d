"""easycv metrics: COCO mAP on hand-computed cases (every evaluator installed), top-1/top-5 accuracy."""
from __future__ import annotations

import functools
import logging
import math

import numpy as np
import pytest

import easycv.coco_eval
from easycv.coco_eval import OWN, average_precision, iou_matrix
from easycv.coco_library import LIBRARIES, library_available
from easycv.metrics import ClassificationMetrics, DetectionMetrics

EVALUATORS = [OWN, *(pytest.param(name, marks=pytest.mark.skipif(not library_available(name),
                                                                   reason=f"{name} not installed"))
                     for name in LIBRARIES)]


@pytest.fixture(params=EVALUATORS)
def coco_map(request: pytest.FixtureRequest):
    """``easycv.coco_eval.coco_map`` bound to one evaluator: each hand case runs on every path."""
    return functools.partial(easycv.coco_eval.coco_map, evaluator=request.param)


def det(*rows: tuple) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 6)


def gt(*rows: tuple) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 5)


def test_iou_by_hand() -> None:
    # two 10x10 boxes overlapping in a 5x10 strip: 50 / (100 + 100 - 50)
    assert iou_matrix(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 15, 10.]]))[0, 0] == pytest.approx(1 / 3)


def test_perfect_detections_score_one(coco_map) -> None:
    g = [gt((0, 0, 0, 10, 10), (1, 20, 20, 40, 30)), gt((1, 5, 5, 9, 9))]
    d = [det((0, 0, 10, 10, .9, 0), (20, 20, 40, 30, .8, 1)), det((5, 5, 9, 9, .7, 1))]
    m = coco_map(d, g, num_classes=3)  # class 2 has no ground truth: left out of the mean
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)
    assert math.isnan(m["ap_per_class"][2])


def test_iou_062_counts_at_three_of_ten_thresholds(coco_map) -> None:
    # gt [0,0,10,10], det [0,0,10,6.2]: IoU 0.62 -> a hit at 0.50, 0.55, 0.60 only
    m = coco_map([det((0, 0, 10, 6.2, .9, 0))], [gt((0, 0, 0, 10, 10))], 1)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.3)


def test_false_positive_ranked_first_halves_precision(coco_map) -> None:
    # ranked: FP (0.9), TP (0.8) -> precision [0, 0.5], recall [0, 1]; interpolated precision is
    # 0.5 at every recall point -> AP = 0.5
    m = coco_map([det((50, 50, 60, 60, .9, 0), (0, 0, 10, 10, .8, 0))], [gt((0, 0, 0, 10, 10))], 1)
    assert m["map50"] == pytest.approx(0.5) and m["map"] == pytest.approx(0.5)


def test_half_recall_gives_51_of_101_points(coco_map) -> None:
    # 2 ground-truth boxes, one found: precision 1 at recall 0..0.5 (51 points), 0 after
    m = coco_map([det((0, 0, 10, 10, .9, 0))], [gt((0, 0, 0, 10, 10), (0, 30, 30, 40, 40))], 1)
    assert m["map50"] == pytest.approx(51 / 101)


def test_duplicate_detection_is_a_false_positive_and_wrong_class_misses(coco_map) -> None:
    # two detections on one box: the second (lower score) is a FP; TP first -> precision 1 up to
    # recall 1, then the FP adds nothing below it -> AP 1. A detection of the wrong class finds nothing.
    m = coco_map([det((0, 0, 10, 10, .9, 0), (0, 0, 10, 10, .8, 0))], [gt((0, 0, 0, 10, 10))], 1)
    assert m["map"] == pytest.approx(1.0)
    m = coco_map([det((0, 0, 10, 10, .9, 1))], [gt((0, 0, 0, 10, 10))], 2)
    assert m["map"] == pytest.approx(0.0)


def test_ranking_across_images(coco_map) -> None:
    # image A: TP 0.9; image B: FP 0.8; image C: TP 0.7 -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1
    # monotone precision: [1, 2/3, 2/3]; recall points <= 0.5 (51) -> 1, the other 50 -> 2/3
    d = [det((0, 0, 10, 10, .9, 0)), det((0, 0, 10, 10, .8, 0)), det((0, 0, 10, 10, .7, 0))]
    g = [gt((0, 0, 0, 10, 10)), gt(), gt((0, 0, 0, 10, 10))]
    assert coco_map(d, g, 1)["map50"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_average_precision_without_detections_is_zero() -> None:
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0


def test_detection_metrics_keys_and_merge(caplog: pytest.LogCaptureFixture) -> None:
    metrics = DetectionMetrics({"boxes": "detection"}, num_classes=1)
    a, b = metrics.collector(), metrics.collector()
    a.add({"boxes": [det((0, 0, 10, 10, .9, 0))]}, {"boxes": [gt((0, 0, 0, 10, 10))]})
    a.add({}, {"boxes": [gt((0, 0, 0, 10, 10))]})  # a training step: no detections, ignored
    b.add({"boxes": [det()]}, {"boxes": [gt((0, 0, 0, 10, 10))]})
    with caplog.at_level(logging.INFO, logger="lingjie.easycv"):
        out = metrics.compute("eval", metrics.merged([a.state(), b.state()]))
    assert out["eval/map50"] == pytest.approx(51 / 101)
    # 10x10 boxes are all "small": the medium / large keys, undefined, are left out
    assert set(out) == {"eval/map", "eval/map50", "eval/map75", "eval/map_small", "eval/mar_1", "eval/mar_10",
                        "eval/mar_100", "eval/mar_small"}
    assert out["eval/mar_100"] == pytest.approx(0.5) and out["eval/map_small"] == out["eval/map"]
    assert metrics.evaluator in {OWN, *LIBRARIES} and f"computed by {metrics.evaluator}" in caplog.text


def test_area_ranges_ignore_other_sizes(coco_map) -> None:
    # one class; a FP large box (score .95) with no ground truth, a large TP (.9), a small TP (.8).
    # all: FP, TP, TP -> precision [0, 1/2, 2/3] made monotone -> 2/3 at every recall point.
    # small: the large ground truth and both large detections are ignored -> AP 1.
    # large: the small ground truth / detection are ignored -> FP, TP -> 1/2.
    g = [gt((0, 0, 0, 10, 10), (0, 100, 100, 200, 200))]
    d = [det((300, 300, 400, 400, .95, 0), (100, 100, 200, 200, .9, 0), (0, 0, 10, 10, .8, 0))]
    m = coco_map(d, g, 1)
    assert m["map"] == pytest.approx(2 / 3) and m["map_small"] == pytest.approx(1.0)
    assert m["map_large"] == pytest.approx(0.5) and math.isnan(m["map_medium"])
    assert m["mar_1"] == pytest.approx(0.0) and m["mar_10"] == pytest.approx(1.0)  # 1 detection: the FP
    assert m["mar_small"] == pytest.approx(1.0) and math.isnan(m["mar_medium"])


def test_evaluator_is_picked_automatically(monkeypatch: pytest.MonkeyPatch) -> None:
    d, g = [det((0, 0, 10, 10, .9, 0))], [gt((0, 0, 0, 10, 10))]
    installed = [name for name in LIBRARIES if library_available(name)]
    assert easycv.coco_eval.coco_map(d, g, 1)["evaluator"] == (installed[0] if installed else OWN)
    monkeypatch.setattr(easycv.coco_eval, "preferred_library", lambda: None)  # no library installed
    assert easycv.coco_eval.coco_map(d, g, 1)["evaluator"] == OWN
    # pycocotools' loadRes cannot take an empty result list: no detections at all -> ours (all zeros)
    empty = easycv.coco_eval.coco_map([det()], g, 1, evaluator="pycocotools")
    assert empty["evaluator"] == OWN and empty["map"] == 0.0 and empty["mar_100"] == 0.0


def test_library_available_treats_a_blocked_import_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "faster_coco_eval", None)
    assert library_available.__wrapped__("faster_coco_eval") is False


def test_top1_top5() -> None:
    metrics = ClassificationMetrics({"label": "multiclass"})
    c = metrics.collector()
    probs = np.array([[.5, .2, .1, .1, .05, .05, 0], [.1, .2, .3, .4, 0, 0, 0], [0, 0, 0, 0, 0, .1, .9]])
    c.add({"label": probs}, {"label": np.array([0, 0, 5])})
    out = metrics.compute("eval", metrics.merged([c.state()]))
    assert out == {"eval/top1": pytest.approx(1 / 3), "eval/top5": pytest.approx(1.0)}
    c.add({"label": probs[:1]}, {"label": np.array([6])})  # class 6 is not in row 0's top 5
    assert metrics.compute("train", c)["train/top5"] == pytest.approx(3 / 4)
