"""Reliability rows: secrets at rest (README "Secrets"). Nothing here is submitted: the k8s
rows stop before rendering, and no row may leave the secret in any file under the temp dir."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

from tests.reliability.case import SMALL, Case

SECRET = "plain-s3cret-value-5150"
K8S = ["+experiment=movielens_deepfm", "hardware=k8s_pytorchjob"]


def _nowhere(value: str) -> Callable[[Path, subprocess.CompletedProcess], None]:
    """A check: no file under the temp dir, and neither output stream, holds ``value``."""
    def check(tmp: Path, proc: subprocess.CompletedProcess) -> None:
        leaked = [str(p) for p in tmp.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]
        assert not leaked, f"{value!r} written in {leaked}"
        assert value not in proc.stdout + proc.stderr
        assert not list(tmp.rglob("k8s/*.yaml")), "refused, yet manifests were rendered"
    return check


CASES: list[Case] = [
    Case("k8s-plain-credential-env", [*K8S, f"+hardware.env.OSS_ACCESS_KEY_SECRET={SECRET}"],
         message=r"hardware\.env\.OSS_ACCESS_KEY_SECRET.*secretKeyRef", check=_nowhere(SECRET),
         before="rendered as an inline `value:` in the PyTorchJob (and the ConfigMap)"),
    Case("k8s-credential-from-env-as-plain-value",
         [*K8S, "+hardware.env.OSS_ACCESS_KEY_SECRET=${oc.env:OSS_ACCESS_KEY_SECRET}"],
         env={"OSS_ACCESS_KEY_SECRET": SECRET},
         message=r"hardware\.env\.OSS_ACCESS_KEY_SECRET.*secretKeyRef", check=_nowhere(SECRET),
         before="the resolved value rendered inline in the PyTorchJob"),
    Case("k8s-literal-storage-secret", [*K8S, f"+data.storage_options.secret={SECRET}"],
         message=r"data\.storage_options\.secret.*\$\{oc\.env:VAR\}.*secretKeyRef", check=_nowhere(SECRET),
         before="the secret written in clear into config.yaml and the ConfigMap"),
    Case("k8s-pods-miss-the-credential",
         [*K8S, "+data.storage_options.secret=${oc.env:OSS_ACCESS_KEY_SECRET}"],
         env={"OSS_ACCESS_KEY_SECRET": SECRET},
         message=r"reads the credential \$\{oc\.env:OSS_ACCESS_KEY_SECRET\} but the pods do not get "
                 r"OSS_ACCESS_KEY_SECRET",
         check=_nowhere(SECRET), before="the secret written in clear into config.yaml and the ConfigMap"),
    Case("k8s-bad-secret-key-ref", [*K8S, "+hardware.env.OSS_ACCESS_KEY_SECRET={secretKeyref:{name:oss,key:s}}"],
         message=r"hardware\.env\.OSS_ACCESS_KEY_SECRET\.secretKeyref.*did you mean.*secretKeyRef",
         before="error: expected a string (no Secret reference possible)"),
    Case("k8s-secret-key-ref-without-key", [*K8S, "+hardware.env.OSS_ACCESS_KEY_SECRET={secretKeyRef:{name:oss}}"],
         message=r"hardware\.env\.OSS_ACCESS_KEY_SECRET\.secretKeyRef\.key.*required",
         before="error: expected a string (no Secret reference possible)"),
    Case("k8s-env-from-without-source", [*K8S, "hardware.env_from=[{prefix:OSS_}]"],
         message=r"hardware\.env_from\[0\].*exactly one of secretRef or configMapRef",
         before="error: unknown key 'hardware.env_from'"),
    Case("local-run-literal-secret-written-as-stars", [*SMALL, f"+data.storage_options.password={SECRET}"],
         code=0, check=lambda tmp, proc: _written_as_stars(tmp, proc),
         before="the password written in clear into config.yaml and every checkpoint"),
]


def _written_as_stars(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    leaked = [str(p) for p in tmp.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked, f"{SECRET!r} written in {leaked}"
    (config,) = tmp.rglob("config.yaml")
    assert "password: '***'" in config.read_text()
