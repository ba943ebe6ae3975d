"""Lingjie's ground floor: what every package needs and nothing else.

``lingjie.errors`` (the user-facing errors), ``lingjie.schema`` (the one field mechanism and
builder that turns YAML into typed dataclasses) and the version. It imports only the standard
library, so ``dataio``, ``trainer``, the domains and ``automl`` may all stand on it.
"""
__version__ = "0.1.0"
