"""Secrets at rest (issue 17): no credential in clear in config.yaml, the checkpoint metadata,
the logs, the Kubernetes manifests or the remote mirror; workers and pods still get them."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dataio.credentials import looks_secret_env, looks_secret_key, redact_config
from lingjie.errors import ConfigError
from tests.conftest import run_cli
from tests.reliability.case import SMALL
from trainer.compose import compose_config
from trainer.run_dir import RunDir
from trainer.schema.validate import validate
from trainer.redaction import config_at_rest, meta_at_rest, secret_env_name

ENV_SECRET = "env-s3cret-9f8e7d6c"
LITERAL = "typed-literal-pw-4321"
FROM_ENV = "+data.storage_options.secret=${oc.env:OSS_ACCESS_KEY_SECRET}"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", ENV_SECRET)
    monkeypatch.delenv("LINGJIE_WORKER", raising=False)
    # config_at_rest may export the literal for local workers: monkeypatch removes it afterwards
    monkeypatch.setenv(secret_env_name("data.storage_options.password"), "unset-by-teardown")
    monkeypatch.delenv(secret_env_name("data.storage_options.password"))
    return monkeypatch


def test_what_looks_like_a_credential() -> None:
    for key in ("secret", "password", "sasl_plain_password", "access_key", "access_key_secret", "token",
                "sts_token", "accessKeySecret", "stsToken", "api_key", "x-oss-security-token", "db_passwd"):
        assert looks_secret_key(key), key
    for key in ("key", "tokenizer", "max_tokens", "pad_token", "eos_token", "seed_key", "keys", "name"):
        assert not looks_secret_key(key), key
    for name in ("OSS_ACCESS_KEY_SECRET", "ODPS_ACCESS_KEY", "HF_TOKEN", "KAFKA_SASL_PASSWORD",
                 "AWS_SECRET_ACCESS_KEY", "MY_SERVICE_KEY", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        assert looks_secret_env(name), name
    for name in ("PWD", "OLDPWD", "HOME", "TOKENIZERS_PARALLELISM", "OSS_ACCESS_KEY_ID", "KEY"):
        assert not looks_secret_env(name), name


def test_redact_config_rules() -> None:
    env = {"OSS_ACCESS_KEY_SECRET": ENV_SECRET, "HOME": "/home/u", "PWD": "/work"}
    tree = {"data": {"storage_options": {"secret": ENV_SECRET, "password": LITERAL, "key": "AKID", "token": None},
                     "train_path": "kafka://user:url-pw-77@broker:9092/clicks", "note": f"x-{ENV_SECRET}-y",
                     "image_root": "/work/images"},
            "model": {"tokenizer": "bert", "pad_token": "[PAD]"}, "list": [ENV_SECRET, 3]}
    red = redact_config(tree, env)
    so = red.tree["data"]["storage_options"]
    assert so == {"secret": "${oc.env:OSS_ACCESS_KEY_SECRET}", "password": "***", "key": "AKID", "token": None}
    assert red.tree["data"]["train_path"] == "kafka://user:***@broker:9092/clicks"
    assert red.tree["data"]["note"] == "x-${oc.env:OSS_ACCESS_KEY_SECRET}-y"
    assert red.tree["data"]["image_root"] == "/work/images"  # PWD is not a credential variable
    assert red.tree["model"] == {"tokenizer": "bert", "pad_token": "[PAD]"}
    assert red.tree["list"] == ["${oc.env:OSS_ACCESS_KEY_SECRET}", 3]
    assert red.literals == {"data.storage_options.password": LITERAL,
                            "data.train_path": "kafka://user:url-pw-77@broker:9092/clicks"}
    assert red.from_env == {"OSS_ACCESS_KEY_SECRET": ENV_SECRET}
    assert tree["data"]["storage_options"]["secret"] == ENV_SECRET  # the running config is untouched


def _cfg(*overrides: str) -> dict:
    return compose_config(["+experiment=movielens_deepfm", FROM_ENV,
                           f"+data.storage_options.password={LITERAL}", *overrides])


def test_local_run_writes_interpolation_and_stars(secret_env: pytest.MonkeyPatch) -> None:
    cfg = _cfg()
    text = config_at_rest(cfg)
    assert ENV_SECRET not in text and LITERAL not in text
    written = yaml.safe_load(text)["data"]["storage_options"]
    assert written == {"secret": "${oc.env:OSS_ACCESS_KEY_SECRET}", "password": "***"}
    assert secret_env_name("data.storage_options.password") not in os.environ
    assert cfg["data"]["storage_options"]["password"] == LITERAL


def test_local_workers_get_literal_secrets_through_the_environment(secret_env: pytest.MonkeyPatch) -> None:
    """torchrun / TF workers run `trainer.worker --config <run>/config.yaml`, which resolves the
    file: they must see the very config the launcher runs, while the file holds no secret."""
    for hardware in ("ddp_cpu", "tf_multiworker"):
        cfg = _cfg(f"hardware={hardware}")
        text = config_at_rest(cfg)
        assert ENV_SECRET not in text and LITERAL not in text
        name = secret_env_name("data.storage_options.password")
        assert yaml.safe_load(text)["data"]["storage_options"]["password"] == "${oc.env:" + name + "}"
        assert os.environ[name] == LITERAL
        assert OmegaConf.to_container(OmegaConf.create(text), resolve=True) == cfg  # what trainer.worker runs
        # a worker redacts again: the variable's name marks it a credential, so no literal is left
        secret_env.setenv("LINGJIE_WORKER", "1")
        assert config_at_rest(cfg) == text
        secret_env.delenv("LINGJIE_WORKER")


def test_k8s_refuses_literal_secrets_in_one_line(secret_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        config_at_rest(_cfg("hardware=k8s_pytorchjob"))
    text = str(err.value)
    assert "data.storage_options.password" in text and "${oc.env:VAR}" in text and "secretKeyRef" in text
    assert LITERAL not in text and "\n" not in text
    cfg = compose_config(["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob",
                          f"+hardware.env.DB_PASSWORD={LITERAL}"])
    with pytest.raises(ConfigError, match=r"hardware.env.DB_PASSWORD.*secretKeyRef") as err:
        config_at_rest(cfg)
    assert LITERAL not in str(err.value)


def test_checkpoint_meta_is_redacted_once_for_every_domain(secret_env: pytest.MonkeyPatch) -> None:
    meta = {"config": {"root": {"data": {"storage_options": {"secret": ENV_SECRET, "password": LITERAL}}}},
            "feature_state": {"user_id": ["a", "b"]}}
    out = meta_at_rest(meta)
    assert out["config"]["root"]["data"]["storage_options"] == {"secret": "${oc.env:OSS_ACCESS_KEY_SECRET}",
                                                                "password": "***"}
    assert out["feature_state"] is meta["feature_state"]
    assert meta["config"]["root"]["data"]["storage_options"]["password"] == LITERAL  # not mutated
    assert meta_at_rest({"no": "config"}) == {"no": "config"}


def test_log_records_show_no_secret(secret_env: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        config_at_rest(_cfg())
        logging.getLogger("lingjie.anything").warning("opening with %s and %s", ENV_SECRET, LITERAL)
    finally:
        root.removeHandler(handler)
    assert "opening with *** and ***" in stream.getvalue()


def _k8s(tmp_path: Path, *overrides: str) -> tuple[dict, dict]:
    from trainer.launch.k8s import render

    cfg = compose_config(["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", FROM_ENV, *overrides])
    docs = render(validate(cfg), RunDir(tmp_path / "run"), config_at_rest(cfg))
    return docs["configmap.yaml"], docs["pytorchjob.yaml"]


def test_k8s_secret_references_render_as_value_from_and_env_from(secret_env: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    configmap, job = _k8s(tmp_path, "+hardware.env.OSS_ACCESS_KEY_SECRET={secretKeyRef:{name:oss-creds,key:secret}}",
                          "+hardware.env.SETTINGS={configMapKeyRef:{name:cfg,key:s,optional:true}}",
                          "hardware.env_from=[{secretRef:{name:kafka-creds}},{configMapRef:{name:shared},prefix:X_}]",
                          "+hardware.env.NCCL_DEBUG=INFO")
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        (container,) = replica["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["OSS_ACCESS_KEY_SECRET"] == {"name": "OSS_ACCESS_KEY_SECRET", "valueFrom": {
            "secretKeyRef": {"name": "oss-creds", "key": "secret", "optional": False}}}
        assert env["SETTINGS"]["valueFrom"] == {"configMapKeyRef": {"name": "cfg", "key": "s", "optional": True}}
        assert env["NCCL_DEBUG"] == {"name": "NCCL_DEBUG", "value": "INFO"}
        assert container["envFrom"] == [{"secretRef": {"name": "kafka-creds", "optional": False}},
                                        {"configMapRef": {"name": "shared", "optional": False}, "prefix": "X_"}]
    pod_cfg = configmap["data"]["config.yaml"]
    assert ENV_SECRET not in pod_cfg and ENV_SECRET not in str(job)
    assert yaml.safe_load(pod_cfg)["data"]["storage_options"]["secret"] == "${oc.env:OSS_ACCESS_KEY_SECRET}"


def test_k8s_refuses_plain_credentials_and_pods_without_the_secret(secret_env: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hardware.env.OSS_ACCESS_KEY_SECRET.*secretKeyRef") as err:
        _k8s(tmp_path, "+hardware.env.OSS_ACCESS_KEY_SECRET=${oc.env:OSS_ACCESS_KEY_SECRET}")
    assert ENV_SECRET not in str(err.value)
    with pytest.raises(ConfigError, match=r"hardware.env.INNOCENT_NAME.*secretKeyRef"):
        _k8s(tmp_path, "+hardware.env.INNOCENT_NAME=${oc.env:OSS_ACCESS_KEY_SECRET}")  # the value gives it away
    with pytest.raises(ConfigError, match=r"reads the credential \$\{oc.env:OSS_ACCESS_KEY_SECRET\} but the pods"):
        _k8s(tmp_path)
    _k8s(tmp_path, "hardware.env_from=[{secretRef:{name:oss-creds}}]")  # the Secret may hold it: accepted


@pytest.mark.parametrize("override, message", [
    ("+hardware.env.X={secretKeyref:{name:a,key:b}}", r"hardware.env.X.secretKeyref.*did you mean.*secretKeyRef"),
    ("+hardware.env.X={secretKeyRef:{name:a}}", r"hardware.env.X.secretKeyRef.key.*required"),
    ("+hardware.env.X={}", r"hardware.env.X.*exactly one of secretKeyRef or configMapKeyRef"),
    ("+hardware.env.X={secretKeyRef:{name:a,key:b},configMapKeyRef:{name:a,key:b}}", r"exactly one"),
    ("+hardware.env.X=[a,b]", r"hardware.env.X.*expected a string or \{secretKeyRef"),
    ("hardware.env_from=[{prefix:A_}]", r"hardware.env_from\[0\].*exactly one of secretRef or configMapRef"),
    ("hardware.env_from=[{secretRef:{nam:a}}]", r"hardware.env_from\[0\].secretRef.nam.*did you mean"),
])
def test_bad_secret_reference_shapes_are_one_error(override: str, message: str) -> None:
    cfg = compose_config(["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob", override])
    with pytest.raises(ConfigError, match=message) as err:
        validate(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_cli_run_leaves_the_secret_in_no_file(tmp_path: Path, data_dir: Path) -> None:
    """The real CLI with a credential from the environment and one typed on the command line,
    mirrored to a local remote_dir: no file of the run dir or the mirror holds either value,
    and the run's config / checkpoint say where the credential comes from."""
    from trainer.checkpoint_io import read_meta

    out, mirror = tmp_path / "out", tmp_path / "mirror"
    proc = run_cli([*SMALL, FROM_ENV, f"+data.storage_options.password={LITERAL}", f"paths.output_root={out}",
                    f"paths.remote_dir=file://{mirror}"], cwd=tmp_path, env={"OSS_ACCESS_KEY_SECRET": ENV_SECRET})
    files = [p for p in [*out.rglob("*"), *mirror.rglob("*")] if p.is_file()]
    names = {p.name for p in files}
    assert {"config.yaml", "metrics.json", "epoch-0001.pt", "train.log", "run_info.json", "DONE"} <= names, names
    assert any(mirror in p.parents and p.name == "config.yaml" for p in files)
    leaked = [str(p) for p in files if ENV_SECRET.encode() in p.read_bytes() or LITERAL.encode() in p.read_bytes()]
    assert not leaked, f"a secret is written in {leaked}"
    assert ENV_SECRET not in proc.stdout + proc.stderr and LITERAL not in proc.stdout + proc.stderr
    (ckpt,) = [p for p in files if p.name == "epoch-0001.pt" and out in p.parents]
    saved = read_meta(ckpt)["config"]["root"]["data"]["storage_options"]
    assert saved == {"secret": "${oc.env:OSS_ACCESS_KEY_SECRET}", "password": "***"}
