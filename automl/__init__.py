"""AutoML on Optuna: the Hydra sweeper (sweeper*.py, study.py, reporting.py), feature generation and selection."""
