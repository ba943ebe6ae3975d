"""Feature selection: variational (hard-concrete) dropout gates trained with the model
(:mod:`.gates`), permutation importance on eval (:mod:`.permutation`), the selected-features
snippet and bar chart (:mod:`.report`), and an optional Optuna search of the subset size
(:mod:`.search`). CLI: ``python -m automl select +experiment=NAME`` (:mod:`.cli`).
"""
