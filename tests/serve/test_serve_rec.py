"""``lingjie serve`` end to end on one tiny movielens_deepfm run: a real server subprocess,
real HTTP on 127.0.0.1.

Checks what a client relies on: v1 predictions equal ``trainer.mode=predict`` on the same
rows, v2 equals v1, concurrent requests are coalesced into fewer forward passes yet each gets
its own answer, /metrics counts it all, and every kind of bad request gets a 4xx JSON body
naming the field while the server stays up.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT
from tests.serve.conftest import NAME, TRAIN, Client, serving

COLUMNS = ["user_id", "item_id", "gender", "age", "occupation", "zip_code", "genres", "release_year"]
MAX_BODY = 200_000


@pytest.fixture(scope="module")
def run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[dict[str, Any]]:
    """The training run and 24 test rows; ``trainer.mode=predict`` scores those rows in a
    subprocess meanwhile (``expected()`` waits for it), overlapping the server's start."""
    tmp = tmp_path_factory.mktemp("serve")
    train = tiny_run
    table = pq.read_table(data_dir / "movielens-100k" / "test.parquet")
    table = table.take(list(range(0, 50 * 24, 50)))
    pq.write_table(table, tmp / "rows.parquet")
    predict = subprocess.Popen(
        [sys.executable, "-m", "trainer", *TRAIN, "trainer.mode=predict", f"trainer.predict.checkpoint={train}",
         f"trainer.predict.input_path={tmp / 'rows.parquet'}", f"trainer.predict.output_path={tmp / 'pred.parquet'}",
         f"hydra.run.dir={tmp / 'predict'}"], cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    scores: list[np.ndarray] = []

    def expected() -> np.ndarray:
        if not scores:
            out, _ = predict.communicate(timeout=300)
            assert predict.returncode == 0, out[-4000:]
            scores.append(pq.read_table(tmp / "pred.parquet").column("like").to_numpy())
        return scores[0]

    try:
        yield {"dir": train, "rows": table.to_pylist(), "expected": expected, "tmp": tmp}
    finally:
        if predict.poll() is None:
            predict.kill()
            predict.communicate()


@pytest.fixture(scope="module")
def server(run: dict[str, Any]) -> Iterator[Client]:
    """``python -m trainer.serve RUN_DIR`` in a subprocess, ready; terminated afterwards."""
    with serving(str(run["dir"]), run["tmp"], "--max-latency-ms", "50", "--max-body-bytes", str(MAX_BODY)) as client:
        yield client


def test_v1_predict_equals_predict_mode(run: dict[str, Any], server: Client) -> None:
    status, body = server.call("POST", f"/v1/models/{NAME}:predict", {"instances": run["rows"]})
    assert status == 200, body
    got = np.array([p["like"] for p in body["predictions"]])
    np.testing.assert_allclose(got, run["expected"](), rtol=1e-5, atol=1e-6)


def _v2_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = {str: "BYTES", int: "INT64", float: "FP64"}
    return [{"name": c, "shape": [len(rows)], "datatype": kinds[type(rows[0][c])], "data": [r[c] for r in rows]}
            for c in COLUMNS]


def test_v2_infer_equals_v1(run: dict[str, Any], server: Client) -> None:
    status, body = server.call("POST", f"/v2/models/{NAME}/infer", {"id": "r1", "inputs": _v2_inputs(run["rows"])})
    assert status == 200, body
    assert body["model_name"] == NAME and body["id"] == "r1"
    [out] = body["outputs"]
    assert out["name"] == "like" and out["shape"] == [len(run["rows"])] and out["datatype"] == "FP32"
    np.testing.assert_allclose(out["data"], run["expected"](), rtol=1e-5, atol=1e-6)


def test_model_listing_health_and_metadata(server: Client) -> None:
    assert server.call("GET", "/v1/models") == (200, {"models": [NAME]})
    status, body = server.call("GET", f"/v1/models/{NAME}")
    assert status == 200 and body["ready"] is True
    assert server.call("GET", "/v2/health/live") == (200, {"live": True})
    assert server.call("GET", f"/v2/models/{NAME}/ready")[1]["ready"] is True
    status, meta = server.call("GET", f"/v2/models/{NAME}")
    assert status == 200 and [i["name"] for i in meta["inputs"]] == COLUMNS
    assert [o["name"] for o in meta["outputs"]] == ["like"]


def test_concurrent_requests_are_coalesced(run: dict[str, Any], server: Client) -> None:
    """32 threads, one row each, released together: fewer forward passes than requests, and
    each answer is its own row's score."""
    before_passes = server.metric("lingjie_serve_batch_size_count")
    before_rows = server.metric("lingjie_serve_batch_size_sum")
    n = 32
    rows = [run["rows"][i % len(run["rows"])] for i in range(n)]
    answers: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        answers[i] = server.call("POST", f"/v1/models/{NAME}:predict", {"instances": [rows[i]]})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, (status, body) in enumerate(answers):
        assert status == 200, body
        assert body["predictions"][0]["like"] == pytest.approx(run["expected"]()[i % len(run["rows"])], abs=1e-6)
    passes = server.metric("lingjie_serve_batch_size_count") - before_passes
    assert server.metric("lingjie_serve_batch_size_sum") - before_rows == n
    assert passes < n, f"{passes} forward passes for {n} concurrent requests: nothing was coalesced"


def test_metrics_count_requests_errors_and_version(server: Client) -> None:
    server.call("GET", "/v1/models/nope")
    _, text = server.call("GET", "/metrics")
    assert re.search(r'lingjie_serve_requests_total\{endpoint="/v1/models/\{name\}:predict",status="200"\} [1-9]', text)
    assert re.search(r'lingjie_serve_errors_total\{status="404"\} [1-9]', text)
    assert 'lingjie_serve_batch_size_bucket{le="1.0"}' in text
    assert "lingjie_serve_request_latency_seconds_bucket" in text
    assert re.search(rf'lingjie_serve_model_version_info\{{model="{NAME}",version="1"\}} 1\.0', text)


ROW = {"user_id": 3, "item_id": 323, "gender": "M", "age": 23, "occupation": "writer", "zip_code": "32067",
       "genres": "Action|Thriller", "release_year": 1997}
PREDICT, INFER = f"/v1/models/{NAME}:predict", f"/v2/models/{NAME}/infer"


def _v2(*changes: tuple[int, str, Any], extra: list[dict] | None = None) -> dict[str, Any]:
    inputs = _v2_inputs([ROW, ROW])
    for j, key, value in changes:
        inputs[j][key] = value
    return {"inputs": inputs + (extra or [])}


BAD = [  # (id, method, path, body, status, field, substring of the error)
    ("malformed-json", "POST", PREDICT, '{"instances": [', 400, "body", "malformed JSON"),
    ("not-utf8", "POST", PREDICT, b"\xff\xfe{", 400, "body", "malformed JSON"),
    ("empty-body", "POST", PREDICT, b"", 400, "body", "empty body"),
    ("body-not-object", "POST", PREDICT, [ROW], 400, "body", "JSON object"),
    ("missing-instances", "POST", PREDICT, {"rows": [ROW]}, 400, "instances", "missing"),
    ("instances-not-list", "POST", PREDICT, {"instances": ROW}, 400, "instances", "must be a list"),
    ("empty-instances", "POST", PREDICT, {"instances": []}, 400, "instances", "empty"),
    ("too-many-instances", "POST", PREDICT, {"instances": [{}] * 1025}, 400, "instances", "1025 instances exceed"),
    ("instance-not-object", "POST", PREDICT, {"instances": [ROW, 7]}, 400, "instances[1]", "must be an object"),
    ("missing-column", "POST", PREDICT, {"instances": [ROW, {k: v for k, v in ROW.items() if k != "item_id"}]},
     400, "instances[1].item_id", "missing column 'item_id'"),
    ("null-is-a-value-not-missing", "POST", PREDICT, {"instances": [{**ROW, "item_id": None, "age": "x"}]},
     400, "instances[0].age", "expected a number"),
    ("string-for-number", "POST", PREDICT, {"instances": [{**ROW, "age": "old"}]}, 400, "instances[0].age",
     "expected a number, got a string"),
    ("bool-for-number", "POST", PREDICT, {"instances": [{**ROW, "release_year": True}]}, 400,
     "instances[0].release_year", "got a boolean"),
    ("list-for-id", "POST", PREDICT, {"instances": [{**ROW, "gender": ["M"]}]}, 400, "instances[0].gender",
     "got a list"),
    ("object-for-tag", "POST", PREDICT, {"instances": [{**ROW, "genres": {"a": 1}}]}, 400, "instances[0].genres",
     "got an object"),
    ("unknown-model-v1", "POST", f"/v1/models/nope:predict", {"instances": [ROW]}, 404, "model", "unknown model"),
    ("unknown-model-get", "GET", "/v1/models/nope", None, 404, "model", "unknown model"),
    ("get-on-predict", "GET", PREDICT, None, 405, "method", "not allowed"),
    ("delete-models", "DELETE", "/v1/models", None, 405, "method", "not allowed"),
    ("unknown-path", "GET", "/v3/everything", None, 404, "path", "no such endpoint"),
    ("too-large", "POST", PREDICT, {"instances": [ROW] * 2000}, 413, "body", "exceeds the limit"),
    ("v2-malformed-json", "POST", INFER, "{", 400, "body", "malformed JSON"),
    ("v2-no-inputs", "POST", INFER, {"instances": [ROW]}, 400, "inputs", "non-empty list"),
    ("v2-input-not-object", "POST", INFER, {"inputs": [3]}, 400, "inputs[0]", "must be an object"),
    ("v2-input-missing-data", "POST", INFER, {"inputs": [{"name": "age", "shape": [1], "datatype": "FP32"}]}, 400,
     "inputs[0].data", "missing"),
    ("v2-unknown-input", "POST", INFER, _v2(extra=[{"name": "colour", "shape": [2], "datatype": "BYTES",
                                                    "data": ["a", "b"]}]), 400, "inputs[8].name", "unknown input"),
    ("v2-unknown-datatype", "POST", INFER, _v2((3, "datatype", "FLOAT128")), 400, "inputs[3].datatype",
     "unknown datatype"),
    ("v2-shape-vs-data", "POST", INFER, _v2((0, "shape", [3])), 400, "inputs[0].data", "has 2 values"),
    ("v2-bad-shape", "POST", INFER, _v2((0, "shape", [1, 2])), 400, "inputs[0].shape", "[N] or [N, 1]"),
    ("v2-rows-mismatch", "POST", INFER, _v2((1, "shape", [1]), (1, "data", [323])), 400, "inputs[1].shape",
     "1 rows, earlier inputs 2"),
    ("v2-wrong-value-type", "POST", INFER, _v2((2, "data", ["M", 5])), 400, "inputs[2].data[1]",
     "not a BYTES value"),
    ("v2-missing-input", "POST", INFER, {"inputs": _v2_inputs([ROW])[:3]}, 400, "inputs", "missing input(s) age"),
    ("v2-unknown-output", "POST", INFER, {**_v2(), "outputs": [{"name": "ctr"}]}, 400, "outputs[0].name",
     "unknown output"),
    ("v2-unknown-model", "POST", "/v2/models/nope/infer", _v2(), 404, "model", "unknown model"),
    ("v2-unknown-version", "GET", f"/v2/models/{NAME}/versions/7/ready", None, 404, "version", "unknown version"),
]


@pytest.mark.parametrize("method,path,body,status,field,text", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_request_names_the_field(server: Client, method: str, path: str, body: Any, status: int, field: str,
                                     text: str) -> None:
    got, reply = server.call(method, path, body)
    assert (got, reply["field"]) == (status, field), reply
    assert text in reply["error"], reply
    assert server.call("GET", "/v2/health/live") == (200, {"live": True})


def test_streamed_body_over_the_limit_is_413(server: Client) -> None:
    """A chunked body (no Content-Length) is counted while it streams."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        chunks = (b'{"instances": [' + b"1," * (MAX_BODY // 2) + b"1]}",)
        conn.request("POST", PREDICT, body=iter(chunks), encode_chunked=True,
                     headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        reply = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413 and reply["field"] == "body", reply
