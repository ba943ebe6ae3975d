"""Lingjie: declarative, config-driven training for recommendation, vision and language models.

Install what you use: `pip install -e .[torch,dev]` (tests), `[tf]`, `[automl]`, `[cloud]`, `[k8s]`, `[nlp]`, `[all]`.
Every dependency is pinned so that a fresh machine reproduces the tested environment.
"""
from setuptools import find_namespace_packages, find_packages, setup

BASE = [
    "numpy==2.4.6",
    "pandas==2.3.3",  # featuretools needs pandas<3
    "pyarrow==26.0.1",
    "fsspec==2026.9.0",
    "hydra-core==1.3.8",
    "omegaconf==2.3.0",
    "tqdm==4.70.1",
]
EXTRAS = {
    "torch": ["torch==2.13.0", "tensorboard==2.21.0"],
    "tf": ["tensorflow==2.21.0", "tensorboard==2.21.0"],
    # holidays (via featuretools): newer releases cap python-dateutil<3, which kubernetes (k8s) rules out
    "automl": ["optuna==5.0.0", "featuretools==1.31.0", "setuptools<81", "holidays==0.86",
               "matplotlib==3.11.2", "cmaes==0.13.1"],  # matplotlib: sweep plots; cmaes: sampler=cmaes
    "cloud": ["ossfs==2025.5.0", "oss2==2.18.4",  # ossfs 2025.5.0 pins oss2==2.18.4
               "pyhdfs==0.4.0", "kafka-python==3.0.12", "pyodps==0.13.2"],
    "k8s": ["kubernetes==37.0.2"],  # hardware.submit=true (rendering the manifests needs nothing extra)
    # easycv: pillow decodes images; faster-coco-eval computes the COCO box metrics (easycv.coco_eval)
    "cv": ["torch==2.13.0", "tensorboard==2.21.0", "pillow==13.0.0", "faster-coco-eval==1.8.0"],
    # easynlp: tokenizers trains/loads tokenizers (Rust; pulls huggingface-hub, never used for
    # downloads); safetensors reads pretrained encoder weights (e.g. the bundled MiniLM)
    "nlp": ["tokenizers==0.23.3", "safetensors==0.8.0"],
    "dev": ["pytest==9.2.0", "scikit-learn==1.9.1"],
    # benchmarks/bench_rec.py's torch peer (deepctr 0.9.4 on TF lives in benchmarks/.venv-peers)
    "bench": ["deepctr-torch==0.3.0", "scikit-learn==1.9.1"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="lingjie",
    version="0.1.0",
    description="Declarative, config-driven training framework (recommendation, vision, language)",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",  # SPDX expression (PEP 639); the full text ships in the wheel
    license_files=["LICENSE"],
    python_requires=">=3.11",
    # hydra_plugins is a namespace package (no __init__.py): Hydra discovers the Optuna sweeper there
    packages=find_packages(include=["lingjie*", "trainer*", "easyrec*", "easycv*", "easynlp*", "automl*", "dataio*"])
    + find_namespace_packages(include=["hydra_plugins", "hydra_plugins.*"], exclude=["*.__pycache__"]),
    include_package_data=True,
    install_requires=BASE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["lingjie=trainer.__main__:cli"]},
)
