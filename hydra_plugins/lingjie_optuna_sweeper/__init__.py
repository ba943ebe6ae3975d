"""Lingjie's Hydra sweeper on Optuna 5 (`hydra/sweeper: lingjie_optuna`), found by Hydra's plugin
discovery in the `hydra_plugins` namespace package. The work is done in `automl.sweeper`."""
