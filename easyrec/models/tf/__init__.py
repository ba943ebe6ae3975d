"""tf.keras implementations of the recommendation model zoo (imported lazily by
``easyrec.models.specs.build_model(cfg, features, backend="tf")``; nothing here is needed to
validate a config). Each module mirrors its torch twin in ``easyrec.models.torch`` one to one:
same knobs, same inputs (the flat dict of ``easyrec.features.batch``), same outputs and losses.
"""
