"""easycv metrics: COCO mAP on hand-computed cases, top-1/top-5 accuracy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from easycv.coco_eval import average_precision, coco_map, iou_matrix
from easycv.metrics import ClassificationMetrics, DetectionMetrics


def det(*rows: tuple) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 6)


def gt(*rows: tuple) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 5)


def test_iou_by_hand() -> None:
    # two 10x10 boxes overlapping in a 5x10 strip: 50 / (100 + 100 - 50)
    assert iou_matrix(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 15, 10.]]))[0, 0] == pytest.approx(1 / 3)


def test_perfect_detections_score_one() -> None:
    g = [gt((0, 0, 0, 10, 10), (1, 20, 20, 40, 30)), gt((1, 5, 5, 9, 9))]
    d = [det((0, 0, 10, 10, .9, 0), (20, 20, 40, 30, .8, 1)), det((5, 5, 9, 9, .7, 1))]
    m = coco_map(d, g, num_classes=3)  # class 2 has no ground truth: left out of the mean
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)
    assert math.isnan(m["ap_per_class"][2])


def test_iou_062_counts_at_three_of_ten_thresholds() -> None:
    # gt [0,0,10,10], det [0,0,10,6.2]: IoU 0.62 -> a hit at 0.50, 0.55, 0.60 only
    m = coco_map([det((0, 0, 10, 6.2, .9, 0))], [gt((0, 0, 0, 10, 10))], 1)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.3)


def test_false_positive_ranked_first_halves_precision() -> None:
    # ranked: FP (0.9), TP (0.8) -> precision [0, 0.5], recall [0, 1]; interpolated precision is
    # 0.5 at every recall point -> AP = 0.5
    m = coco_map([det((50, 50, 60, 60, .9, 0), (0, 0, 10, 10, .8, 0))], [gt((0, 0, 0, 10, 10))], 1)
    assert m["map50"] == pytest.approx(0.5) and m["map"] == pytest.approx(0.5)


def test_half_recall_gives_51_of_101_points() -> None:
    # 2 ground-truth boxes, one found: precision 1 at recall 0..0.5 (51 points), 0 after
    m = coco_map([det((0, 0, 10, 10, .9, 0))], [gt((0, 0, 0, 10, 10), (0, 30, 30, 40, 40))], 1)
    assert m["map50"] == pytest.approx(51 / 101)


def test_duplicate_detection_is_a_false_positive_and_wrong_class_misses() -> None:
    # two detections on one box: the second (lower score) is a FP; TP first -> precision 1 up to
    # recall 1, then the FP adds nothing below it -> AP 1. A detection of the wrong class finds nothing.
    m = coco_map([det((0, 0, 10, 10, .9, 0), (0, 0, 10, 10, .8, 0))], [gt((0, 0, 0, 10, 10))], 1)
    assert m["map"] == pytest.approx(1.0)
    m = coco_map([det((0, 0, 10, 10, .9, 1))], [gt((0, 0, 0, 10, 10))], 2)
    assert m["map"] == pytest.approx(0.0)


def test_ranking_across_images() -> None:
    # image A: TP 0.9; image B: FP 0.8; image C: TP 0.7 -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1
    # monotone precision: [1, 2/3, 2/3]; recall points <= 0.5 (51) -> 1, the other 50 -> 2/3
    d = [det((0, 0, 10, 10, .9, 0)), det((0, 0, 10, 10, .8, 0)), det((0, 0, 10, 10, .7, 0))]
    g = [gt((0, 0, 0, 10, 10)), gt(), gt((0, 0, 0, 10, 10))]
    assert coco_map(d, g, 1)["map50"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_average_precision_without_detections_is_zero() -> None:
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0


def test_detection_metrics_keys_and_merge() -> None:
    metrics = DetectionMetrics({"boxes": "detection"}, num_classes=1)
    a, b = metrics.collector(), metrics.collector()
    a.add({"boxes": [det((0, 0, 10, 10, .9, 0))]}, {"boxes": [gt((0, 0, 0, 10, 10))]})
    a.add({}, {"boxes": [gt((0, 0, 0, 10, 10))]})  # a training step: no detections, ignored
    b.add({"boxes": [det()]}, {"boxes": [gt((0, 0, 0, 10, 10))]})
    out = metrics.compute("eval", metrics.merged([a.state(), b.state()]))
    assert out["eval/map50"] == pytest.approx(51 / 101)
    assert set(out) == {"eval/map", "eval/map50", "eval/map75"}


def test_top1_top5() -> None:
    metrics = ClassificationMetrics({"label": "multiclass"})
    c = metrics.collector()
    probs = np.array([[.5, .2, .1, .1, .05, .05, 0], [.1, .2, .3, .4, 0, 0, 0], [0, 0, 0, 0, 0, .1, .9]])
    c.add({"label": probs}, {"label": np.array([0, 0, 5])})
    out = metrics.compute("eval", metrics.merged([c.state()]))
    assert out == {"eval/top1": pytest.approx(1 / 3), "eval/top5": pytest.approx(1.0)}
    c.add({"label": probs[:1]}, {"label": np.array([6])})  # class 6 is not in row 0's top 5
    assert metrics.compute("train", c)["train/top5"] == pytest.approx(3 / 4)
