"""What every training process does before the model exists, for every domain.

Device, intra-op threads, the OpenMP wait policy, seeds, bundled data and the run directory to
continue (``trainer.resume``, an elastic restart, a run mirrored to a remote store). These are
public so that a domain's recipe, stream mode and automl use the same code.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes
from lingjie.errors import ConfigError
from trainer.run_dir import RunDir, refuse_if_in_use, resolve_resume_dir
from trainer.run_info import RUN_INFO
from trainer.run_lock import LOCK_NAME, held_by_other, release_run_lock, remove_stale_temp, try_lock_run

log = logging.getLogger("lingjie")


def setup_omp(spec: Any) -> None:
    """hardware.omp_wait_policy -> OMP_WAIT_POLICY, before torch loads OpenMP (it reads it once).

    Why: with spinning (libgomp's default) idle OpenMP threads busy-wait between the many small
    parallel regions of a step; on a CPU shared with other processes that spin steals the cores
    the other thread needs, and a 2-thread step ran ~20x slower here (benchmarks/RESULTS.md).
    Worker processes (torchrun, spawned loader workers) inherit the variable.
    """
    policy = spec.root.hardware.omp_wait_policy
    if policy == "auto":
        policy = "passive" if oversubscribed(spec) else None
    if policy is None or spec.root.trainer.backend != "torch":
        return
    want = policy.upper()
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == want:
        return
    if "torch" in sys.modules:
        log.info("hardware.omp_wait_policy=%s not applied: torch was imported before the job started "
                 "(set OMP_WAIT_POLICY=%s in the environment instead)", policy, want)
        return
    os.environ["OMP_WAIT_POLICY"] = want


def oversubscribed(spec: Any) -> bool:
    """Whether this job's own CPU processes x threads exceed the machine's cores (e.g. CPU DDP).

    Measured on 2 idle cores (benchmarks/RESULTS.md): spinning is ~45% faster for one process
    that owns the CPU, and ~20x slower when more threads than cores compete."""
    hw = spec.root.hardware
    if hw.device == "cuda":
        return False
    procs = hw.nproc_per_node if hw.launcher == "torchrun" else 1
    cores = os.cpu_count() or 1
    return procs * (hw.threads or cores) > cores


def setup_threads(spec: Any) -> None:
    """hardware.threads: the framework's intra-op thread count (null: the library default)."""
    threads = spec.root.hardware.threads
    if threads and spec.root.trainer.backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)


def device(spec: Any, dist: Any = None) -> str:
    """The torch device string of this process ("cpu", "cuda:<local rank>"); TF places by itself."""
    hw = spec.root.hardware
    if spec.root.trainer.backend == "tf":
        return "cpu"
    import torch

    if hw.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("hardware.device", "cuda requested but no CUDA device is available; use hardware=cpu")
    if hw.device == "cuda" or (hw.device == "auto" and torch.cuda.is_available()):
        local = dist.local_rank if dist is not None else 0
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def seed_everything(seed: int, backend: str) -> None:
    """Python, numpy and the backend's generators from one seed."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)


def ensure_data(spec: Any) -> None:
    """Prepare the bundled dataset ``data.dataset`` names (a no-op once cached)."""
    if getattr(spec.root.data, "dataset", None):
        from dataio.datasets import ensure_dataset

        ensure_dataset(spec.root.data.dataset, spec.root.paths.data_dir,
                       show_progress=spec.root.trainer.progress_bar)


def write_config(run: RunDir, config_yaml: str) -> None:
    """Create the run directory and write the resolved config into it (rank 0)."""
    run.create()
    atomic_write_bytes(run.config, config_yaml.encode())


def start_training_process(spec: Any, run: RunDir, config_yaml: str, resumed: bool = False) -> tuple[Any, str]:
    """What every training process of any domain does first: rank 0 creates the run directory
    and writes the config (a new run only: a resumed run's config.yaml records what it was
    trained with and is never overwritten); then device, threads, the TF strategy, seeds and
    the torch process group. Returns (DistContext, device)."""
    from trainer.distributed import DistContext

    root = spec.root
    dist = DistContext.from_env()
    if dist.is_main and not (resumed and run.config.exists()):
        write_config(run, config_yaml)
    dev = device(spec, dist)
    setup_threads(spec)
    dist.init_tf()  # TF workers: MultiWorkerMirroredStrategy first, before any other TF op
    seed_everything(root.seed, root.trainer.backend)
    if dist.kind == "torch":
        dist.init_torch(dev.split(":")[0])
    return dist, dev


def resolve_run(spec: Any, run: RunDir) -> tuple[RunDir, bool]:
    """The run directory to use and whether it is resumed (trainer.resume / elastic restart)."""
    from dataio.remote_atomic import is_remote
    from trainer.distributed import DistContext

    root = spec.root
    resume = root.trainer.resume
    if DistContext.from_env().restart_count > 0:
        resume = str(run.root)  # torchrun restarted the group: continue this run
    if isinstance(resume, str) and resume not in ("true", "True", "false", "False") and is_remote(resume):
        resume = str(_pull_remote_run(spec, resume).root)
    resume_dir = resolve_resume_dir(resume, root.paths.output_root, root.experiment_name, run.root)
    if resume_dir is not None and resume_dir.resolve() != run.root.resolve():
        # Hydra created a fresh (empty but for its log) directory for this invocation: drop it.
        remove_fresh_dir(run.root)
        run = RunDir(resume_dir)
        log.info("resuming run %s", run.root)
    elif resume and resume_dir is None:
        log.warning("trainer.resume: no unfinished run of '%s' with a checkpoint; starting fresh", root.experiment_name)
    claim_run(run, resume_dir is not None)
    return run, resume_dir is not None


def claim_run(run: RunDir, resumed: bool) -> None:
    """The process owning the run (rank 0, or the launcher of torchrun / TF workers) locks its
    directory for its whole life, then removes what dead processes left half-written there
    and, on a resume, the FAILED marker (the user chose to continue it). Other ranks, and
    workers whose launcher holds the lock, only use the directory.

    Raises ConfigError when another live process holds the run."""
    from trainer.distributed import DistContext

    if not DistContext.from_env().is_main:
        return
    run.root.mkdir(parents=True, exist_ok=True)
    if not try_lock_run(run.root):
        refuse_if_in_use(run.root, "trainer.resume" if resumed else "hydra.run.dir")
        return  # our launcher (an ancestor) holds it and has cleaned up
    remove_stale_temp(run.root)
    if resumed and run.is_failed():
        log.info("resuming a run that had failed (%s); removing its FAILED marker",
                 run.failed_marker.read_text(errors="replace").strip())
        run.failed_marker.unlink(missing_ok=True)


def _pull_remote_run(spec: Any, url: str) -> RunDir:
    """A run mirrored to oss:// / hdfs:// (paths.remote_dir), pulled into the local output root."""
    from dataio.credentials import redact_url
    from lingjie.errors import DataError
    from trainer.remote_mirror import pull_run

    root = spec.root
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if not name or name.startswith(".") or "\\" in name:  # "..": the run would land outside the output root
        raise DataError("trainer.resume: the URL must end in the run's directory name", file=redact_url(url))
    local = RunDir(Path(root.paths.output_root) / root.experiment_name / name)
    if local.latest_checkpoint() is None:  # a complete local copy (pulls are renamed into place)
        pull_run(url, local, root.data.storage_options or None)
    return local


def remove_fresh_dir(path: Path) -> None:
    """Remove a just-created run dir holding nothing but Hydra's log file, its run_info.json
    (and this process's lock, released first): a command that failed or moved on to another
    run leaves no trace. ``__main__.log`` counts too: the log's name in runs of Lingjie <= 0.1."""
    if not path.is_dir() or held_by_other(path) is not None:
        return
    release_run_lock(path)
    if all(p.name in (hydra_log_name(), "__main__.log", RUN_INFO, LOCK_NAME) for p in path.iterdir()):
        shutil.rmtree(path, ignore_errors=True)
        parent = path.parent
        if parent.is_dir() and not any(parent.iterdir()):
            os.rmdir(parent)


def hydra_log_name() -> str:
    """The file Hydra's job logging writes in the run dir: ``<job name>.log``, and the job is
    named for the mode (``train.log``, ``evaluate.log``: configs/hydra/default.yaml). Only it
    counts as "nothing written": another .log there (e.g. an automl trial's trial.log) is kept."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return f"{HydraConfig.get().job.name}.log"
    except (ImportError, ValueError):
        return "__main__.log"
