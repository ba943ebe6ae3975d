"""Feature generation: featuretools Deep Feature Synthesis with cutoff times + cross features.

``python -m automl features +experiment=NAME`` (see :mod:`automl.features.cli`) composes the
experiment, builds its entity tables (:mod:`.entities`), runs DFS so every aggregate of a row
uses only interactions strictly before the row's timestamp (:mod:`.dfs`), proposes combo
(cross) features (:mod:`.crosses`), and writes the augmented data plus a config snippet to
include (:mod:`.snippet`).
"""
