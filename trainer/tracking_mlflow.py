"""MLflow tracking (``logger.mlflow``): one MLflow run per Lingjie run.

- store: ``logger.mlflow.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite database
  beside the runs, ``sqlite:///<paths.output_root>/mlflow.db`` (MLflow 3 refuses its old file
  store unless told otherwise; SQLite needs no server and ``mlflow ui`` opens it);
- artifacts of a new experiment: ``logger.mlflow.artifact_location``, else
  ``<paths.output_root>/mlartifacts`` (without it MLflow would write ``./mlruns`` into
  whatever the working directory is);
- params: the flattened, redacted config (the same no-secret view as config.yaml); metrics:
  every epoch's numbers at step = epoch; artifacts at the end: config.yaml, metrics.json,
  metrics.csv, run_info.json and the export directory;
- status: FINISHED after the run's export and DONE marker, FAILED when it raised (KILLED on
  Ctrl-C); a resumed run continues its MLflow run (the id is kept in ``<run_dir>/mlflow_run_id``).

The client API (``MlflowClient``) is used rather than ``mlflow.start_run``: no process-global
active run, so a sweep or a user's own MLflow code in the same process is not disturbed.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dataio.atomic import atomic_write_bytes
from dataio.credentials import redact
from lingjie.errors import ConfigError
from trainer.callbacks import Callback, TrainLoop, epoch_metrics
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie")

RUN_ID_FILE = "mlflow_run_id"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value (longer ones are refused, not cut)
MAX_KEY = 250  # MLflow's limit on a param or metric key
BATCH = 100  # MLflow's limit on params per log_batch call
ARTIFACT_FILES = ("config.yaml", "metrics.json", "metrics.csv", "run_info.json")
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")  # what MLflow allows in names (colons only off Windows)


def mlflow_key(name: str) -> str:
    """``name`` as MLflow accepts a param / metric key (``eval/recall@10`` -> ``eval/recall_10``)."""
    return _BAD_KEY_CHARS.sub("_", name)[:MAX_KEY]


def param_value(value: Any) -> str:
    """A config value as an MLflow param: YAML-like scalars, JSON lists; cut at MLflow's limit."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text if len(text) <= MAX_PARAM_VALUE else text[:MAX_PARAM_VALUE - 3] + "..."


def is_file_store(uri: str) -> bool:
    """Whether ``uri`` names MLflow's file store (``file://...`` or a plain directory; the
    scheme-less ``databricks`` profiles are not directories)."""
    return uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks"))


def store_paths(output_root: str, root_dir: str | None = None) -> tuple[str, str]:
    """The default tracking URI and artifact location under the runs root ``output_root``
    (relative to ``root_dir``, the working directory, like the run directories)."""
    base = Path(output_root)
    if not base.is_absolute():
        base = Path(root_dir or ".") / base
    base = base.resolve()
    return f"sqlite:///{base / 'mlflow.db'}", (base / "mlartifacts").as_uri()


def quiet_mlflow() -> None:
    """MLflow and the SQLite store's migrations (alembic) log INFO lines on every start: only
    their warnings reach the console."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def creation_lock(db: Path | None) -> Iterator[None]:
    """Hold ``<db>.lock`` (flock) while MLflow opens the SQLite database ``db``. Why: the first
    open creates and migrates its tables, and two processes doing it at once (parallel sweep
    trials on a fresh store) both fail ("duplicate column") and can leave it half-migrated."""
    if db is None:
        yield
        return
    import fcntl

    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class MlflowTarget:
    """Where one run is tracked."""

    tracking_uri: str
    experiment_name: str
    run_name: str
    artifact_location: str


class MlflowTracker(Callback):
    """Logs one Lingjie run to MLflow (see the module doc)."""

    def __init__(self, target: MlflowTarget, run: RunDir, params: dict[str, Any], tags: dict[str, str]) -> None:
        self.target = target
        self.run = run
        self.params = params
        self.tags = tags
        self.client: Any = None
        self.run_id: str | None = None

    @classmethod
    def from_config(cls, root: Any, run: RunDir, config: dict[str, Any]) -> MlflowTracker:
        """The tracker ``root.logger.mlflow`` asks for; ``config`` is the flat redacted config."""
        spec = root.logger.mlflow
        uri, artifacts = store_paths(root.paths.output_root, getattr(root.paths, "root_dir", None))
        target = MlflowTarget(tracking_uri=spec.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or uri,
                              experiment_name=spec.experiment_name or root.experiment_name,
                              run_name=spec.run_name or run.root.name,
                              artifact_location=spec.artifact_location or artifacts)
        tags = {"lingjie.run_dir": str(run.root.resolve()), "lingjie.domain": str(root.domain),
                "lingjie.backend": str(root.trainer.backend)}
        return cls(target, run, config, tags)

    # ----- hooks
    def on_fit_start(self, loop: TrainLoop) -> None:
        if self.client is not None:  # a second fit in the same process continues the run
            return
        self.client = self._connect()
        experiment_id = self._experiment_id()
        self.run_id = self._resumed_run_id()
        if self.run_id is None:
            created = self.client.create_run(experiment_id, run_name=self.target.run_name, tags=self.tags)
            self.run_id = created.info.run_id
            self._log_params()
            atomic_write_bytes(self.run.root / RUN_ID_FILE, self.run_id.encode())
        log.info("MLflow run %s (experiment %r) in %s", self.run_id, self.target.experiment_name,
                 redact(self.target.tracking_uri))

    def on_epoch_end(self, loop: TrainLoop, metrics: dict[str, float]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = int(metrics.get("epoch", loop.progress.epoch))
        batch = [Metric(mlflow_key(k), v, now, step) for k, v in epoch_metrics(metrics).items()]
        batch.append(Metric("global_step", float(loop.progress.global_step), now, step))
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as exc:  # a tracking hiccup (a locked database) must not end the training
            log.warning("MLflow: could not log epoch %d: %s", step, exc)

    def on_run_end(self, loop: TrainLoop) -> None:
        self._finish("FINISHED")

    def on_run_failed(self, loop: TrainLoop, error: BaseException) -> None:
        if self.run_id is None:
            return
        status = "FAILED" if isinstance(error, Exception) else "KILLED"
        line = redact(f"{type(error).__name__}: {error}".strip())[:MAX_PARAM_VALUE]
        try:
            self.client.set_tag(self.run_id, "lingjie.error", line)
        except Exception as exc:
            log.warning("MLflow: could not record the error: %s", exc)
        self._finish(status)

    # ----- parts
    def _connect(self) -> Any:
        uri = self.target.tracking_uri
        if is_file_store(uri):
            # MLflow 3 refuses its file store unless this is set; the user chose that store
            # explicitly, so allow it for this process only (its children inherit it, no one else)
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        from mlflow import MlflowClient

        quiet_mlflow()
        db = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        try:
            with creation_lock(db):
                client = MlflowClient(tracking_uri=uri)  # creates / migrates the database tables
                client.search_experiments(max_results=1)
        except Exception as exc:
            raise ConfigError("logger.mlflow.tracking_uri", f"cannot open MLflow store {redact(uri)}: {exc}") from None
        return client

    def _experiment_id(self) -> str:
        name = self.target.experiment_name
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self.target.artifact_location)
        except Exception:  # another run (a parallel sweep trial) created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _resumed_run_id(self) -> str | None:
        """The MLflow run of a resumed Lingjie run, marked RUNNING again (None: start a new one)."""
        path = self.run.root / RUN_ID_FILE
        if not path.exists():
            return None
        run_id = path.read_text().strip()
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception as exc:  # the store was moved or the run deleted: track anew
            log.warning("MLflow: cannot continue run %s (%s); starting a new one", run_id, exc)
            return None
        if "lingjie.error" in self.client.get_run(run_id).data.tags:  # the failure this resume repairs
            self.client.delete_tag(run_id, "lingjie.error")
        return run_id

    def _log_params(self) -> None:
        from mlflow.entities import Param

        by_key = {mlflow_key(k): param_value(v) for k, v in sorted(self.params.items())}  # keys made equal: one
        params = [Param(k, v) for k, v in by_key.items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + BATCH])

    def _finish(self, status: str) -> None:
        """Upload the run's files, then mark the MLflow run ``status`` (once)."""
        if self.run_id is None:
            return
        try:
            for name in ARTIFACT_FILES:
                if (self.run.root / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.run.root / name))
            if self.run.export.is_dir():
                self.client.log_artifacts(self.run_id, str(self.run.export), "export")
        except Exception as exc:
            log.warning("MLflow: could not upload the run's files: %s", exc)
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:
            log.warning("MLflow: could not mark run %s %s: %s", self.run_id, status, exc)
        self.run_id = None
