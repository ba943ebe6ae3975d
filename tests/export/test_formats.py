"""Export formats end to end, one tiny training run per domain shared by the formats.

Each domain (rec: movielens_deepfm, cv: digits_resnet, nlp: chnsenti_textcnn) trains once
through the real CLI with the default format, which must be torch_export (``model.pt2``) and
warning-free; ``trainer.mode=export trainer.export.format=onnx`` then exports the same
checkpoint to ``model.onnx``. A fresh interpreter loads both exports with the domain's own
loaders (``easyrec.serving.ExportedModel``, ``easynlp.export.TextPredictor``,
``trainer.torch_backend.programs.load_program``: onnxruntime for ONNX) and its outputs must
equal the checkpoint's on the same inputs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lingjie.errors import ConfigError
from tests.conftest import ROOT, compose, run_cli

QUIET = ["hardware.threads=1", "trainer.progress_bar=false", "logger.tensorboard=false", "trainer.epochs=1"]
TRAIN = {
    "rec": ["+experiment=movielens_deepfm", "data.limit_train_rows=2000", "data.limit_eval_rows=300",
            "data.batch_size=256"],
    "cv": ["+experiment=digits_resnet", "model.stem_channels=8", "model.widths=[8,16]", "model.depths=[1,1]",
           "data.limit_train_rows=64", "data.limit_eval_rows=32", "data.batch_size=32"],
    "nlp": ["+experiment=chnsenti_textcnn", "data.limit_train_rows=200", "data.limit_eval_rows=40",
            "model.num_filters=16", "data.max_len=64"],
}
FRESH = """
import json, sys
from pathlib import Path
import numpy as np, torch
jobs, out = json.loads(Path(sys.argv[1]).read_text()), {}
for name, job in jobs.items():
    if job["kind"] == "rec":
        import pyarrow.parquet as pq
        from easyrec.serving import ExportedModel
        rows = pq.read_table(job["data"]).slice(0, job["rows"]).to_pylist()
        out[name] = ExportedModel(job["dir"]).predict(rows)["like"]
    elif job["kind"] == "nlp":
        from easynlp.export import TextPredictor
        out[name] = np.stack(TextPredictor(job["dir"]).probabilities(job["texts"]))
    else:
        from trainer.torch_backend.programs import load_program
        program, meta = load_program(Path(job["dir"]))
        out[name] = program(torch.from_numpy(np.load(job["images"])))["label"].numpy()
    out[name + ".loaded_onnxruntime"] = np.asarray("onnxruntime" in sys.modules)
np.savez(sys.argv[2], **out)
"""


def _job(overrides: list[str], run: Path) -> Path:
    """One job in this process (the CLI minus Hydra's process start)."""
    from trainer.job import run_job

    cfg = compose([*overrides, *QUIET, f"paths.run_dir={run}", f"paths.output_root={run.parent / 'out'}"])
    return Path(run_job(cfg, json.dumps(cfg)))


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """Per domain: the training run (default export) and an onnx export of its checkpoint."""
    from dataio.datasets import ensure_dataset

    for name in ("digits", "chnsenti"):
        ensure_dataset(name, os.environ.get("LINGJIE_DATA_DIR"))
    tmp = tmp_path_factory.mktemp("exports")
    threads = torch.get_num_threads()
    out: dict[str, Any] = {"tmp": tmp, "data": data_dir}

    def train(domain: str) -> subprocess.CompletedProcess:
        return run_cli([*TRAIN[domain], *QUIET, f"hydra.run.dir={tmp / f'{domain}-train'}"], cwd=tmp,
                       env={"PYTHONWARNINGS": "default"})

    # the single-threaded CLI trainings run two at a time (2-core machine); each domain's onnx
    # export (in this process) starts as soon as its training is done
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            procs = {domain: pool.submit(train, domain) for domain in TRAIN}
            for domain, overrides in TRAIN.items():
                proc = procs[domain].result()
                train_dir = tmp / f"{domain}-train"
                onnx = _job([*overrides, "trainer.mode=export", "trainer.export.format=onnx",
                             f"trainer.export.checkpoint={train_dir}"], tmp / f"{domain}-onnx")
                out[domain] = {"train": train_dir, "stderr": proc.stderr, "onnx": onnx}
    finally:
        torch.set_num_threads(threads)
    return out


def _fresh(exports: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """Run the loaders in a new interpreter (nothing of this process leaks into it)."""
    tmp = exports["tmp"]
    spec, npz = tmp / f"jobs-{len(list(tmp.glob('jobs-*')))}.json", tmp / f"out-{len(list(tmp.glob('out-*')))}.npz"
    spec.write_text(json.dumps(jobs))
    subprocess.run([sys.executable, "-c", FRESH, str(spec), str(npz)], check=True, cwd=tmp, timeout=300,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    with np.load(npz) as z:
        return {k: z[k] for k in z.files}


def _formats(exports: dict[str, Any], domain: str) -> dict[str, Path]:
    """The two export dirs of ``domain``, after checking each holds its format's program."""
    dirs = {"torch_export": exports[domain]["train"] / "export", "onnx": exports[domain]["onnx"] / "export"}
    for fmt, d in dirs.items():
        meta = json.loads((d / "meta.json").read_text())
        assert meta["format"] == fmt and (d / meta["program"]).is_file(), (fmt, meta)
    assert (dirs["torch_export"] / "model.pt2").is_file()
    assert not (dirs["torch_export"] / "model.torchscript.pt").exists()
    assert (dirs["onnx"] / "model.onnx").is_file()
    return dirs


@pytest.mark.slow
@pytest.mark.parametrize("domain", list(TRAIN))
def test_default_export_is_torch_export_without_warnings(exports: dict[str, Any], domain: str) -> None:
    _formats(exports, domain)
    stderr = exports[domain]["stderr"]
    for noise in ("Warning", "torch.jit", "deprecated"):
        assert noise not in stderr, stderr[-3000:]


@pytest.mark.slow
def test_rec_exports_match_the_checkpoint_in_a_fresh_process(exports: dict[str, Any]) -> None:
    from easyrec.restore import restore
    from trainer.run_dir import RunDir

    test_file, n = exports["data"] / "movielens-100k" / "test.parquet", 300
    restored = restore(RunDir(exports["rec"]["train"]).latest_checkpoint())
    want = restored.engine.predict(restored.state.transform(pq.read_table(test_file).slice(0, n),
                                                            with_labels=False))["like"]
    dirs = _formats(exports, "rec")
    got = _fresh(exports, {f: {"kind": "rec", "dir": str(d), "data": str(test_file), "rows": n}
                           for f, d in dirs.items()})
    for fmt in dirs:
        assert got[fmt].shape == (n,)
        np.testing.assert_allclose(got[fmt], want, atol=1e-4, err_msg=fmt)
    assert got["onnx.loaded_onnxruntime"]


@pytest.mark.slow
def test_cv_exports_match_the_checkpoint_in_a_fresh_process(exports: dict[str, Any]) -> None:
    from trainer.domains import domain_module
    from trainer.schema.validate import validate

    run = exports["cv"]["train"]
    spec = validate(compose([*TRAIN["cv"], *QUIET]))
    restored = domain_module("cv").recipe(spec).restore(run / "checkpoints" / "best.pt")
    dirs = _formats(exports, "cv")
    meta = json.loads((dirs["onnx"] / "meta.json").read_text())
    _, channels, h, w = meta["input"]["shape"]
    images = torch.rand(5, channels, h, w, generator=torch.Generator().manual_seed(3))  # not the traced batch (2)
    norm = meta["input"]["normalize"]
    mean, std = (torch.tensor(norm[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    model = restored.engine.eval_model.cpu().eval()
    with torch.no_grad():
        want = model.serve((images - mean) / std)["label"].numpy()
    np.save(exports["tmp"] / "images.npy", images.numpy())
    got = _fresh(exports, {f: {"kind": "cv", "dir": str(d), "images": str(exports["tmp"] / "images.npy")}
                           for f, d in dirs.items()})
    for fmt in dirs:
        np.testing.assert_allclose(got[fmt], want, atol=1e-4, err_msg=fmt)
    assert got["onnx.loaded_onnxruntime"]


@pytest.mark.slow
def test_nlp_exports_match_the_checkpoint_in_a_fresh_process(exports: dict[str, Any]) -> None:
    run = exports["nlp"]["train"]
    pred = _job([*TRAIN["nlp"], "trainer.mode=predict", f"trainer.predict.checkpoint={run}",
                 "trainer.predict.passthrough=[text]"], exports["tmp"] / "nlp-predict")
    table = pq.read_table(pred / "predictions.parquet")  # the checkpoint's probabilities on raw text
    texts = [t.replace("\n", " ") for t in table["text"].to_pylist()]
    want = np.asarray(table["label_probs"].to_pylist())
    dirs = _formats(exports, "nlp")
    got = _fresh(exports, {f: {"kind": "nlp", "dir": str(d), "texts": texts} for f, d in dirs.items()})
    for fmt in dirs:
        assert got[fmt].shape == want.shape == (40, 2)
        np.testing.assert_allclose(got[fmt], want, atol=1e-4, err_msg=fmt)
    assert got["onnx.loaded_onnxruntime"]


def test_onnx_with_the_tf_backend_is_a_config_error() -> None:
    from trainer.schema.validate import validate

    with pytest.raises(ConfigError) as info:
        validate(compose(["+experiment=movielens_deepfm", "trainer.backend=tf", "trainer.export.format=onnx"]))
    assert info.value.path == "trainer.export.format" and "trainer.backend=torch" in str(info.value)
    validate(compose(["+experiment=movielens_deepfm", "trainer.backend=tf"]))  # the default format: no error


@pytest.mark.parametrize("blocked", ["onnx", "onnxscript", "onnxruntime"])
def test_a_missing_onnx_package_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch, blocked: str) -> None:
    from trainer.domains import require_frameworks

    monkeypatch.setitem(sys.modules, blocked, None)  # what `import` sees without the package
    require_frameworks("rec", "torch", None)  # a job that does not export onnx needs none of it
    require_frameworks("rec", "torch", "torch_export")
    with pytest.raises(ConfigError) as info:
        require_frameworks("rec", "torch", "onnx")
    assert str(info.value) == (f"config error at 'trainer.export.format': trainer.export.format=onnx needs the "
                               f"'onnx' extra ({blocked} is not installed): pip install 'lingjie[onnx]'")


def test_loading_an_onnx_export_without_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    from trainer.torch_backend.programs import load_program

    (tmp_path / "meta.json").write_text(json.dumps({"format": "onnx", "program": "model.onnx", "onnx_inputs": ["x"]}))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"loading an ONNX export \(model.onnx\) needs the 'onnx' extra "
                                          r"\(onnxruntime is not installed\): pip install 'lingjie\[onnx\]'"):
        load_program(tmp_path)


def test_a_job_missing_the_extra_stops_before_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ConfigError, match="trainer.export.format=onnx needs the 'onnx' extra"):
        _job([*TRAIN["rec"], "trainer.export.format=onnx"], tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
