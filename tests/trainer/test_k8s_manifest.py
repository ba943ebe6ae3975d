"""hardware=k8s_pytorchjob / k8s_tfjob: the rendered Kubeflow manifests, the rendered worker
command run here as the operator would run it, and hardware.submit through the real
``kubernetes`` client (against no cluster, and against a loopback API-server emulator)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.emulators._http import LoopbackServer, QuietHandler
from trainer.launch.k8s import job_name
from trainer.launch.ports import free_port

SMALL = ["data.limit_train_rows=3000", "data.limit_eval_rows=1000", "data.batch_size=256",
         "trainer.epochs=1", "trainer.progress_bar=false"]


def _render(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> tuple[Path, dict, dict]:
    run = tmp_path / "run"
    proc = run_cli([*args, f"hydra.run.dir={run}"], cwd=tmp_path, env=env)
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run}"
    assert f"kubectl apply -f {run / 'k8s'}" in proc.stderr + proc.stdout
    info = json.loads((run / "run_info.json").read_text())  # the submission records itself
    assert info["mode"] == "train:k8s" and info["status"] == "finished", info
    docs = {p.name: yaml.safe_load(p.read_text()) for p in (run / "k8s").glob("*.yaml")}
    configmap = docs.pop("configmap.yaml")
    (job,) = docs.values()
    return run, configmap, job


def _container(replica: dict) -> dict:
    (container,) = replica["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, str]:
    """The plain ``value:`` entries (``valueFrom`` ones come from Kubernetes objects)."""
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _same_config_but_pod_keys(pod_yaml: str, run_config: Path, pod_run_dir: str, output_dir: str) -> None:
    pod, ran = yaml.safe_load(pod_yaml), yaml.safe_load(run_config.read_text())
    assert ran["hardware"]["launcher"] == "k8s"
    assert pod["hardware"]["launcher"] == "local"  # a pod trains; it does not launch again
    assert pod["paths"]["run_dir"] == pod_run_dir and pod["paths"]["output_root"] == output_dir
    for cfg in (pod, ran):
        cfg["hardware"]["launcher"] = cfg["hardware"]["submit"] = None
        cfg["paths"]["run_dir"] = cfg["paths"]["output_root"] = None
    assert pod == ran


def test_pytorchjob_manifest(tmp_path: Path) -> None:
    run, configmap, job = _render(tmp_path, [
        "+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", "hardware.replicas=3",
        "hardware.image=registry.example.com/lingjie:0.1", "hardware.namespace=ml", "hardware.resources.gpu=1",
        "hardware.resources.cpu='6'", "hardware.device=cuda", '+hardware.env.NCCL_DEBUG="INFO"',
        "hardware.restart_policy=ExitCode", "hardware.backoff_limit=5", *SMALL])
    name = job_name("movielens_deepfm", run.name, 2)
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    assert job["metadata"] == {"name": name, "namespace": "ml", "labels": job["metadata"]["labels"]}
    assert job["spec"]["runPolicy"] == {"backoffLimit": 5, "cleanPodPolicy": "None"}
    assert "elasticPolicy" not in job["spec"]
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert {k: v["replicas"] for k, v in specs.items()} == {"Master": 1, "Worker": 2}
    pod_run_dir = f"/workspace/outputs/movielens_deepfm/{run.name}"
    for replica in specs.values():
        assert replica["restartPolicy"] == "ExitCode"
        c = _container(replica)
        assert c["name"] == "pytorch" and c["image"] == "registry.example.com/lingjie:0.1"
        assert c["command"] == ["python", "-m", "trainer.worker", "--config", "/etc/lingjie/config.yaml",
                                "--run-dir", pod_run_dir]
        quantities = {"cpu": "6", "memory": "16Gi", "nvidia.com/gpu": 1}
        assert c["resources"] == {"requests": quantities, "limits": quantities}
        env = _env(c)
        assert env["NCCL_DEBUG"] == "INFO" and env["TF_CPP_MIN_LOG_LEVEL"] == "3"
        assert not {"MASTER_ADDR", "RANK", "WORLD_SIZE", "LINGJIE_BACKEND"} & set(env)  # the operator's job
        assert c["volumeMounts"] == [{"name": "lingjie-config", "mountPath": "/etc/lingjie", "readOnly": True}]
        assert replica["template"]["spec"]["volumes"] == [
            {"name": "lingjie-config", "configMap": {"name": f"{name}-config"}}]
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == f"{name}-config"
    assert configmap["metadata"]["namespace"] == "ml"
    _same_config_but_pod_keys(configmap["data"]["config.yaml"], run / "config.yaml", pod_run_dir,
                              "/workspace/outputs")
    assert not (run / "metrics.json").exists()  # rendering trains nothing


def test_elastic_pytorchjob_runs_torchrun_workers(tmp_path: Path) -> None:
    _, _, job = _render(tmp_path, ["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob",
                                   "hardware.replicas=2", "hardware.elastic.min_replicas=1",
                                   "hardware.elastic.max_replicas=4", "hardware.elastic.max_restarts=7"])
    assert job["spec"]["elasticPolicy"] == {"minReplicas": 1, "maxReplicas": 4, "maxRestarts": 7,
                                            "rdzvBackend": "c10d"}
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert list(specs) == ["Worker"] and specs["Worker"]["replicas"] == 2
    command = _container(specs["Worker"])["command"]
    assert command[:5] == ["python", "-m", "torch.distributed.run", "--module", "trainer.worker"]


def test_tfjob_manifest(tmp_path: Path) -> None:
    run, configmap, job = _render(tmp_path, [
        "+experiment=movielens_deepfm", "trainer.backend=tf", "hardware=k8s_tfjob", "hardware.num_workers=3",
        "hardware.image=lingjie-tf:1", "hardware.resources.memory=4Gi", *SMALL])
    assert (run / "k8s" / "tfjob.yaml").exists()
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    specs = job["spec"]["tfReplicaSpecs"]
    assert list(specs) == ["Worker"] and specs["Worker"]["replicas"] == 3
    c = _container(specs["Worker"])
    assert c["name"] == "tensorflow" and c["image"] == "lingjie-tf:1"
    pod_run_dir = f"/workspace/outputs/movielens_deepfm/{run.name}"
    assert c["command"][-2:] == ["--run-dir", pod_run_dir] and c["command"][:3] == ["python", "-m", "trainer.worker"]
    assert c["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}  # no GPU key when gpu=0
    env = _env(c)
    assert env["LINGJIE_BACKEND"] == "tf" and "TF_CONFIG" not in env  # the operator sets TF_CONFIG
    assert job["spec"]["runPolicy"] == {"backoffLimit": 3, "cleanPodPolicy": "None"}
    _same_config_but_pod_keys(configmap["data"]["config.yaml"], run / "config.yaml", pod_run_dir,
                              "/workspace/outputs")


def test_job_names_are_dns_safe() -> None:
    name = job_name("My_Experiment.V2", "2026-01-02_03-04-05")
    assert name == "my-experiment-v2-2026-01-02-03-04-05"
    long = job_name("x" * 80, "2026-01-02_03-04-05", 11)
    assert len(long + "-worker-11") <= 63 and long[0].isalpha() and long[-1].isalnum()
    assert long != job_name("x" * 80, "2026-01-02_03-04-06", 11)  # the run stays in the name
    assert job_name("42", "0")[0].isalpha()


def test_wrong_backend_for_kind_is_one_error(tmp_path: Path) -> None:
    proc = run_cli(["+experiment=movielens_deepfm", "hardware=k8s_tfjob"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: config error at 'hardware.kind': a TFJob runs TF workers" in proc.stderr


@pytest.mark.slow
def test_rendered_pytorchjob_command_trains_as_two_ranks(tmp_path: Path, data_dir: Path) -> None:
    """Run the rendered worker command as two processes with the env the operator gives the
    Master and the Worker pod: the job trains as one world of 2; a credential reaches the pods
    only as the variable their Secret reference feeds (the ConfigMap names it, never holds it)."""
    secret = "pod-secret-3b1f09"  # the launcher's and the pods' value of the credential
    run, configmap, job = _render(tmp_path, [
        "+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", "hardware.replicas=2", "hardware.threads=1",
        '+hardware.env.OMP_NUM_THREADS="1"', "+data.storage_options.secret=${oc.env:OSS_ACCESS_KEY_SECRET}",
        "+hardware.env.OSS_ACCESS_KEY_SECRET={secretKeyRef:{name:oss-creds,key:secret}}", *SMALL],
        env={"OSS_ACCESS_KEY_SECRET": secret})
    assert not [p for p in run.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    cfg_file = tmp_path / "etc-lingjie" / "config.yaml"  # stands in for the mounted ConfigMap
    cfg_file.parent.mkdir()
    cfg_file.write_text(configmap["data"]["config.yaml"])
    out = tmp_path / "pod-volume" / "run"
    port = free_port()
    specs = job["spec"]["pytorchReplicaSpecs"]
    procs = []
    for rank, role in enumerate(["Master", "Worker"]):
        container = _container(specs[role])
        command = [sys.executable if a == "python" else a for a in container["command"]]
        command[command.index("--config") + 1] = str(cfg_file)
        command[command.index("--run-dir") + 1] = str(out)
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert refs == {"OSS_ACCESS_KEY_SECRET": {"name": "oss-creds", "key": "secret", "optional": False}}
        env = {**os.environ, "PYTHONPATH": str(ROOT), **_env(container), "OSS_ACCESS_KEY_SECRET": secret,
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": str(rank)}
        for key in ("LINGJIE_WORKER", "TF_CONFIG", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT"):
            env.pop(key, None)
        procs.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-4000:]
    assert outputs[0].strip().splitlines()[-1] == f"run directory: {out}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["finished"]
    assert metrics["final"]["eval/rows"] == 1000
    assert (out / "DONE").exists() and (out / "export" / "meta.json").exists()
    pod_cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert pod_cfg["hardware"]["launcher"] == "local"
    # the pods resolved the credential from their Secret-fed variable and wrote it nowhere
    assert pod_cfg["data"]["storage_options"]["secret"] == "${oc.env:OSS_ACCESS_KEY_SECRET}"
    assert not [p for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_submit_without_cluster_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes")  # the k8s extra
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod: no in-cluster config
    run = tmp_path / "run"
    proc = run_cli(["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", "hardware.submit=true",
                    f"hydra.run.dir={run}"], cwd=tmp_path, check=False,
                   env={"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("error: config error at 'hardware.submit': no Kubernetes cluster is configured")
    assert "KUBECONFIG" in errors[0] and "service account" in errors[0]
    assert f"kubectl apply -f {run / 'k8s'}" in errors[0]
    assert (run / "k8s" / "pytorchjob.yaml").exists() and (run / "k8s" / "configmap.yaml").exists()


def test_submit_without_kubernetes_client_is_one_clear_error(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "kubernetes"  # an environment where the client is not importable
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named kubernetes')\n")
    proc = run_cli(["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", "hardware.submit=true",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False,
                   env={"PYTHONPATH": f"{shadow.parent}{os.pathsep}{ROOT}"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: config error at 'hardware.submit': the kubernetes client is not installed" in proc.stderr
    assert "lingjie[k8s]" in proc.stderr


def test_submit_to_unreachable_cluster_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes")  # the k8s extra
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = _kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    proc = run_cli(["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", "hardware.submit=true",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False,
                   env={"KUBECONFIG": str(kubeconfig)}, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "error: config error at 'hardware.submit': cannot reach the Kubernetes API at http://127.0.0.1:" \
        in proc.stderr


# ------------------------------------------------------------------ a loopback Kubernetes API
def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


class _ApiServer(QuietHandler):
    """Enough of the Kubernetes REST API for ConfigMap create/replace and kubeflow.org/v1 jobs."""

    objects: dict[str, dict[str, Any]] = {}
    requests: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def _handle(self) -> None:
        body = json.loads(self.read_body() or b"{}")
        with self.lock:
            self.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
            parts = self.path.split("?")[0].strip("/").split("/")
            collection = "/".join(parts[:6] if parts[0] == "apis" else parts[:5])
            known = collection.endswith(("/configmaps", "/pytorchjobs", "/tfjobs"))
            if not known:
                return self._status(404, "NotFound", "the server could not find the requested resource")
            key = f"{collection}/{body.get('metadata', {}).get('name')}"
            if self.command == "POST":
                if key in self.objects:
                    return self._status(409, "AlreadyExists", f"{key} already exists")
                self.objects[key] = body
                return self.reply(201, json.dumps(body).encode(), content_type="application/json")
            if self.command == "PUT" and key in self.objects:
                self.objects[key] = body
                return self.reply(200, json.dumps(body).encode(), content_type="application/json")
        self._status(404, "NotFound", "not found")

    do_POST = do_PUT = _handle

    def _status(self, code: int, reason: str, message: str) -> None:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                "reason": reason, "code": code}
        self.reply(code, json.dumps(body).encode(), content_type="application/json")


def test_submit_applies_both_manifests_with_the_kubernetes_client(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes")  # the k8s extra
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    _ApiServer.objects, _ApiServer.requests = {}, []
    server = LoopbackServer(_ApiServer).start()
    try:
        env = {"KUBECONFIG": str(_kubeconfig(tmp_path, f"http://127.0.0.1:{server.port}"))}
        run, configmap, job = _render(tmp_path, ["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob",
                                                 "hardware.submit=true", "hardware.namespace=team-a"], env=env)
        name = job["metadata"]["name"]
        assert [(m, p) for m, p, _ in _ApiServer.requests] == [
            ("POST", "/api/v1/namespaces/team-a/configmaps"),
            ("POST", "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs")]
        assert all(auth == "Bearer s3cret" for _, _, auth in _ApiServer.requests)
        assert _ApiServer.objects[f"api/v1/namespaces/team-a/configmaps/{name}-config"] == configmap
        assert _ApiServer.objects[f"apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs/{name}"] == job

        # the same job again: the ConfigMap is replaced, the existing job is one clear error
        from lingjie.errors import LingjieError
        from trainer.launch.k8s import submit

        with pytest.raises(LingjieError, match=f"409 .*a PyTorchJob named '{name}' already exists.*kubectl apply"):
            monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
            submit(configmap, job, "team-a", run / "k8s")
        assert [m for m, _, _ in _ApiServer.requests[2:]] == ["POST", "PUT", "POST"]
    finally:
        server.stop()
