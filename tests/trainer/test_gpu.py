"""CUDA paths, run on a GPU machine (skipped where torch sees no CUDA device, e.g. in CI):
AMP fp16 with a grad scaler, bf16 autocast, fp32; a GPU-trained checkpoint evaluates on the
CPU to the same metrics; torch DDP over nccl (torchrun, one process per GPU)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

BASE = ["+experiment=movielens_deepfm", "data.limit_train_rows=40000", "data.limit_eval_rows=10000",
        "trainer.epochs=2", "trainer.progress_bar=false"]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_training_in_each_precision_evaluates_the_same_on_cpu(tmp_path: Path, data_dir: Path,
                                                                   precision: str) -> None:
    run = tmp_path / precision
    run_cli([*BASE, "hardware=gpu", f"hardware.precision={precision}", f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["steps"] == 80
    final = metrics["final"]
    assert final["eval/auc"] > 0.64, final
    print(f"{precision}: eval/auc {final['eval/auc']:.4f}, {metrics['train_samples_per_sec']:.0f} samples/s")
    cpu = tmp_path / f"{precision}-on-cpu"
    run_cli(["+experiment=movielens_deepfm", "trainer.mode=evaluate", "hardware=cpu", "trainer.progress_bar=false",
             "data.limit_eval_rows=10000", f"trainer.evaluate.checkpoint={run}", f"hydra.run.dir={cpu}"], cwd=tmp_path)
    got = json.loads((cpu / "metrics.json").read_text())["final"]
    # the GPU evaluated under autocast (bf16/fp16 matmuls); the CPU in fp32
    tol = 5e-4 if precision == "fp32" else 5e-3
    assert got["eval/auc"] == pytest.approx(final["eval/auc"], abs=tol)


def test_fp16_engine_uses_a_grad_scaler_and_steps(data_dir: Path) -> None:
    import pyarrow.parquet as pq

    from easyrec.features.pipeline import FeaturePipeline
    from tests.conftest import compose
    from easyrec.data import used_features
    from easyrec.restore import make_engine
    from trainer.schema.validate import validate

    spec = validate(compose(["+experiment=movielens_deepfm", "hardware=gpu", "hardware.precision=fp16"]))
    table = pq.read_table(data_dir / "movielens-100k" / "train.parquet").slice(0, 4096)
    pipeline = FeaturePipeline(used_features(spec), spec.labels)
    pipeline.fit(iter([table]))
    engine = make_engine("torch", spec.model, pipeline, spec.root.trainer, "cuda:0", 100, None, "fp16")
    assert engine.scaler is not None and engine.autocast_dtype == torch.float16
    batch = pipeline.transform(table.slice(0, 1024), with_labels=True)
    losses = [engine.train_step(batch)[0] for _ in range(20)]
    assert all(l == l for l in losses) and losses[-1] < losses[0]  # finite, and it learns
    assert engine.scaler.get_scale() > 0


def test_ddp_over_nccl_trains_and_gathers(tmp_path: Path, data_dir: Path) -> None:
    n = torch.cuda.device_count()
    run = tmp_path / "ddp"
    run_cli([*BASE, "hardware=ddp_gpu", f"hardware.nproc_per_node={n}", f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["world_size"] == n
    assert metrics["final"]["eval/rows"] == 10000  # gathered over nccl from every rank
    assert metrics["final"]["eval/auc"] > 0.64
    assert (run / "DONE").exists() and (run / "export" / "meta.json").exists()
