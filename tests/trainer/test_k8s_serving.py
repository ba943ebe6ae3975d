"""hardware=k8s_serving: the rendered Deployment, Service and KServe InferenceService (through the
real CLI once, in process for the variants), the init container's fetch of a remote export, and
hardware.submit through the real ``kubernetes`` client against a loopback API-server emulator
(create, then replace in place on the next submit)."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from lingjie.errors import ConfigError, LingjieError
from tests.conftest import compose, run_cli
from tests.emulators._http import LoopbackServer, QuietHandler
from tests.trainer.test_k8s_manifest import _kubeconfig
from trainer.launch.k8s_serving import fetch_model, main, render, serving_name, submit
from trainer.run_dir import RunDir
from trainer.schema.validate import validate

SECRET = "serve-secret-5d2a77"  # the launcher's value of the credential: must be written nowhere
MODEL = "oss://models/runs/movielens_deepfm/2026-12-01_10-00-00"


def _docs(run: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((run / "k8s").glob("*.yaml"))}


def _render(tmp_path: Path, overrides: list[str]) -> dict[str, dict[str, Any]]:
    """The manifests of ``+experiment=movielens_deepfm hardware=k8s_serving OVERRIDES``, in process."""
    spec = validate(compose(["+experiment=movielens_deepfm", "hardware=k8s_serving", *overrides]))
    return render(spec, RunDir(tmp_path / "2026-12-07_10-00-00"))


def test_serving_manifests(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli(["+experiment=movielens_deepfm", "hardware=k8s_serving", f"hardware.model_uri={MODEL}",
                    "hardware.image=registry.example.com/lingjie:0.2", "hardware.namespace=ml", "hardware.replicas=3",
                    "hardware.resources.gpu=1", "hardware.resources.cpu='6'", "hardware.device=cuda",
                    "hardware.serving.max_batch_size=64", "hardware.serving.max_latency_ms=2.5",
                    "+hardware.env.OSS_ACCESS_KEY_SECRET={secretKeyRef:{name:oss-creds,key:secret}}",
                    "hardware.env_from=[{secretRef:{name:oss-ids}}]", '+hardware.env.OMP_NUM_THREADS="2"',
                    f"hydra.run.dir={run}"], cwd=tmp_path, env={"OSS_ACCESS_KEY_SECRET": SECRET})
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run}"
    assert f"kubectl apply -f {run / 'k8s'}" in proc.stderr + proc.stdout
    info = json.loads((run / "run_info.json").read_text())
    assert info["mode"] == "serve:k8s" and info["status"] == "finished", info
    assert not (run / "metrics.json").exists() and not (run / "checkpoints").exists()  # nothing trained
    assert not [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    docs = _docs(run)
    assert sorted(docs) == ["deployment.yaml", "inferenceservice.yaml", "service.yaml"]
    dep, svc, isvc = docs["deployment.yaml"], docs["service.yaml"], docs["inferenceservice.yaml"]
    name = "movielens-deepfm"  # from the experiment, not the run: a new render replaces it in place
    for doc in (dep, svc, isvc):
        assert doc["metadata"]["name"] == name and doc["metadata"]["namespace"] == "ml"

    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment" and dep["spec"]["replicas"] == 3
    labels = dep["spec"]["selector"]["matchLabels"]
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"] == labels and pod["metadata"]["annotations"]["lingjie.io/model-uri"] == MODEL
    (init,) = pod["spec"]["initContainers"]  # a URL: copied into the pod's emptyDir first
    assert init["command"] == ["python", "-m", "trainer.launch.k8s_serving", "fetch", MODEL, "/mnt/models"]
    assert pod["spec"]["volumes"] == [{"name": "model", "emptyDir": {}}]
    (c,) = pod["spec"]["containers"]
    assert c["image"] == init["image"] == "registry.example.com/lingjie:0.2"
    assert c["command"] == ["lingjie", "serve", "/mnt/models", "--host", "0.0.0.0", "--port", "8080",
                            "--max-batch-size", "64", "--max-latency-ms", "2.5", "--workers", "2"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == c["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    quantities = {"cpu": "6", "memory": "4Gi", "nvidia.com/gpu": 1}
    assert c["resources"] == {"requests": quantities, "limits": quantities}
    assert c["volumeMounts"] == [{"name": "model", "mountPath": "/mnt/models", "readOnly": True}]
    for container in (c, init):  # credentials only as references to Secrets
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert refs == {"OSS_ACCESS_KEY_SECRET": {"name": "oss-creds", "key": "secret", "optional": False}}
        assert {e["name"]: e["value"] for e in container["env"] if "value" in e}["OMP_NUM_THREADS"] == "2"
        assert container["envFrom"] == [{"secretRef": {"name": "oss-ids", "optional": False}}]

    assert svc["apiVersion"] == "v1" and svc["kind"] == "Service" and svc["spec"]["selector"] == labels
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]

    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 3
    (kc,) = predictor["containers"]
    assert kc["name"] == "kserve-container" and kc["command"] == c["command"] and kc["image"] == c["image"]
    assert {"name": "PROTOCOL", "value": "v2"} in kc["env"]  # a custom predictor's protocolVersion v2
    assert kc["readinessProbe"] == c["readinessProbe"] and "startupProbe" not in kc
    assert kc["ports"] == [{"containerPort": 8080, "protocol": "TCP"}] and kc["resources"] == c["resources"]
    assert predictor["initContainers"] == pod["spec"]["initContainers"]
    assert predictor["volumes"] == pod["spec"]["volumes"]


def test_model_sources_and_flags(tmp_path: Path) -> None:
    docs = _render(tmp_path, ["hardware.model_uri=pvc://models/movielens/3", "hardware.serving.batching=false",
                              "hardware.serving.model_name=ctr", "hardware.serving.name=CTR_Ranker.v2"])
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]
    assert docs["deployment.yaml"]["metadata"]["name"] == "ctr-ranker-v2"
    assert pod["volumes"] == [{"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}]
    assert "initContainers" not in pod
    command = pod["containers"][0]["command"]
    assert command[2] == "/mnt/models/movielens/3" and command[-3:] == ["--no-batching", "--model-name", "ctr"]
    assert "resources" in pod["containers"][0] and "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]

    pod = _render(tmp_path, ["hardware.model_uri=/workspace/outputs/movielens_deepfm/r1"]
                  )["deployment.yaml"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][2] == "/workspace/outputs/movielens_deepfm/r1"  # served as is
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]

    bad = {"relative/run": "is a relative path", "oss://ak:sk@bucket/run": "holds a credential"}
    for uri, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            _render(tmp_path, [f"hardware.model_uri={uri}"])
    with pytest.raises(ConfigError, match="hardware.model_uri.*what should the pods serve"):
        _render(tmp_path, [])
    name = serving_name("x" * 80)
    assert len(name) <= 40 and name[0].isalpha() and name != serving_name("x" * 81)


def test_null_model_uri_serves_the_newest_finished_remote_run(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    for run, done in (("2026-12-01_00-00-00", True), ("2026-12-02_00-00-00", True), ("2026-12-03_00-00-00", False)):
        export = remote / "movielens_deepfm" / run / "export"
        export.mkdir(parents=True)
        (export / "meta.json").write_text("{}")
        if done:
            (export.parent / "DONE").write_text("")
    docs = _render(tmp_path, [f"paths.remote_dir=file://{remote}"])  # fsspec, as oss:// or hdfs://
    init = docs["deployment.yaml"]["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][-2] == f"file://{remote}/movielens_deepfm/2026-12-02_00-00-00"  # unfinished: skipped


def _export(path: Path, version: int = 1) -> Path:
    """An export directory as ``lingjie serve`` resolves it (meta.json + its program file)."""
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"program": "model.pt2", "version": version}))
    (path / "model.pt2").write_bytes(b"program")
    (path / "features").mkdir()
    (path / "features" / "state.json").write_text("{}")
    return path


def test_fetch_copies_export_run_or_newest_version(tmp_path: Path) -> None:
    from trainer.serve.repository import resolve

    export = _export(tmp_path / "store" / "export-a")
    dest = fetch_model(f"file://{export}", tmp_path / "mnt1")
    assert resolve(dest).export_dir == dest and (dest / "features" / "state.json").exists()

    run = tmp_path / "store" / "run-b"
    _export(run / "export")
    (run / "config.yaml").write_text("experiment_name: movielens_deepfm\n")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch-0001.pt").write_bytes(b"big")  # not copied: serving needs the export
    dest = fetch_model(f"file://{run}", tmp_path / "mnt2")
    assert sorted(p.name for p in dest.iterdir()) == ["config.yaml", "export"]
    assert resolve(dest).export_dir == dest / "export"

    repo = tmp_path / "store" / "repo"
    _export(repo / "2", 2)
    _export(repo / "10", 10)
    (repo / "11").mkdir()  # a version still being copied in: no meta.json yet
    assert main(["fetch", f"file://{repo}", str(tmp_path / "mnt3")]) == 0
    resolved = resolve(tmp_path / "mnt3")
    assert resolved.version == "10" and sorted(p.name for p in (tmp_path / "mnt3").iterdir()) == ["10"]
    assert main(["fetch", f"file://{tmp_path / 'store' / 'repo' / '11'}", str(tmp_path / "mnt4")]) == 2


# ------------------------------------------------------------------ a loopback Kubernetes API
class _ApiServer(QuietHandler):
    """Enough of the Kubernetes REST API for Deployments, Services and InferenceServices: create,
    read, and replace carrying the stored resourceVersion (else 409, as the real server)."""

    objects: dict[str, dict[str, Any]] = {}
    requests: list[tuple[str, str]] = []
    kserve_installed = True
    lock = threading.Lock()

    def _handle(self) -> None:
        body = json.loads(self.read_body() or b"{}")
        with self.lock:
            self.requests.append((self.command, self.path.split("?")[0]))
            parts = self.path.split("?")[0].strip("/").split("/")
            collection = "/".join(parts[:6] if parts[0] == "apis" else parts[:5])
            known = collection.endswith(("/deployments", "/services")) or \
                (collection.endswith("/inferenceservices") and self.kserve_installed)
            if not known:
                return self._status(404, "NotFound", "the server could not find the requested resource")
            name = parts[-1] if self.command in ("GET", "PUT") else body.get("metadata", {}).get("name")
            key = f"{collection}/{name}"
            if self.command == "POST":
                if key in self.objects:
                    return self._status(409, "AlreadyExists", f"{key} already exists")
                return self._store(201, key, body, "1")
            if key not in self.objects:
                return self._status(404, "NotFound", f"{key} not found")
            stored = self.objects[key]["metadata"]["resourceVersion"]
            if self.command == "GET":
                return self.reply(200, json.dumps(self.objects[key]).encode(), content_type="application/json")
            if body["metadata"].get("resourceVersion") != stored:
                return self._status(409, "Conflict", "the object has been modified")
            self._store(200, key, body, str(int(stored) + 1))

    do_POST = do_PUT = do_GET = _handle

    def _store(self, code: int, key: str, body: dict[str, Any], version: str) -> None:
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        self.objects[key] = body
        self.reply(code, json.dumps(body).encode(), content_type="application/json")

    def _status(self, code: int, reason: str, message: str) -> None:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                "reason": reason, "code": code}
        self.reply(code, json.dumps(body).encode(), content_type="application/json")


def _stripped(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "resourceVersion"}}


def test_submit_applies_and_then_replaces_with_the_kubernetes_client(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes")  # the k8s extra
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    _ApiServer.objects, _ApiServer.requests, _ApiServer.kserve_installed = {}, [], True
    server = LoopbackServer(_ApiServer).start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, f"http://127.0.0.1:{server.port}")))
        docs = _render(tmp_path, [f"hardware.model_uri={MODEL}", "hardware.namespace=team-a"])
        submit(docs, "team-a", "both", tmp_path / "k8s")
        base = "/apis/apps/v1/namespaces/team-a"
        assert _ApiServer.requests == [
            ("POST", f"{base}/deployments"), ("POST", "/api/v1/namespaces/team-a/services"),
            ("POST", "/apis/serving.kserve.io/v1beta1/namespaces/team-a/inferenceservices")]
        stored = {k.split("/")[-2]: _stripped(v) for k, v in _ApiServer.objects.items()}
        assert stored == {"deployments": docs["deployment.yaml"], "services": docs["service.yaml"],
                          "inferenceservices": docs["inferenceservice.yaml"]}

        # the next render of the experiment replaces all three in place (read, then PUT with the version)
        docs = _render(tmp_path, ["hardware.model_uri=oss://models/runs/movielens_deepfm/r2",
                                  "hardware.namespace=team-a"])
        submit(docs, "team-a", "both", tmp_path / "k8s")
        assert [m for m, _ in _ApiServer.requests[3:]] == ["POST", "GET", "PUT"] * 3
        assert all(v["metadata"]["resourceVersion"] == "2" for v in _ApiServer.objects.values())
        dep = _ApiServer.objects["apis/apps/v1/namespaces/team-a/deployments/movielens-deepfm"]
        assert dep["spec"]["template"]["metadata"]["annotations"]["lingjie.io/model-uri"].endswith("/r2")

        _ApiServer.kserve_installed, _ApiServer.objects = False, {}
        with pytest.raises(LingjieError, match="InferenceService team-a/movielens-deepfm: 404 .*is KServe installed"):
            submit(docs, "team-a", "kserve", tmp_path / "k8s")
    finally:
        server.stop()


def test_submit_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    docs = _render(tmp_path, [f"hardware.model_uri={MODEL}"])
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(ConfigError, match="hardware.submit.*no Kubernetes cluster is configured.*kubectl apply -f"):
        submit(docs, "default", "both", tmp_path / "k8s")
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # an environment without the client
    with pytest.raises(ConfigError, match=r"the kubernetes client is not installed \(pip install 'lingjie\[k8s\]'\)"):
        submit(docs, "default", "both", tmp_path / "k8s")
