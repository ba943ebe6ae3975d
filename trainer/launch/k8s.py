"""Kubernetes: render a Kubeflow Training Operator job (PyTorchJob / TFJob) for a run, and
optionally apply it with the official ``kubernetes`` client.

The operator is the distributed engine: it starts the pods, gives PyTorchJob pods
MASTER_ADDR / MASTER_PORT / WORLD_SIZE / RANK (and torchrun's PET_* variables under an
elasticPolicy) and TFJob pods TF_CONFIG; every pod runs ``python -m trainer.worker`` on the
resolved config, shipped in a ConfigMap mounted at /etc/lingjie. Secrets never travel in the
ConfigMap or as plain ``value:`` entries: the config names them as ``${oc.env:VAR}``
(trainer.redaction) and the pods get VAR from a Kubernetes Secret (``hardware.env.VAR:
{secretKeyRef: {name, key}}`` or ``hardware.env_from: [{secretRef: {name}}]``). Written into
the run dir:

  k8s/configmap.yaml     ConfigMap ``<job>-config`` holding ``config.yaml`` for the pods
  k8s/pytorchjob.yaml    (or tfjob.yaml) the ``kubeflow.org/v1`` job

``kubectl apply -f <run_dir>/k8s/`` submits both; ``hardware.submit=true`` does it here.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dataio.atomic import atomic_write_bytes
from dataio.credentials import looks_secret_env, redact, secret_env_values
from lingjie.errors import ConfigError, LingjieError
from lingjie.schema import to_plain
from trainer.run_dir import RunDir
from trainer.redaction import literal_for_pods_message

log = logging.getLogger("lingjie.launch")

CONFIG_MOUNT = "/etc/lingjie"
GROUP, VERSION = "kubeflow.org", "v1"
_CONTAINER = {"PyTorchJob": "pytorch", "TFJob": "tensorflow"}
_PLURAL = {"PyTorchJob": "pytorchjobs", "TFJob": "tfjobs"}


def render_and_maybe_submit(spec: Any, run: RunDir, config_yaml: str) -> Path:
    """Write the run's config and its Kubernetes manifests; apply them when hardware.submit."""
    root = spec.root
    hw = root.hardware
    _check_backend(hw.kind, root.trainer.backend)
    run.create()
    atomic_write_bytes(run.config, config_yaml.encode())
    manifests = render(spec, run, config_yaml)
    out = run.root / "k8s"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, doc in manifests.items():
        path = out / name
        atomic_write_bytes(path, dump_yaml(doc).encode())
        files.append(path)
    job = manifests[f"{hw.kind.lower()}.yaml"]
    log.info("rendered %s '%s' (%s) and ConfigMap '%s' into %s", hw.kind, job["metadata"]["name"],
             _replica_summary(job), manifests["configmap.yaml"]["metadata"]["name"], out)
    log.info("the pods read %s and write %s: both must be reachable from every pod (a shared volume or an "
             "fsspec URL)", root.data.train_path, hw.output_dir)
    log.info("submit with: kubectl apply -f %s", out)
    if hw.submit:
        submit(manifests["configmap.yaml"], job, hw.namespace, out)
    return run.root


# ----------------------------------------------------------------------------- rendering
def render(spec: Any, run: RunDir, config_yaml: str) -> dict[str, dict[str, Any]]:
    """The manifests as plain dicts: {"configmap.yaml": ..., "<kind lower>.yaml": ...}."""
    root = spec.root
    hw = root.hardware
    name = job_name(root.experiment_name, run.root.name, _max_replica_index(hw))
    pod_run_dir = f"{hw.output_dir.rstrip('/')}/{root.experiment_name}/{run.root.name}"
    labels = {"app.kubernetes.io/name": "lingjie", "app.kubernetes.io/instance": name}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "namespace": hw.namespace, "labels": labels},
        "data": {"config.yaml": pod_config(config_yaml, pod_run_dir, hw.output_dir)},
    }
    if hw.resources.gpu > 0 and hw.device == "cpu":
        log.warning("hardware.resources.gpu=%d but hardware.device=cpu: the pods get GPUs they do not use",
                    hw.resources.gpu)
    job = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": hw.kind,
        "metadata": {"name": name, "namespace": hw.namespace, "labels": labels},
        "spec": {"runPolicy": {"backoffLimit": hw.backoff_limit, "cleanPodPolicy": "None"}},
    }
    template = _pod_template(hw, root.trainer.backend, configmap["metadata"]["name"], pod_run_dir, labels)
    check_pod_secrets(config_yaml, hw)
    if hw.kind == "PyTorchJob":
        elastic = hw.elastic
        if elastic.min_replicas or elastic.max_replicas:
            lo = elastic.min_replicas or hw.replicas
            hi = elastic.max_replicas or max(hw.replicas, lo)
            if not lo <= hw.replicas <= hi:
                raise ConfigError("hardware.replicas", f"{hw.replicas} replicas is outside the elastic range "
                                  f"[{lo}, {hi}] (hardware.elastic.min_replicas / max_replicas)")
            job["spec"]["elasticPolicy"] = {"minReplicas": lo, "maxReplicas": hi,
                                            "maxRestarts": elastic.max_restarts, "rdzvBackend": "c10d"}
            # elastic: every pod is a Worker running torchrun's agent, which reads the PET_* rendezvous
            # variables the operator injects and restarts the group (workers resume from the checkpoint)
            replica_specs = {"Worker": _replica(hw.replicas, hw.restart_policy, template)}
        else:
            replica_specs = {"Master": _replica(1, hw.restart_policy, template)}
            if hw.replicas > 1:
                replica_specs["Worker"] = _replica(hw.replicas - 1, hw.restart_policy, template)
        if hw.nproc_per_node > 1:
            job["spec"]["nprocPerNode"] = str(hw.nproc_per_node)
        job["spec"]["pytorchReplicaSpecs"] = replica_specs
    else:
        job["spec"]["tfReplicaSpecs"] = {"Worker": _replica(hw.num_workers, hw.restart_policy, template)}
    return {"configmap.yaml": configmap, f"{hw.kind.lower()}.yaml": job}


def worker_command(hw: Any, pod_run_dir: str) -> list[str]:
    """The pod's command. Through torchrun's agent when it must start several processes per pod
    or run an elastic group; else the worker itself (the operator set RANK / TF_CONFIG)."""
    args = ["--config", f"{CONFIG_MOUNT}/config.yaml", "--run-dir", pod_run_dir]
    elastic = hw.kind == "PyTorchJob" and (hw.elastic.min_replicas or hw.elastic.max_replicas)
    if hw.kind == "PyTorchJob" and (elastic or hw.nproc_per_node > 1):
        return ["python", "-m", "torch.distributed.run", "--module", "trainer.worker", *args]
    return ["python", "-m", "trainer.worker", *args]


def pod_config(config_yaml: str, pod_run_dir: str, output_dir: str) -> str:
    """The resolved config as the pods run it: trained in the pod (launcher local), with the run
    dir and output root of the pods' volume."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(config_yaml)
    cfg.hardware.launcher = "local"
    cfg.hardware.submit = False
    cfg.paths.run_dir = pod_run_dir
    cfg.paths.output_root = output_dir
    return OmegaConf.to_yaml(cfg)


def job_name(experiment: str, run_name: str, max_replica_index: int = 0) -> str:
    """A DNS-1123 (and DNS-1035: starts with a letter) name from experiment + run dir name, short
    enough that the operator's pod/service names ``<job>-worker-<i>`` stay within 63 chars."""
    exp, suffix = dns_part(experiment) or "lingjie", dns_part(run_name) or "run"
    return dns_name(f"{exp}-{suffix}", 63 - len(f"-worker-{max_replica_index}"), f"{experiment}/{run_name}")


def dns_part(text: str) -> str:
    """``text`` in lower-case letters, digits and single dashes (no dash at either end)."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def dns_name(name: str, limit: int, identity: str) -> str:
    """``name`` (already a dns_part) as a DNS-1035 label of at most ``limit`` chars: starting
    with a letter, and cut with a digest of ``identity`` when too long, so that two long names
    differing only in their tails stay different."""
    if not name[:1].isalpha():
        name = "lj-" + name
    if len(name) > limit:
        digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
        name = f"{name[:limit - len(digest) - 1].rstrip('-')}-{digest}"
    return name


def _max_replica_index(hw: Any) -> int:
    if hw.kind == "TFJob":
        return hw.num_workers - 1
    return max(hw.replicas, hw.elastic.max_replicas or 0) - 1


def _check_backend(kind: str, backend: str) -> None:
    if kind == "PyTorchJob" and backend != "torch":
        raise ConfigError("hardware.kind", "a PyTorchJob runs torch workers; for trainer.backend=tf use "
                          "hardware=k8s_tfjob")
    if kind == "TFJob" and backend != "tf":
        raise ConfigError("hardware.kind", "a TFJob runs TF workers; use trainer.backend=tf (or "
                          "hardware=k8s_pytorchjob for torch)")


def pod_env(hw: Any, backend: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The container's ``env`` and ``envFrom``: hardware.env values in clear, references to
    Secrets / ConfigMaps as ``valueFrom``, hardware.env_from as ``envFrom``.

    Why refuse a plain credential: the job manifest is written into the run dir (and stored by
    the API server, readable by whoever may read jobs); a Secret reference keeps the value in
    the one object Kubernetes protects for it."""
    plain = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    if backend == "tf":
        plain["LINGJIE_BACKEND"] = "tf"  # DistContext reads TF_CONFIG only for TF workers
    env: dict[str, dict[str, Any]] = {k: {"name": k, "value": v} for k, v in plain.items()}
    secret_values = secret_env_values()
    for name, value in (hw.env or {}).items():
        if isinstance(value, str):
            if looks_secret_env(name) or value in secret_values or redact(value) != value:
                raise ConfigError(f"hardware.env.{name}", literal_for_pods_message(f"hardware.env.{name}"))
            env[name] = {"name": name, "value": value}
        else:
            ref = {k: v for k, v in to_plain(value).items() if v is not None}
            env[name] = {"name": name, "valueFrom": ref}
    env_from = [{k: v for k, v in to_plain(source).items() if v is not None} for source in hw.env_from]
    return list(env.values()), env_from


def check_pod_secrets(config_yaml: str, hw: Any) -> None:
    """Every credential variable the pods' config reads (``${oc.env:NAME}``, as
    trainer.redaction writes them) must reach the pods: from hardware.env or hardware.env_from.
    Why here: a pod without it would fail at start-up, after scheduling, far from the cause."""
    if hw.env_from:
        return  # the Secret's keys are not known here; the pod resolves them
    for name in dict.fromkeys(re.findall(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)\}", config_yaml)):
        if looks_secret_env(name) and name not in (hw.env or {}):
            raise ConfigError(f"hardware.env.{name}", f"the config reads the credential ${{oc.env:{name}}} but the "
                              f"pods do not get {name}: set hardware.env.{name}={{secretKeyRef: {{name: SECRET, "
                              "key: KEY}} or hardware.env_from=[{secretRef: {name: SECRET}}]")


def _pod_template(hw: Any, backend: str, configmap: str, pod_run_dir: str, labels: dict) -> dict[str, Any]:
    env, env_from = pod_env(hw, backend)
    quantities: dict[str, Any] = {"cpu": str(hw.resources.cpu), "memory": str(hw.resources.memory)}
    if hw.resources.gpu > 0:
        quantities["nvidia.com/gpu"] = hw.resources.gpu
    container = {
        "name": _CONTAINER[hw.kind],
        "image": hw.image,
        "command": worker_command(hw, pod_run_dir),
        "env": env,
        **({"envFrom": env_from} if env_from else {}),
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "volumeMounts": [{"name": "lingjie-config", "mountPath": CONFIG_MOUNT, "readOnly": True}],
    }
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [container],
                 "volumes": [{"name": "lingjie-config", "configMap": {"name": configmap}}]},
    }


def _replica(n: int, restart_policy: str, template: dict[str, Any]) -> dict[str, Any]:
    import copy

    return {"replicas": n, "restartPolicy": restart_policy, "template": copy.deepcopy(template)}


def _replica_summary(job: dict[str, Any]) -> str:
    specs = job["spec"].get("pytorchReplicaSpecs") or job["spec"].get("tfReplicaSpecs") or {}
    return ", ".join(f"{k} x{v['replicas']}" for k, v in specs.items())


def dump_yaml(doc: dict[str, Any]) -> str:
    """YAML with multi-line strings (the ConfigMap's config.yaml) as literal blocks."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


# ----------------------------------------------------------------------------- submitting
@dataclass
class Step:
    """One object to apply: its manifest, how to create it and, when it may already exist and
    should then be brought to this manifest (a ConfigMap, a serving Deployment), how to replace
    it; ``crd`` says what installs a custom resource's definition, for the hint on a 404."""

    doc: dict[str, Any]
    create: Callable[[dict[str, Any]], Any]
    replace: Callable[[dict[str, Any]], Any] | None = None
    crd: tuple[str, str] | None = None  # (apiVersion, what installs it): ("serving.kserve.io/v1beta1", "KServe")


def connect(where: str) -> tuple[Any, Any, str]:
    """(the ``kubernetes.client`` module, an ApiClient for the configured cluster, where its
    configuration came from). No client installed, or no cluster configured: one ConfigError
    line at ``hardware.submit`` that says what to do and where the manifests are (``where``)."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ConfigError("hardware.submit", "the kubernetes client is not installed (pip install "
                          f"'lingjie[k8s]'); or set hardware.submit=false: {where}") from None
    configuration = client.Configuration()
    try:
        # KUBECONFIG read now, not when the client was imported; None: ~/.kube/config
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration)
        source = "kubeconfig"
    except (ConfigException, OSError, TypeError, ValueError) as kube_exc:
        try:
            config.load_incluster_config(client_configuration=configuration)
            source = "in-cluster service account"
        except ConfigException:
            raise ConfigError("hardware.submit", f"no Kubernetes cluster is configured ({_first_line(kube_exc)}): "
                              "point KUBECONFIG (or ~/.kube/config) at your cluster, or run inside a pod with a "
                              f"service account; or set hardware.submit=false: {where}") from None
    return client, client.ApiClient(configuration), source


def apply_steps(api: Any, source: str, namespace: str, steps: list[Step], where: str, may_create: str) -> None:
    """Apply ``steps`` in order with ``api`` (closed afterwards). An object that exists already
    is replaced when its step says how (else the API's 409 stands); any refusal is one
    LingjieError line naming the object, an unreachable cluster one ConfigError line.
    ``may_create`` names the kinds, for the hint on a 401 / 403."""
    import urllib3
    from kubernetes.client.rest import ApiException

    host = api.configuration.host
    step = steps[0]
    try:
        for step in steps:
            try:
                step.create(step.doc)
            except ApiException as exc:
                if exc.status != 409 or step.replace is None:
                    raise
                step.replace(step.doc)
    except ApiException as exc:
        kind, name = step.doc["kind"], step.doc["metadata"]["name"]
        raise LingjieError(_api_error(exc, kind, name, namespace, host, where, step.crd, may_create)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # the cluster cannot be reached
        raise ConfigError("hardware.submit", f"cannot reach the Kubernetes API at {host} (from the "
                          f"{source}): {_first_line(exc)}; check KUBECONFIG / the cluster; {where}") from None
    finally:
        api.close()


def manifest_hint(manifest_dir: Path) -> str:
    """The tail of every submit error: where the rendered manifests are and how to apply them."""
    return f"the manifests are in {manifest_dir}; apply them with `kubectl apply -f {manifest_dir}`"


def submit(configmap: dict[str, Any], job: dict[str, Any], namespace: str, manifest_dir: Path) -> None:
    """Create (or replace) the ConfigMap and create the job with the kubernetes client."""
    where = manifest_hint(manifest_dir)
    client, api, source = connect(where)
    kind, name = job["kind"], job["metadata"]["name"]
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    cm_name = configmap["metadata"]["name"]
    steps = [
        Step(configmap, lambda doc: core.create_namespaced_config_map(namespace, doc, _request_timeout=30),
             lambda doc: core.replace_namespaced_config_map(cm_name, namespace, doc, _request_timeout=30)),
        # an existing job is not replaced: a second submit of the same run is a mistake (409)
        Step(job, lambda doc: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, _PLURAL[kind], doc,
                                                                       _request_timeout=30),
             crd=(f"{GROUP}/{VERSION}", "the Kubeflow Training Operator")),
    ]
    apply_steps(api, source, namespace, steps, where, "ConfigMaps / Kubeflow jobs")
    log.info("submitted %s %s/%s to %s; follow it with: kubectl -n %s get %s %s", kind, namespace, name,
             api.configuration.host, namespace, _PLURAL[kind], name)


def _api_error(exc: Any, kind: str, name: str, namespace: str, host: str, where: str,
               crd: tuple[str, str] | None, may_create: str) -> str:
    reason = exc.reason or ""
    try:
        import json

        reason = json.loads(exc.body).get("message") or reason
    except Exception:  # noqa: BLE001 - the body is not always JSON
        pass
    group = crd[0].split("/")[0] if crd else ""
    if exc.status == 404 and crd and group in (exc.body or "") + str(getattr(exc, "reason", "")):
        hint = f"is {crd[1]} installed ({crd[0]} CRDs)?"
    elif exc.status == 404:
        hint = f"does namespace '{namespace}' exist" + (f", and is {crd[1]} installed?" if crd else "?")
    elif exc.status == 409:
        hint = f"a {kind} named '{name}' already exists"
    elif exc.status in (401, 403):
        hint = f"the credentials in use may not create {may_create} in this namespace"
    else:
        hint = ""
    return (f"Kubernetes API at {host} refused to create {kind} {namespace}/{name}: {exc.status} {reason}"
            + (f" ({hint})" if hint else "") + f"; {where}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
