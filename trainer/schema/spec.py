"""The typed schema of a composed Lingjie config (one dataclass per config group).

Every knob has a default, so an experiment YAML holds only what differs. The groups every
domain shares (trainer, hardware, logger, paths) live here; ``data`` is the domain's own
dataclass (:func:`build_root`), and ``features`` / ``model`` are validated by the domain's
schemas, dispatched on ``features.<name>.type`` and ``model.name``.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass
from typing import Any, Literal

from lingjie.errors import ConfigError
from lingjie.schema import F, build


@dataclass
class OptimizerPart:
    name: Literal["adam", "adamw", "adagrad", "sgd"] = F("adam", "optimizer algorithm (with model.sparse_grad, sparse adam is SparseAdam)")
    lr: float = F(1e-3, "learning rate", gt=0)
    weight_decay: float = F(0.0, "L2 / decoupled weight decay", ge=0)
    momentum: float = F(0.0, "sgd momentum", ge=0, lt=1)
    eps: float = F(1e-8, "numerical epsilon", gt=0)


@dataclass
class OptimizerSpec:
    dense: OptimizerPart = F(OptimizerPart(), "optimizer of dense (non-embedding) parameters")
    sparse: OptimizerPart = F(OptimizerPart(lr=0.01, weight_decay=3e-4),
                              "optimizer of embedding tables; lr often higher")


@dataclass
class SchedulerSpec:
    name: Literal["constant", "cosine", "exponential"] = F("constant", "learning-rate schedule")
    warmup_steps: int = F(0, "linear warmup steps (all schedules)", ge=0)
    min_lr_ratio: float = F(0.0, "cosine: final lr as a fraction of the initial lr", ge=0, le=1)
    gamma: float = F(0.9, "exponential: lr multiplier per decay_steps", gt=0, le=1)
    decay_steps: int = F(1000, "exponential: steps per gamma decay", ge=1)


@dataclass
class EarlyStoppingSpec:
    metric: str | None = F(None, "metric to watch, e.g. eval/auc; null: off")
    mode: Literal["max", "min"] = F("max", "whether larger is better")
    patience: int = F(2, "epochs without improvement before stopping", ge=1)
    min_delta: float = F(0.0, "smallest change that counts as improvement", ge=0)


@dataclass
class CheckpointSpec:
    every_n_steps: int | None = F(None, "also checkpoint every N steps (always at epoch end)", ge=1)
    keep_last: int = F(3, "number of step checkpoints to keep", ge=1)


@dataclass
class ExportSpec:
    enabled: bool = F(True, "export after training")
    format: Literal["torch_export", "torchscript", "onnx"] = F(
        "torch_export", "torch export format: torch_export (model.pt2), torchscript (model.torchscript.pt) or "
        "onnx (model.onnx, needs lingjie[onnx]); the tf backend always writes a SavedModel")
    checkpoint: str | None = F(None, "mode=export: run dir or checkpoint file; null: the latest run")
    delta_every_steps: int = F(0, "delta exports (torch; train and stream modes): every N steps write "
                               "<export>/deltas/delta-<step>/ with the rows and weights changed since the last "
                               "export; 0: off", ge=0)
    delta_every_seconds: float | None = F(None, "... or every T seconds (null: by steps only)", gt=0)
    full_every_deltas: int = F(10, "after K deltas the next export is a full one (a new base)", ge=1)
    repository: str | None = F(None, "also publish the final export as a numbered version of this serving "
                               "model repository (lingjie serve REPO follows the newest)")


@dataclass
class PredictSpec:
    input_path: str | None = F(None, "rows to score; null: data.eval_path")
    output_path: str | None = F(None, "where to write; null: <run_dir>/predictions.parquet")
    format: Literal["parquet", "csv"] = F("parquet", "output format")
    passthrough: list[str] = F([], "input columns copied to the output")
    checkpoint: str | None = F(None, "run dir or checkpoint file; null: the latest run of this experiment")


@dataclass
class EvaluateSpec:
    data_path: str | None = F(None, "data to evaluate on; null: data.eval_path")
    checkpoint: str | None = F(None, "run dir or checkpoint file; null: the latest run of this experiment")


@dataclass
class StreamSpec:
    checkpoint_every_steps: int | None = F(100, "stream: checkpoint (then commit offsets) every N steps", ge=1)
    checkpoint_every_seconds: float | None = F(60.0, "stream: ... or every T seconds", gt=0)
    export_every_checkpoints: int = F(0, "stream: export every K checkpoints; 0: only at the end", ge=0)
    idle_timeout_s: float | None = F(None, "stream: stop after this long without a message; null: never", gt=0)
    max_wait_s: float = F(1.0, "stream: yield a partial batch after waiting this long", gt=0)
    fit_rows: int = F(10000, "stream: rows read first to fit the feature state (then trained on too)", ge=1)
    format: Literal["json", "csv", "arrow"] | None = F(None, "message format; null: from the URL (default json)")
    schema: dict[str, str] | None = F(None, "column -> Arrow type; null: inferred from the first messages")
    dead_letter: bool = F(True, "append undecodable messages to <run_dir>/dead_letter.jsonl (with on_error=skip)")


@dataclass
class LoaderSpec:
    prefetch: int = F(2, "transformed groups queued ahead of the train step (bounded memory)", ge=1)
    transform_batches: int = F(8, "batches transformed per pipeline call (its per-call cost paid once)", ge=1)
    workers: int = F(1, "transform workers; 1: inline in the reader thread", ge=1)
    worker_type: Literal["thread", "process"] = F("thread", "transform workers are threads or (spawned) processes")


@dataclass
class TimingSpec:
    enabled: bool = F(True, "time every stage of the train step; critical-path report at the end of the run")
    sample_every: int | None = F(None, "split every N-th step into stages; null: 1 on CPU, 20 on GPU (syncs)", ge=1)


@dataclass
class TrainerSpec:
    backend: Literal["torch", "tf"] = F("torch", "framework that runs the model: torch | tf (tf.keras)")
    mode: Literal["train", "evaluate", "predict", "export", "stream"] = F(
        "train", "what the job does; stream: online training from a kafka:// source")
    epochs: int = F(5, "passes over the training data", ge=1)
    max_steps: int | None = F(None, "stop after this many steps in total", ge=1)
    limit_eval_batches: int | None = F(None, "evaluate on at most this many batches", ge=1)
    optimizer: OptimizerSpec = F(OptimizerSpec(), "dense and sparse optimizers")
    scheduler: SchedulerSpec = F(SchedulerSpec(), "learning-rate schedule")
    grad_clip_norm: float | None = F(None, "clip the global gradient norm", gt=0)
    early_stopping: EarlyStoppingSpec = F(EarlyStoppingSpec(), "stop when a metric stops improving")
    checkpoint: CheckpointSpec = F(CheckpointSpec(), "checkpoint cadence")
    resume: bool | str = F(False, "true: continue the latest unfinished run; or a run directory")
    init_from: str | None = F(None, "warm start a new run from another run's weights: a run dir, checkpoint file, "
                              "URL, or latest (this experiment's newest finished run); README: continuous training")
    init_from_map: dict[str, str | None] = F({}, "init_from: source parameter name (or glob) -> name in the new "
                                             "model; null skips it")
    init_from_strict: bool = F(False, "init_from: refuse parameters of the new model the source lacks "
                               "(false: they keep their fresh initialisation)")
    init_optimizer: bool = F(False, "init_from: also carry the optimizer state over (rows remapped like the weights)")
    features_from: Literal["extend", "fit", "init"] = F(
        "extend", "init_from: extend = the source run's feature state, vocabularies extended by this run's new "
        "values; fit = refit on this run's data (values it lacks are dropped); init = the source run's as it was")
    log_every_n_steps: int = F(50, "scalars to TensorBoard every N steps", ge=1)
    progress_bar: bool = F(True, "progress bars on stderr: training, eval, dataset prep, feature fitting, AutoML")
    plots: bool = F(True, "ROC/PR/calibration (binary) + confusion (classifiers) PNGs in <run_dir>/plots/")
    export: ExportSpec = F(ExportSpec(), "export settings")
    predict: PredictSpec = F(PredictSpec(), "predict-mode settings")
    evaluate: EvaluateSpec = F(EvaluateSpec(), "evaluate-mode settings")
    stream: StreamSpec = F(StreamSpec(), "stream-mode (online training) settings")
    loader: LoaderSpec = F(LoaderSpec(), "input pipeline: prefetch depth, transform group size, workers "
                                         "(README: performance; defaults measured in benchmarks/RESULTS.md)")
    timing: TimingSpec = F(TimingSpec(), "stage timing and the critical-path report")
    dedup_ids: bool = F(False, "deduplicate ids before each fused lookup (torch.unique + inverse; tf.unique)")
    compile: bool = F(False, "compile the dense part: torch.compile of the table-free modules; TF: XLA (jit_compile) of the MLPs")
    callbacks: list[dict[str, Any]] = F([], "extra train-loop callbacks: mappings with _target_ (a "
                                        "trainer.callbacks.Callback subclass) and its arguments (README: callbacks)")

    def __post_init__(self) -> None:
        """An ONNX export is made from the torch graph; the tf backend exports a SavedModel, so
        asking it for onnx is refused here rather than silently ignored (what a user asking for
        onnx wants is a model.onnx, which a tf run would never write)."""
        if self.backend == "tf" and self.export.format == "onnx":
            raise ConfigError("trainer.export.format", "onnx export needs trainer.backend=torch; the tf backend "
                              "writes a SavedModel (export/saved_model): drop trainer.export.format=onnx")


@dataclass
class ResourcesSpec:
    cpu: str = F("2", "CPU request/limit per worker (Kubernetes quantity)")
    memory: str = F("8Gi", "memory request/limit per worker")
    gpu: int = F(0, "GPUs per worker (nvidia.com/gpu)", ge=0)


@dataclass
class ElasticSpec:
    min_replicas: int | None = F(None, "PyTorchJob elasticPolicy.minReplicas; null: fixed size", ge=1)
    max_replicas: int | None = F(None, "PyTorchJob elasticPolicy.maxReplicas", ge=1)
    max_restarts: int = F(3, "elasticPolicy.maxRestarts", ge=0)


@dataclass
class KeyRefSpec:
    name: str = F(MISSING, "k8s: the Secret (or ConfigMap) to read")
    key: str = F(MISSING, "k8s: the key inside it")
    optional: bool = F(False, "k8s: start the pod even when the Secret or key does not exist")


@dataclass
class EnvRefSpec:
    """One worker variable taken from a Kubernetes object (``valueFrom``), never a value in clear."""

    secretKeyRef: KeyRefSpec | None = F(None, "k8s: valueFrom.secretKeyRef {name, key}")  # noqa: N815 - k8s's name
    configMapKeyRef: KeyRefSpec | None = F(None, "k8s: valueFrom.configMapKeyRef {name, key}")  # noqa: N815


@dataclass
class NameRefSpec:
    name: str = F(MISSING, "k8s: the Secret (or ConfigMap) whose keys become variables")
    optional: bool = F(False, "k8s: start the pod even when it does not exist")


@dataclass
class EnvFromSpec:
    """A whole Secret or ConfigMap as worker variables (``envFrom``)."""

    secretRef: NameRefSpec | None = F(None, "k8s: envFrom.secretRef {name}")  # noqa: N815 - k8s's name
    configMapRef: NameRefSpec | None = F(None, "k8s: envFrom.configMapRef {name}")  # noqa: N815
    prefix: str | None = F(None, "k8s: prepended to every variable name")


@dataclass
class ServingSpec:
    """The knobs of the rendered ``lingjie serve`` command and of what submit applies."""

    name: str | None = F(None, "Deployment / Service / InferenceService name; null: from experiment_name (stable "
                               "across renders, so submitting again rolls out the new model)")
    batching: bool = F(True, "coalesce concurrent requests into one forward pass (false: --no-batching)")
    max_batch_size: int = F(32, "--max-batch-size: instances per coalesced forward pass", ge=1)
    max_latency_ms: float = F(5.0, "--max-latency-ms: how long a request waits for company", ge=0)
    workers: int = F(2, "--workers: forward passes running at once (threads) per pod", ge=1)
    model_name: str | None = F(None, "--model-name: the name in the URLs; null: the export's experiment name")
    apply: Literal["both", "deployment", "kserve"] = F(
        "both", "what hardware.submit applies: deployment (Deployment + Service), kserve (the InferenceService) "
        "or both (two independent sets of pods); all three manifests are rendered either way")


def _one_ref(obj: Any, names: tuple[str, str], path: str) -> None:
    given = [n for n in names if getattr(obj, n) is not None]
    if len(given) != 1:
        raise ConfigError(path, f"give exactly one of {' or '.join(names)}, e.g. "
                          f"{{{names[0]}: {{name: SECRET{', key: KEY' if 'Key' in names[0] else ''}}}}}")


@dataclass
class HardwareSpec:
    name: str = F("cpu", "hardware profile name")
    device: Literal["cpu", "cuda", "auto"] = F("cpu", "device to train on")
    threads: int | None = F(None, "intra-op threads per process; null: the library default", ge=1)
    omp_wait_policy: Literal["auto", "passive", "active"] | None = F(
        "auto", "torch's OpenMP threads between parallel regions: passive sleeps (robust on an "
        "oversubscribed CPU), active spins (faster on a CPU of its own); auto: passive when this job's "
        "processes x threads exceed the cores (CPU DDP), else leave the environment's setting; "
        "null: always leave OMP_WAIT_POLICY as the environment has it")
    precision: Literal["fp32", "bf16", "fp16"] = F("fp32", "bf16: CPU/GPU autocast; fp16: GPU AMP with a grad scaler")
    launcher: Literal["local", "torchrun", "tf_multiworker", "k8s", "k8s_serving"] = F(
        "local", "local: this process; torchrun: torch elastic agent; tf_multiworker: one process per TF worker; "
        "k8s: render (and optionally submit) a Kubeflow manifest; k8s_serving: render (and optionally submit) "
        "the Deployment, Service and KServe InferenceService serving hardware.model_uri (trains nothing)")
    nnodes: int = F(1, "machines (torchrun)", ge=1)
    nproc_per_node: int = F(1, "processes per machine (torchrun)", ge=1)
    num_workers: int = F(1, "TF MultiWorkerMirroredStrategy workers (tf_multiworker, k8s_tfjob)", ge=1)
    max_restarts: int = F(0, "torchrun: restart the worker group this many times after a failure", ge=0)
    master_addr: str = F("127.0.0.1", "rendezvous address")
    master_port: int | None = F(None, "rendezvous port; null: a free port", ge=1, le=65535)
    # Kubernetes (hardware=k8s_pytorchjob | k8s_tfjob | k8s_serving)
    kind: Literal["PyTorchJob", "TFJob"] = F("PyTorchJob", "k8s: the Training Operator job kind")
    replicas: int = F(2, "k8s: worker pods (PyTorchJob: Master + Worker replicas in total); k8s_serving: serving "
                      "pods", ge=1)
    image: str = F("lingjie:latest", "k8s: container image with Lingjie installed")
    namespace: str = F("default", "k8s: namespace")
    submit: bool = F(False, "k8s: apply the manifest with the kubernetes client (needs a configured cluster)")
    resources: ResourcesSpec = F(ResourcesSpec(), "k8s: per-pod resources (training workers, serving pods)")
    env: dict[str, Any] = F({}, "k8s: extra environment variables of every worker: a value, or (for "
                            "credentials, which may not be plain values) {secretKeyRef: {name: SECRET, key: KEY}}")
    env_from: list[EnvFromSpec] = F([], "k8s: whole Secrets / ConfigMaps as worker variables: "
                                    "[{secretRef: {name: SECRET}}]")
    restart_policy: Literal["OnFailure", "Never", "Always", "ExitCode"] = F("OnFailure", "k8s: pod restart policy")
    backoff_limit: int = F(3, "k8s: runPolicy.backoffLimit", ge=0)
    elastic: ElasticSpec = F(ElasticSpec(), "k8s PyTorchJob elastic policy")
    output_dir: str = F("/workspace/outputs", "k8s: run directory root inside the pods (a mounted volume)")
    # Kubernetes serving (hardware=k8s_serving)
    model_uri: str | None = F(None, "k8s_serving: what the pods serve: an absolute path inside the pods (export "
                              "dir, run dir or model repository), pvc://CLAIM/PATH (mounted read-only), or a "
                              "URL (oss://, s3://, hdfs://, ...) copied in by an init container; null: the newest "
                              "finished run of the experiment under paths.remote_dir")
    serving: ServingSpec = F(ServingSpec(), "k8s_serving: the `lingjie serve` flags and what submit applies")

    def __post_init__(self) -> None:
        """hardware.env values are a string or an EnvRefSpec: checked here so that a bad reference
        gets its own did-you-mean (a str | EnvRefSpec union would only say "expected ...")."""
        env: dict[str, Any] = {}
        for name, value in (self.env or {}).items():
            path = f"hardware.env.{name}"
            if isinstance(value, (dict, EnvRefSpec)):
                ref = build(EnvRefSpec, value, path)
                _one_ref(ref, ("secretKeyRef", "configMapKeyRef"), path)
                env[str(name)] = ref
            elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
                env[str(name)] = str(value)
            else:
                raise ConfigError(path, f"expected a string or {{secretKeyRef: {{name: SECRET, key: KEY}}}}, "
                                  f"got {type(value).__name__}")
        self.env = env
        for i, source in enumerate(self.env_from):
            _one_ref(source, ("secretRef", "configMapRef"), f"hardware.env_from[{i}]")


@dataclass
class MlflowSpec:
    enabled: bool = F(False, "log params (the redacted config), metrics per epoch and the run's files to MLflow "
                             "(needs the 'mlflow' extra)")
    tracking_uri: str | None = F(None, "null: $MLFLOW_TRACKING_URI, else sqlite:///<paths.output_root>/mlflow.db; "
                                       "a file:// URI or a directory is allowed too")
    experiment_name: str | None = F(None, "MLflow experiment; null: experiment_name")
    run_name: str | None = F(None, "MLflow run name; null: the run directory's name")
    artifact_location: str | None = F(None, "where a new MLflow experiment keeps its artifacts; null: "
                                            "<paths.output_root>/mlartifacts (beside the default store)")


@dataclass
class LoggerSpec:
    tensorboard: bool = F(True, "write TensorBoard scalars and hparams into <run_dir>/tensorboard")
    csv: bool = F(True, "write <run_dir>/metrics.csv: one row per epoch (epoch, step, every metric)")
    mlflow: MlflowSpec = F(MlflowSpec(), "MLflow tracking (logger=mlflow or logger=all turns it on)")


@dataclass
class PathsSpec:
    root_dir: str = F(".", "project root: the working directory", interpolation="${hydra:runtime.cwd}")
    data_dir: str | None = F(None, "where bundled datasets are prepared; null: $LINGJIE_DATA_DIR, else "
                                   "~/.cache/lingjie/datasets",
                             interpolation="${oc.env:LINGJIE_DATA_DIR,${oc.env:HOME}/.cache/lingjie/datasets}")
    output_root: str = F("outputs", "runs are written under <output_root>/<experiment_name>/ (relative to the "
                                    "working directory; $LINGJIE_OUTPUT_ROOT overrides it)",
                         interpolation="${oc.env:LINGJIE_OUTPUT_ROOT,outputs}")
    run_dir: str | None = F(None, "this run's directory (Hydra's output directory; null outside a job)",
                            interpolation="${hydra:runtime.output_dir}")
    remote_dir: str | None = F(None, "mirror every run to <remote_dir>/<experiment>/<run> (oss://, hdfs://, ...)")


@dataclass
class RootSpec:
    """A whole config, the same for every domain: only its ``data`` group is the domain's own
    dataclass (:func:`build_root`), so the shared groups are declared, documented and
    defaulted once."""

    experiment_name: str = F("default", "name of the experiment (names the run directory)")
    domain: Literal["rec", "cv", "nlp"] = F("rec", "which package runs it: rec (easyrec), cv (easycv), nlp (easynlp)")
    seed: int = F(42, "global seed (model init, shuffling, augmentation)", ge=0)
    data: Any = F(None, "data group: the domain's data dataclass, built by build_root")
    trainer: TrainerSpec = F(TrainerSpec(), "trainer group")
    hardware: HardwareSpec = F(HardwareSpec(), "hardware group")
    logger: LoggerSpec = F(LoggerSpec(), "logger group")
    paths: PathsSpec = F(PathsSpec(), "paths group")
    features: dict[str, Any] = F({}, "rec only: feature name -> feature definition (see README: features); "
                                     "cv and nlp experiments have none")
    model: dict[str, Any] = F({}, "the domain's model-zoo entry and its knobs (see README: model zoo)")


NOT_CONFIG = ("hydra", "hparams_search")  # top-level keys Hydra may leave in a composed config


def build_root(cfg: dict[str, Any], data_cls: type) -> RootSpec:
    """The typed root of a plain (resolved) config whose ``data`` group is a ``data_cls``.

    Each domain passes its own data dataclass (easyrec.data_spec.DataSpec, easycv.schema.CVDataSpec,
    easynlp.schema.NLPDataSpec); errors name the exact path (``data.batch_size``) as before.
    """
    raw = {k: v for k, v in cfg.items() if k not in NOT_CONFIG}
    data = raw.pop("data", None)
    root = build(RootSpec, raw, "")
    root.data = build(data_cls, data, "data")
    return root
