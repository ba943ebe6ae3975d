"""The domain-neutral framework. Importing the package registers the ``lingjie.run_id``
resolver, so every entry point (``python -m trainer``, the ``lingjie`` script, the compose API
of tests and automl) names run directories the same way before Hydra composes."""
from trainer.run_id import register_resolvers

register_resolvers()
