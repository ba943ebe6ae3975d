"""The package list for setuptools; everything else (metadata, dependencies, extras, scripts)
is in pyproject.toml.

The config tree stays at ``configs/`` in the repository (the design card's top level) and ships
inside the wheel as ``lingjie/configs`` (data only), where :mod:`lingjie.config_tree` finds it.
``hydra_plugins`` is a namespace package (no ``__init__.py``): Hydra discovers the Optuna
sweeper there.
"""
from setuptools import find_namespace_packages, find_packages, setup

CODE = ["lingjie*", "trainer*", "easyrec*", "easycv*", "easynlp*", "automl*", "dataio*"]

setup(
    packages=find_packages(include=CODE)
    + find_namespace_packages(include=["hydra_plugins", "hydra_plugins.*"], exclude=["*.__pycache__"])
    + ["lingjie.configs"],
    package_dir={"lingjie.configs": "configs"},
)
