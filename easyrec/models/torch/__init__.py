"""PyTorch implementations of the recommendation model zoo (imported lazily by
``easyrec.models.specs.build_model``; nothing here is needed to validate a config)."""
