"""Serving adapters of image and text exports (easycv / easynlp ``serving_adapter.Adapter``).

One tiny training run per domain (digits_resnet, chnsenti_textcnn, shrunk as in
tests/export/test_formats.py) writes its default torch_export; then:

- the adapter's predictions equal ``trainer.mode=predict`` on the same inputs (predict mode run
  in-process through ``trainer.job.run_job``, i.e. the CLI minus Hydra's process start, on the
  same image files / the same text rows), and a ``lingjie serve`` subprocess answers the same
  over real HTTP;
- a coalesced batch of mixed-size images / mixed-length texts gives each instance the answer it
  gets alone;
- Open Inference Protocol (v2) tensors round-trip; every kind of bad input raises RequestError
  naming its field.
"""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lingjie.errors import RequestError
from tests.conftest import compose
from tests.export.test_formats import QUIET, TRAIN
from tests.serve.conftest import serving


def _job(overrides: list[str], run: Path) -> Path:
    from trainer.job import run_job

    cfg = compose([*overrides, *QUIET, f"paths.run_dir={run}", f"paths.output_root={run.parent / 'out'}"])
    return Path(run_job(cfg, json.dumps(cfg)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The cv and nlp training runs (each with its export) and the data directory."""
    from dataio.datasets import ensure_dataset

    path = os.environ.get("LINGJIE_DATA_DIR")
    for name in ("digits", "chnsenti"):
        ensure_dataset(name, path)
    tmp = tmp_path_factory.mktemp("serve")
    threads = torch.get_num_threads()
    try:
        out = {d: _job(TRAIN[d], tmp / f"{d}-train") for d in ("cv", "nlp")}
    finally:
        torch.set_num_threads(threads)
    return {**out, "tmp": tmp, "data": Path(path) if path else Path.home() / ".cache" / "lingjie" / "datasets"}


def _b64(image: Any, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def cv(runs: dict[str, Any]) -> Any:
    from easycv.serving_adapter import Adapter

    return Adapter(runs["cv"] / "export")


@pytest.fixture(scope="module")
def nlp(runs: dict[str, Any]) -> Any:
    from easynlp.serving_adapter import Adapter

    return Adapter(runs["nlp"] / "export")


# ----------------------------------------------------------------------------- vision


def test_cv_meta_names_domain_and_experiment(cv: Any) -> None:
    assert cv.meta["domain"] == "cv" and cv.meta["experiment_name"] == "digits_resnet"
    assert cv.name_hint == "digits_resnet"


def test_cv_adapter_equals_predict_mode(runs: dict[str, Any], cv: Any) -> None:
    folder = runs["data"] / "digits" / "test"
    pred = _job([*TRAIN["cv"], "trainer.mode=predict", f"trainer.predict.checkpoint={runs['cv']}",
                 f"trainer.predict.input_path={folder}", "data.limit_eval_rows=6"], runs["tmp"] / "cv-predict")
    want = json.loads((pred / "predictions.json").read_text())["predictions"]
    assert len(want) == 6
    instances = [{"image_b64": base64.b64encode(Path(r["file"]).read_bytes()).decode()} for r in want[:3]]
    instances += [{"image_url": r["file"]} for r in want[3:]]
    got = cv.predict(instances)
    with serving(str(runs["cv"]), runs["tmp"]) as client:  # the same through a real server over HTTP
        status, body = client.call("POST", "/v1/models/digits_resnet:predict", {"instances": instances})
    assert status == 200, body
    assert body["predictions"] == json.loads(json.dumps(got))
    for g, w in zip(got, want):
        assert g["label"] == w["label"]
        assert [t["label"] for t in g["top5"]] == [t["label"] for t in w["top5"]]
        np.testing.assert_allclose([t["score"] for t in g["top5"]], [t["score"] for t in w["top5"]], atol=1e-4)
        assert set(g["probabilities"]) == set(cv.classes) and abs(sum(g["probabilities"].values()) - 1) < 1e-4


def test_cv_image_url_reads_fsspec_urls(cv: Any) -> None:
    import fsspec

    data = base64.b64decode(cv.example_instances()[0]["image_b64"])
    with fsspec.open("memory://serve-test/grey.png", "wb") as fh:
        fh.write(data)
    by_url, by_b64 = cv.predict([{"image_url": "memory://serve-test/grey.png"}, cv.example_instances()[0]])
    assert by_url == by_b64


def _mixed_images() -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(0)
    shapes = [(8, 8), (13, 29), (64, 40), (3, 3)]
    out: list[Any] = [_b64(Image.fromarray(rng.integers(0, 255, s, dtype=np.uint8))) for s in shapes[:2]]
    out.append({"image_b64": _b64(Image.fromarray(rng.integers(0, 255, (*shapes[2], 3), dtype=np.uint8)), "JPEG")})
    out.append({"image_b64": "data:image/png;base64," + _b64(Image.fromarray(rng.integers(0, 255, shapes[3],
                                                                                          dtype=np.uint8)))})
    return out


def test_cv_coalesced_batch_equals_one_by_one(cv: Any) -> None:
    instances = _mixed_images() + cv.example_instances()
    cv.check(instances)
    batch = cv.predict(instances)
    for inst, row in zip(instances, batch):
        alone = cv.predict([inst])[0]
        assert alone["label"] == row["label"]
        np.testing.assert_allclose(list(alone["probabilities"].values()), list(row["probabilities"].values()),
                                   atol=1e-5)


def test_cv_v2_round_trip(cv: Any) -> None:
    images = [i if isinstance(i, str) else i["image_b64"] for i in _mixed_images()]
    inputs = [{"name": "image_b64", "shape": [len(images)], "datatype": "BYTES", "data": images}]
    instances = cv.v2_inputs_to_instances(inputs)
    assert instances == [{"image_b64": b} for b in images]
    preds = cv.predict(instances)
    out = {t["name"]: t for t in cv.v2_outputs(preds)}
    assert out["label"]["data"] == [p["label"] for p in preds] and out["label"]["datatype"] == "BYTES"
    probs = np.asarray(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"])
    assert probs.shape == (len(images), len(cv.classes))
    np.testing.assert_allclose(probs.argmax(1), [cv.classes.index(p["label"]) for p in preds])
    json.dumps(out)  # JSON-ready


def _cv_bad(tmp: Path) -> list[tuple[Any, str]]:
    from PIL import Image

    (tmp / "not-an-image.png").write_bytes(b"hello")
    big = _b64(Image.new("L", (4097, 8)))
    return [("%%% not base64 %%%", "instances[0].image_b64"),
            ({"image_b64": base64.b64encode(b"not an image").decode()}, "instances[0].image_b64"),
            ({"image": "x"}, "instances[0]"), (42, "instances[0]"),
            ({"image_b64": 7}, "instances[0].image_b64"),
            ({"image_url": str(tmp / "missing.png")}, "instances[0].image_url"),
            ({"image_url": str(tmp / "not-an-image.png")}, "instances[0].image_url"),
            ({"image_b64": big}, "instances[0].image_b64")]


def test_cv_bad_inputs_name_their_field(cv: Any, tmp_path: Path) -> None:
    good = cv.example_instances()[0]
    for bad, field in _cv_bad(tmp_path):
        for call in (cv.check, cv.predict):
            with pytest.raises(RequestError) as info:
                call([good, bad])
            assert info.value.field == field.replace("[0]", "[1]"), (bad, info.value)
    with pytest.raises(RequestError) as info:
        cv.v2_inputs_to_instances([{"name": "image_b64", "shape": [2], "datatype": "BYTES", "data": ["a"]}])
    assert info.value.field == "inputs[0].shape"
    with pytest.raises(RequestError) as info:
        cv.v2_inputs_to_instances([{"name": "images", "shape": [1], "datatype": "FP32", "data": [1.0]}])
    assert info.value.field == "inputs[0].name"


# ----------------------------------------------------------------------------- text


def test_nlp_adapter_equals_predict_mode(runs: dict[str, Any], nlp: Any) -> None:
    assert nlp.predictor.meta["domain"] == "nlp" and nlp.name_hint == "chnsenti_textcnn"
    pred = _job([*TRAIN["nlp"], "trainer.mode=predict", f"trainer.predict.checkpoint={runs['nlp']}",
                 "trainer.predict.passthrough=[text]", "data.limit_eval_rows=12"], runs["tmp"] / "nlp-predict")
    table = pq.read_table(pred / "predictions.parquet")
    texts = table["text"].to_pylist()
    instances = [{"text": t} if k % 2 else t for k, t in enumerate(texts)]
    got = nlp.predict(instances)
    with serving(str(runs["nlp"]), runs["tmp"]) as client:  # the same through a real server over HTTP
        status, body = client.call("POST", "/v1/models/chnsenti_textcnn:predict", {"instances": instances})
    assert status == 200, body
    assert body["predictions"] == json.loads(json.dumps(got))
    assert [g["label"] for g in got] == table["label_pred"].to_pylist()
    np.testing.assert_allclose([g["prob"] for g in got], table["label_prob"].to_pylist(), atol=1e-4)
    np.testing.assert_allclose([[g["probs"][c] for c in nlp.labels] for g in got],
                               table["label_probs"].to_pylist(), atol=1e-4)


def test_nlp_coalesced_batch_equals_one_by_one_and_v2_round_trip(nlp: Any) -> None:
    texts = ["好", "这家酒店的服务非常好，房间也很干净。" * 3, "太差了", "不推荐 " * 40]  # last: cut to max_len
    batch = nlp.predict(texts + nlp.example_instances())
    for inst, row in zip(texts + nlp.example_instances(), batch):
        alone = nlp.predict([inst])[0]
        assert alone["label"] == row["label"]
        np.testing.assert_allclose(alone["prob"], row["prob"], atol=1e-5)
    inputs = [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]
    instances = nlp.v2_inputs_to_instances(inputs)
    assert instances == [{"text": t} for t in texts]
    out = {t["name"]: t for t in nlp.v2_outputs(nlp.predict(instances))}
    assert out["label"]["data"] == [b["label"] for b in batch[:len(texts)]]
    assert out["probs"]["shape"] == [len(texts), len(nlp.labels)]
    np.testing.assert_allclose(out["prob"]["data"], [b["prob"] for b in batch[:len(texts)]], atol=1e-6)
    json.dumps(out)


@pytest.mark.parametrize("bad, field", [
    (None, "instances[1]"), (["a"], "instances[1]"), ({"txt": "a"}, "instances[1].text"),
    ({"text": 3}, "instances[1].text"), ({"text": "   "}, "instances[1].text"), ("", "instances[1].text"),
    ({"text": "x" * 20_001}, "instances[1].text")])
def test_nlp_bad_inputs_name_their_field(nlp: Any, bad: Any, field: str) -> None:
    for call in (nlp.check, nlp.predict):
        with pytest.raises(RequestError) as info:
            call(["fine", bad])
        assert info.value.field == field


def test_nlp_pair_and_token_models_check_their_fields(nlp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks of matching and NER models (the instance parsing only; the network is
    chnsenti's, so no predictions here)."""
    monkeypatch.setattr(nlp, "pair_task", True)
    assert nlp.parse(0, {"text": "a", "text_pair": "b"}) == ("a", "b")
    for bad, field in [({"text": "a"}, "instances[0].text_pair"), ({"text": "a", "text_pair": ""},
                                                                   "instances[0].text_pair")]:
        with pytest.raises(RequestError) as info:
            nlp.check([bad])
        assert info.value.field == field
    monkeypatch.setattr(nlp, "pair_task", False)
    monkeypatch.setattr(nlp, "token_task", True)
    assert nlp.parse(0, {"tokens": ["Alice", "flies"]}) == (["Alice", "flies"], None)
    assert nlp.parse(0, "Alice flies") == (["Alice", "flies"], None)
    for bad, field in [({"tokens": "Alice flies"}, "instances[0].tokens"), ({"tokens": []}, "instances[0].tokens"),
                       ({"tokens": ["a", 3]}, "instances[0].tokens[1]"), ({}, "instances[0].text")]:
        with pytest.raises(RequestError) as info:
            nlp.check([bad])
        assert info.value.field == field
    rows = nlp.v2_inputs_to_instances([{"name": "tokens", "shape": [2, 3], "datatype": "BYTES",
                                        "data": ["a", "b", "", "c", "d", "e"]}])
    assert rows == [{"tokens": ["a", "b"]}, {"tokens": ["c", "d", "e"]}]
    out = nlp.v2_outputs([{"tags": ["O", "B-PER"]}, {"tags": ["O"]}])
    assert out == [{"name": "tags", "shape": [2, 2], "datatype": "BYTES", "data": ["O", "B-PER", "O", ""]}]


# ----------------------------------------------------------------------------- detection


def test_detection_boxes_equal_predict_mode_in_original_pixels(tmp_path: Path) -> None:
    """mnist_detection shrunk as tests/easycv/test_e2e.py DETECTION (score_thresh 0: boxes even
    from a barely trained model); images served at other sizes map back to their own pixels."""
    from PIL import Image

    from dataio.datasets import ensure_dataset
    from easycv.serving_adapter import Adapter
    from tests.easycv.test_e2e import DETECTION

    ensure_dataset("mnist-detection", os.environ.get("LINGJIE_DATA_DIR"))
    overrides = [*DETECTION, "data.limit_train_rows=16", "model.score_thresh=0.0", "model.max_detections=20"]
    run = _job(overrides, tmp_path / "train")
    pred = _job([*overrides, "trainer.mode=predict", f"trainer.predict.checkpoint={run}",
                 "data.limit_eval_rows=3"], tmp_path / "pred")
    want = json.loads((pred / "predictions.json").read_text())["predictions"]
    det = Adapter(run / "export")
    assert det.meta["postprocess"]["score_thresh"] == 0.0 and det.max_detections == 20
    got = det.predict([{"image_url": r["file"]} for r in want])
    for g, w in zip(got, want):
        assert len(g["boxes"]) == len(g["scores"]) == len(g["labels"]) == len(w["boxes"]) > 0
        np.testing.assert_allclose(g["scores"][:5], w["scores"][:5], atol=1e-3)
        np.testing.assert_allclose(g["boxes"][:5], w["boxes"][:5], atol=0.05)
        assert g["labels"][:5] == w["labels"][:5]
    with Image.open(want[0]["file"]) as im:  # the same canvas letterboxed from a 300x90 original
        wide = im.convert("RGB").resize((300, 90))
    for width, row in zip((300, 40), det.predict([_b64(wide), _b64(wide.crop((0, 0, 40, 90)))])):
        assert row["boxes"] and all(0 <= b[0] <= b[2] <= width and 0 <= b[1] <= b[3] <= 90 for b in row["boxes"])
    out = {t["name"]: t for t in det.v2_outputs(got)}
    k = max(len(g["scores"]) for g in got)
    assert out["boxes"]["shape"] == [3, k, 4] and out["num_detections"]["data"] == [len(g["scores"]) for g in got]
