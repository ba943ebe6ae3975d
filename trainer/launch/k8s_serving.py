"""Kubernetes serving: render (and optionally apply) the manifests that run ``lingjie serve`` on
an export in a cluster (``hardware=k8s_serving``).

Nothing is trained or served here: the job writes the run's ``config.yaml`` and, into
``<run_dir>/k8s/``:

  deployment.yaml        apps/v1 Deployment: ``hardware.replicas`` pods running ``lingjie serve``
  service.yaml           v1 Service: port 80 -> the pods' 8080
  inferenceservice.yaml  serving.kserve.io/v1beta1 InferenceService: the same container as a
                         KServe custom predictor speaking the Open Inference Protocol (v2)

Both are complete alternatives (plain Kubernetes, or KServe with its autoscaling and routing);
``hardware.serving.apply`` says which ``hardware.submit=true`` applies. Names derive from the
experiment (not the run), so submitting a new render replaces the objects in place and the pods
roll over to the new model.

What the pods serve (``hardware.model_uri``):

* an absolute path inside the pods (an export dir, a run dir or a model repository): served as
  is; the image or the cluster provides it, as it provides ``hardware.output_dir`` to training pods;
* ``pvc://CLAIM/PATH``: the PersistentVolumeClaim mounted read-only at /mnt/models, PATH served;
* a URL (``oss://``, ``s3://``, ``hdfs://``, ``https://`` ...): an init container of the same
  image copies the export into an emptyDir at /mnt/models (``python -m
  trainer.launch.k8s_serving fetch URL /mnt/models``, through dataio's file systems: the
  schemes and credential variables training reads), and /mnt/models is served;
* null: the newest finished run (``DONE`` and ``export/meta.json``) of the experiment under
  ``paths.remote_dir``, as a URL; without a remote_dir that is one ConfigError line.

Credentials reach the pods as in training manifests: ``hardware.env`` Secret references
(``valueFrom``) and ``hardware.env_from``; a plain value for a credential variable, or a URL
with a password in it, is refused in one line, so no manifest holds a secret.
"""
from __future__ import annotations

import argparse
import copy
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes
from dataio.credentials import redact_url
from lingjie.errors import ConfigError, LingjieError
from trainer.launch.k8s import Step, apply_steps, connect, dns_name, dns_part, dump_yaml, manifest_hint, pod_env
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie.launch")

PORT = 8080
MODEL_MOUNT = "/mnt/models"  # where KServe's own storage initializer puts a model, too
CONTAINER = "kserve-container"  # the name KServe requires of a custom predictor's container
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
# a serving name leaves room for what KServe and Knative append (``-predictor-00001-deployment``)
NAME_LIMIT = 40


def render_and_maybe_submit(spec: Any, run: RunDir, config_yaml: str) -> Path:
    """Write the run's config and the serving manifests; apply them when hardware.submit."""
    hw = spec.root.hardware
    run.root.mkdir(parents=True, exist_ok=True)  # no checkpoints/: nothing is trained into this run
    atomic_write_bytes(run.config, config_yaml.encode())
    manifests = render(spec, run)
    out = run.root / "k8s"
    out.mkdir(parents=True, exist_ok=True)
    for file_name, doc in manifests.items():
        atomic_write_bytes(out / file_name, dump_yaml(doc).encode())
    deployment = manifests["deployment.yaml"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    log.info("rendered Deployment + Service '%s' (%d replicas) and InferenceService '%s' into %s",
             deployment["metadata"]["name"], hw.replicas, manifests["inferenceservice.yaml"]["metadata"]["name"], out)
    log.info("the pods run: %s", " ".join(container["command"]))
    log.info("submit with: kubectl apply -f %s", out)
    if hw.submit:
        submit(manifests, hw.namespace, hw.serving.apply, out)
    return run.root


# ----------------------------------------------------------------------------- rendering
def render(spec: Any, run: RunDir) -> dict[str, dict[str, Any]]:
    """The manifests as plain dicts: deployment.yaml, service.yaml, inferenceservice.yaml."""
    root = spec.root
    hw = root.hardware
    uri = model_uri(spec)
    name = serving_name(hw.serving.name or root.experiment_name)
    labels = {"app.kubernetes.io/name": "lingjie", "app.kubernetes.io/instance": name,
              "app.kubernetes.io/component": "serving"}
    if hw.resources.gpu > 0 and hw.device == "cpu":
        log.warning("hardware.resources.gpu=%d but hardware.device=cpu: the pods get GPUs they may not use",
                    hw.resources.gpu)
    served, volumes, init = model_source(uri, hw)
    container = serve_container(hw, served, volumes)
    # a new render changes the pod template, so replacing the Deployment rolls the pods over
    # (a model repository's new version is picked up even when model_uri stays the same)
    annotations = {"lingjie.io/run": run.root.name, "lingjie.io/model-uri": uri,
                   "prometheus.io/scrape": "true", "prometheus.io/port": str(PORT), "prometheus.io/path": "/metrics"}
    pod_spec: dict[str, Any] = {**({"initContainers": init} if init else {}), "containers": [container],
                                **({"volumes": volumes} if volumes else {})}
    metadata = {"name": name, "namespace": hw.namespace, "labels": labels}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": copy.deepcopy(metadata),
        "spec": {"replicas": hw.replicas, "selector": {"matchLabels": dict(labels)},
                 # a serving pod is taken away only once its replacement is ready
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                              "spec": pod_spec}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": copy.deepcopy(metadata),
        "spec": {"type": "ClusterIP", "selector": dict(labels),
                 "ports": [{"name": "http", "port": 80, "targetPort": PORT, "protocol": "TCP"}]},
    }
    return {"deployment.yaml": deployment, "service.yaml": service,
            "inferenceservice.yaml": inference_service(metadata, annotations, pod_spec, hw.replicas)}


def inference_service(metadata: dict[str, Any], annotations: dict[str, str], pod_spec: dict[str, Any],
                      replicas: int) -> dict[str, Any]:
    """The KServe custom predictor: the Deployment's pod, its container named as KServe wants,
    ``PROTOCOL=v2`` (how a custom container declares the Open Inference Protocol), no startup
    probe and an unnamed port (Knative, KServe's serverless mode, allows neither)."""
    pod = copy.deepcopy(pod_spec)
    container = pod["containers"][0]
    container["env"] = [*container["env"], {"name": "PROTOCOL", "value": "v2"}]
    container["ports"] = [{"containerPort": PORT, "protocol": "TCP"}]
    container.pop("startupProbe")
    container["livenessProbe"]["initialDelaySeconds"] = 60  # the model loads before the port opens
    return {
        "apiVersion": f"{KSERVE_GROUP}/{KSERVE_VERSION}", "kind": "InferenceService",
        "metadata": {**copy.deepcopy(metadata), "annotations": dict(annotations)},
        "spec": {"predictor": {"minReplicas": replicas, "maxReplicas": replicas, **pod}},
    }


def serve_command(hw: Any, served: str) -> list[str]:
    """``lingjie serve`` on ``served`` with the batching flags of hardware.serving."""
    s = hw.serving
    command = ["lingjie", "serve", served, "--host", "0.0.0.0", "--port", str(PORT),
               "--max-batch-size", str(s.max_batch_size), "--max-latency-ms", f"{s.max_latency_ms:g}",
               "--workers", str(s.workers)]
    if not s.batching:
        command.append("--no-batching")
    if s.model_name:
        command += ["--model-name", s.model_name]
    return command


def serve_container(hw: Any, served: str, volumes: list[dict[str, Any]]) -> dict[str, Any]:
    """The serving container: command, port, probes (the server opens its port only once the
    model is loaded and warmed up, so a startup probe gives the load time before liveness
    counts), resources as training workers get them, env / envFrom as training workers."""
    env, env_from = pod_env(hw, "torch")  # LINGJIE_BACKEND is a training worker's variable
    quantities: dict[str, Any] = {"cpu": str(hw.resources.cpu), "memory": str(hw.resources.memory)}
    if hw.resources.gpu > 0:
        quantities["nvidia.com/gpu"] = hw.resources.gpu

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": PORT}, "periodSeconds": period, "timeoutSeconds": 2,
                "failureThreshold": failures}

    return {
        "name": CONTAINER,
        "image": hw.image,
        "command": serve_command(hw, served),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        **({"envFrom": env_from} if env_from else {}),
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "startupProbe": probe("/v2/health/live", 5, 120),  # up to 10 minutes to load the model
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "readinessProbe": probe("/v2/health/ready", 5, 2),
        **({"volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True}]} if volumes else {}),
    }


def model_source(uri: str, hw: Any) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(the path the server is given, the pod's volumes, its init containers) for ``uri``."""
    if uri.startswith("pvc://"):
        claim, _, sub = uri[len("pvc://"):].partition("/")
        if not claim:
            raise ConfigError("hardware.model_uri", f"'{uri}' names no claim: expected pvc://CLAIM/PATH")
        volume = {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        return f"{MODEL_MOUNT}/{sub.strip('/')}".rstrip("/"), [volume], []
    if "://" in uri:
        env, env_from = pod_env(hw, "torch")
        if not env_from and not any("valueFrom" in e for e in env):
            log.warning("hardware.model_uri=%s is fetched by the pods with no credentials from a Secret "
                        "(hardware.env / env_from): fine for a public or workload-identity store only", uri)
        fetch = {
            "name": "fetch-model", "image": hw.image,
            "command": ["python", "-m", "trainer.launch.k8s_serving", "fetch", uri, MODEL_MOUNT],
            "env": env, **({"envFrom": env_from} if env_from else {}),
            "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT}],
        }
        return MODEL_MOUNT, [{"name": "model", "emptyDir": {}}], [fetch]
    return uri, [], []


def model_uri(spec: Any) -> str:
    """hardware.model_uri checked (absolute path or URL, no credential in it), or, when null,
    the newest finished run of the experiment under paths.remote_dir."""
    root = spec.root
    uri = root.hardware.model_uri
    if not uri:
        remote = root.paths.remote_dir
        if not remote:
            raise ConfigError("hardware.model_uri", "what should the pods serve? Set hardware.model_uri to an export "
                              "dir, run dir or model repository as the pods see it (an absolute path, "
                              "pvc://CLAIM/PATH, or a URL such as oss://bucket/runs/EXPERIMENT/RUN), or set "
                              "paths.remote_dir to serve the experiment's newest finished mirrored run")
        return latest_remote_run(remote, root.experiment_name, root.data.storage_options or None)
    if redact_url(uri) != uri:
        raise ConfigError("hardware.model_uri", "holds a credential, which would be written into the manifests: "
                          "give the URL without it and the credential from a Secret (hardware.env.VAR: "
                          "{secretKeyRef: {name: SECRET, key: KEY}})")
    if "://" not in uri and not uri.startswith("/"):
        raise ConfigError("hardware.model_uri", f"'{uri}' is a relative path, which means nothing in a pod: give the "
                          "path as the pods see it (absolute), pvc://CLAIM/PATH or a URL")
    return uri


def latest_remote_run(remote_dir: str, experiment: str, storage_options: dict | None) -> str:
    """The URL of the newest run of ``experiment`` mirrored under ``remote_dir`` that finished
    (its ``DONE`` marker is published last, after the export)."""
    from dataio.filesystems import filesystem_for

    base_url = f"{remote_dir.rstrip('/')}/{experiment}"
    fs, base = filesystem_for(base_url, storage_options)
    base = base.rstrip("/")
    try:
        runs = sorted((p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)), reverse=True)
    except FileNotFoundError:
        runs = []
    for name in runs:
        if fs.exists(f"{base}/{name}/DONE") and fs.exists(f"{base}/{name}/export/meta.json"):
            url = f"{base_url}/{name}"
            log.info("hardware.model_uri=null: serving the newest finished run %s", redact_url(url))
            return url
    raise ConfigError("hardware.model_uri", f"no finished run of '{experiment}' with an export under "
                      f"{redact_url(base_url)}; set hardware.model_uri")


def serving_name(text: str) -> str:
    """A DNS-1035 name of at most NAME_LIMIT chars for the Deployment, Service and InferenceService."""
    return dns_name(dns_part(text) or "lingjie", NAME_LIMIT, text)


# ----------------------------------------------------------------------------- submitting
def submit(manifests: dict[str, dict[str, Any]], namespace: str, what: str, manifest_dir: Path) -> None:
    """Create the objects ``what`` names with the kubernetes client; an existing one (same
    name: a previous render of this experiment) is replaced, which rolls its pods over."""
    where = manifest_hint(manifest_dir)
    client, api, source = connect(where)
    apps, core, custom = client.AppsV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)

    def replace_with_version(read: Any, replace: Any) -> Any:
        # an update must carry the stored object's resourceVersion (custom resources refuse one without)
        def go(doc: dict[str, Any]) -> Any:
            name = doc["metadata"]["name"]
            doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion": _resource_version(read(name))}}
            return replace(name, doc)
        return go

    def kserve(verb: str) -> Any:
        method = getattr(custom, f"{verb}_namespaced_custom_object")
        return lambda *args: method(KSERVE_GROUP, KSERVE_VERSION, namespace, KSERVE_PLURAL, *args, _request_timeout=30)

    steps = []
    if what in ("deployment", "both"):
        steps += [
            Step(manifests["deployment.yaml"],
                 lambda doc: apps.create_namespaced_deployment(namespace, doc, _request_timeout=30),
                 replace_with_version(lambda n: apps.read_namespaced_deployment(n, namespace, _request_timeout=30),
                                      lambda n, d: apps.replace_namespaced_deployment(n, namespace, d,
                                                                                      _request_timeout=30))),
            Step(manifests["service.yaml"],
                 lambda doc: core.create_namespaced_service(namespace, doc, _request_timeout=30),
                 replace_with_version(lambda n: core.read_namespaced_service(n, namespace, _request_timeout=30),
                                      lambda n, d: core.replace_namespaced_service(n, namespace, d,
                                                                                   _request_timeout=30)))]
    if what in ("kserve", "both"):
        steps.append(Step(manifests["inferenceservice.yaml"], lambda doc: kserve("create")(doc),
                          replace_with_version(lambda n: kserve("get")(n), lambda n, d: kserve("replace")(n, d)),
                          crd=(f"{KSERVE_GROUP}/{KSERVE_VERSION}", "KServe")))
    apply_steps(api, source, namespace, steps, where, "Deployments / Services / InferenceServices")
    for step in steps:
        log.info("applied %s %s/%s to %s", step.doc["kind"], namespace, step.doc["metadata"]["name"],
                 api.configuration.host)
    name = manifests["deployment.yaml"]["metadata"]["name"]
    log.info("follow it with: kubectl -n %s rollout status deployment/%s (or: kubectl -n %s get "
             "inferenceservice %s)", namespace, name, namespace, name)


def _resource_version(current: Any) -> str | None:
    """The stored object's resourceVersion: a dict from the custom-objects API, a model object else."""
    if isinstance(current, dict):
        return (current.get("metadata") or {}).get("resourceVersion")
    return current.metadata.resource_version


# ----------------------------------------------------------------------------- the init container
def fetch_model(url: str, dest: Path) -> Path:
    """Copy the export at ``url`` into ``dest`` so that ``lingjie serve dest`` serves it: an
    export dir's files into ``dest``; a run dir's ``export/`` and ``config.yaml`` (the served
    name) into ``dest``; a model repository's newest complete version into ``dest/<version>/``
    (its label is the served version). Staged beside and moved in when complete, so a killed
    fetch (the init container restarted) never leaves a half-copied model to serve."""
    from dataio.filesystems import filesystem_for

    fs, base = filesystem_for(url)
    base = base.rstrip("/")
    if fs.exists(f"{base}/meta.json"):
        parts = {"": base}
    elif fs.exists(f"{base}/export/meta.json"):
        parts = {"export": f"{base}/export", "config.yaml": f"{base}/config.yaml"}
    else:
        version = _newest_version(fs, base)
        if version is None:
            raise LingjieError(f"{redact_url(url)} holds no export: expected meta.json, export/meta.json (a run "
                               "dir) or version subdirectories holding either (a model repository)")
        found = f"{base}/{version}"
        parts = {version: found} if fs.exists(f"{found}/meta.json") else \
            {f"{version}/export": f"{found}/export", f"{version}/config.yaml": f"{found}/config.yaml"}
    dest.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".fetch-", dir=dest))
    try:
        for rel, remote in parts.items():
            _copy_tree(fs, remote, staged / rel)
        for item in staged.iterdir():
            target = dest / item.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            item.rename(target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return dest


def _newest_version(fs: Any, base: str) -> str | None:
    """The highest version subdirectory holding an export (numbers above names, as ``lingjie serve``)."""
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False) if fs.isdir(p)]
    except FileNotFoundError:
        return None

    def key(name: str) -> tuple[int, tuple[int, ...], str]:
        numeric = re.fullmatch(r"\d+(\.\d+)*", name)
        return (1, tuple(int(p) for p in name.split(".")), "") if numeric else (0, (), name)

    for name in sorted((n for n in names if not n.startswith(".")), key=key, reverse=True):
        if fs.exists(f"{base}/{name}/meta.json") or fs.exists(f"{base}/{name}/export/meta.json"):
            return name
    return None


def _copy_tree(fs: Any, remote: str, local: Path) -> None:
    """A file or a directory tree from ``fs`` to ``local``; a file that is not there (a run's
    optional config.yaml) is skipped; a path escaping its directory is refused."""
    if not fs.exists(remote):
        return
    if not fs.isdir(remote):
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(fs.cat_file(remote))
        return
    for path in fs.find(remote):
        rel = Path(path[len(remote) + 1:])
        if not path.startswith(f"{remote}/") or rel.is_absolute() or ".." in rel.parts:
            raise LingjieError(f"a file outside the model directory: {redact_url(path)}")
        target = local / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(fs.cat_file(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m trainer.launch.k8s_serving fetch URL DEST``: the serving pods' init container."""
    p = argparse.ArgumentParser(prog="python -m trainer.launch.k8s_serving")
    sub = p.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="copy an export / run / model repository at URL into DEST")
    fetch.add_argument("url")
    fetch.add_argument("dest", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fetch_model(args.url, args.dest)
    except LingjieError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    log.info("fetched %s into %s", redact_url(args.url), args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
