"""Typed feature and label configs: one stdlib dataclass per feature ``type``.

The one builder, :func:`lingjie.schema.build`, turns the YAML mapping ``features.<name>:
{type: ..., ...}`` into these dataclasses (``FEATURE_TYPES`` maps the ``type`` key to the class)
and reads the :func:`lingjie.schema.F` metadata for ranges (``ge``/``gt``/``le``) and docs
(``help``). Rules that involve several fields live in each class's ``check(path)``, which
raises :class:`~lingjie.errors.ConfigError` at ``<path>.<field>`` (``path`` is the dotted
config path of the node, e.g. ``features.user_id``). Rules that involve several features (shared
tables, ``share`` targets) are checked by :class:`~easyrec.features.pipeline.FeaturePipeline`.

This module imports only the standard library (and lingjie), so config validation stays light.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from easyrec.dynamic.config import DynamicConfig
from lingjie.errors import ConfigError
from lingjie.schema import F, build, close_names

MAPPING_FIELDS = ("hash_buckets", "vocab", "num_buckets", "dynamic")


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@dataclass
class VocabConfig:
    """A vocabulary fitted on the training data: row 0 is the OOV/null bucket, then values by
    descending frequency (ties broken by the value's string form, so fitting is deterministic)."""

    min_count: int = F(1, "keep values seen at least this many times in training", ge=1)
    max_size: int | None = F(
        None, "keep at most this many values (the OOV row not counted); None = no limit", ge=1
    )

    def check(self, path: str = "") -> None:
        """Nothing to cross-check; here so every config node has the same interface."""


def _check_common(cfg: Any, path: str) -> None:
    if cfg.column is not None and not cfg.column:
        raise ConfigError(_at(path, "column"), "must be a non-empty column name or null")
    if cfg.embedding_name is not None and not cfg.embedding_name:
        raise ConfigError(_at(path, "embedding_name"), "must be a non-empty name or null")


def _check_mapping(cfg: Any, path: str) -> None:
    """At most one of hash_buckets / vocab / num_buckets / dynamic (none = a default vocabulary)."""
    given = [name for name in MAPPING_FIELDS if getattr(cfg, name) is not None]
    if len(given) > 1:
        raise ConfigError(
            _at(path, given[1]),
            f"set only one of hash_buckets, vocab, num_buckets, dynamic (got {', '.join(given)})",
        )
    if cfg.vocab is not None:
        cfg.vocab.check(_at(path, "vocab"))
    if cfg.dynamic is not None:
        cfg.dynamic.check(_at(path, "dynamic"))


def _check_separator(cfg: Any, path: str) -> None:
    if not cfg.separator:
        raise ConfigError(_at(path, "separator"), "must be a non-empty string")


@dataclass
class IdFeatureConfig:
    """One categorical value per row (user id, city, ...) -> one embedding row."""

    type: Literal["id"] = F("id", "feature type")
    column: str | None = F(None, "input column; default: the feature's own name")
    embedding_dim: int = F(16, "embedding width", ge=1)
    embedding_name: str | None = F(
        None, "embedding table name; features with the same name share one table"
    )
    hash_buckets: int | None = F(None, "hash values into this many buckets (no fitting)", ge=1)
    vocab: VocabConfig | None = F(None, "fit a vocabulary (the default when nothing is set)")
    num_buckets: int | None = F(
        None, "values are already integer ids in [0, N); others and null -> extra row N", ge=1
    )
    dynamic: DynamicConfig | None = F(
        None, "a dynamic table keyed by the raw 64-bit id: admission, eviction, storage tiers"
    )

    def check(self, path: str = "") -> None:
        """Common names plus: at most one id mapping."""
        _check_common(self, path)
        _check_mapping(self, path)


@dataclass
class RawFeatureConfig:
    """A numeric column: normalised dense float, or bucketised into an embedded id."""

    type: Literal["raw"] = F("raw", "feature type")
    column: str | None = F(None, "input column; default: the feature's own name")
    embedding_dim: int = F(16, "embedding width (only used when bucketised)", ge=1)
    embedding_name: str | None = F(
        None, "embedding table name when bucketised; default: the feature's own name"
    )
    normalizer: Literal["none", "log1p", "zscore", "minmax"] = F(
        "none",
        "none | log1p (sign(x)*log(1+|x|)) | zscore, minmax (statistics fitted on train)",
    )
    fill_null: float | None = F(None, "value for null/NaN; default: the fitted mean")
    boundaries: list[float] | None = F(
        None, "bucket edges (strictly increasing) -> id in [0, len+1); bucket i: b[i-1] <= x < b[i]"
    )
    num_quantiles: int | None = F(
        None, "fit this many equal-frequency buckets from a training sample", ge=2
    )

    def check(self, path: str = "") -> None:
        """Common names plus: one bucketisation at most, sorted finite boundaries."""
        _check_common(self, path)
        if self.boundaries is not None and self.num_quantiles is not None:
            raise ConfigError(
                _at(path, "num_quantiles"), "set either boundaries or num_quantiles, not both"
            )
        if self.boundaries is not None:
            b = self.boundaries
            if not b:
                raise ConfigError(_at(path, "boundaries"), "must list at least one edge")
            if any(not math.isfinite(x) for x in b):
                raise ConfigError(_at(path, "boundaries"), "edges must be finite numbers")
            if any(b[i] >= b[i + 1] for i in range(len(b) - 1)):
                raise ConfigError(_at(path, "boundaries"), f"must be strictly increasing: {b}")
        if self.fill_null is not None and not math.isfinite(self.fill_null):
            raise ConfigError(_at(path, "fill_null"), "must be a finite number")

    @property
    def bucketised(self) -> bool:
        return self.boundaries is not None or self.num_quantiles is not None


@dataclass
class TagFeatureConfig:
    """Several categorical values per row ("a|b|c" or a list column), pooled into one vector."""

    type: Literal["tag"] = F("tag", "feature type")
    column: str | None = F(None, "input column (list or separated string); default: feature name")
    embedding_dim: int = F(16, "embedding width", ge=1)
    embedding_name: str | None = F(
        None, "embedding table name; features with the same name share one table"
    )
    separator: str = F("|", "splits a string column into values")
    weight_separator: str | None = F(
        None, "splits each value into value and weight, e.g. ':' for 'a:0.5|b:2'"
    )
    hash_buckets: int | None = F(None, "hash values into this many buckets (no fitting)", ge=1)
    vocab: VocabConfig | None = F(None, "fit a vocabulary (the default when nothing is set)")
    num_buckets: int | None = F(
        None, "values are already integer ids in [0, N); others -> extra row N", ge=1
    )
    dynamic: DynamicConfig | None = F(
        None, "a dynamic table keyed by the raw 64-bit id: admission, eviction, storage tiers"
    )
    pooling: Literal["sum", "mean"] = F(
        "mean", "sum | mean; mean is emitted as weights normalised to sum 1 per row"
    )

    def check(self, path: str = "") -> None:
        """Common names plus: one id mapping, usable separators."""
        _check_common(self, path)
        _check_mapping(self, path)
        _check_separator(self, path)
        if self.weight_separator is not None:
            if not self.weight_separator:
                raise ConfigError(_at(path, "weight_separator"), "must be non-empty or null")
            if self.weight_separator == self.separator:
                raise ConfigError(
                    _at(path, "weight_separator"), "must differ from separator"
                )


@dataclass
class SequenceFeatureConfig:
    """An ordered id list per row (newest first), e.g. a user's clicked items for DIN."""

    type: Literal["sequence"] = F("sequence", "feature type")
    column: str | None = F(None, "input column (list or separated string); default: feature name")
    embedding_dim: int = F(16, "embedding width (taken from the shared feature with share)", ge=1)
    embedding_name: str | None = F(
        None, "embedding table name; default: the feature name (or the shared feature's)"
    )
    separator: str = F("|", "splits a string column into values")
    max_len: int = F(50, "keep the first max_len items; shorter rows are padded with 0", ge=1)
    share: str | None = F(
        None, "id feature whose id mapping and embedding table this sequence uses"
    )
    hash_buckets: int | None = F(None, "hash values into this many buckets (no fitting)", ge=1)
    vocab: VocabConfig | None = F(None, "fit a vocabulary (the default when nothing is set)")
    num_buckets: int | None = F(
        None, "values are already integer ids in [0, N); others -> extra row N", ge=1
    )
    dynamic: DynamicConfig | None = F(
        None, "a dynamic table keyed by the raw 64-bit id: admission, eviction, storage tiers"
    )

    def check(self, path: str = "") -> None:
        """Common names plus: share excludes an own id mapping and embedding_name."""
        _check_common(self, path)
        _check_separator(self, path)
        if self.share is not None:
            own = [n for n in (*MAPPING_FIELDS, "embedding_name") if getattr(self, n) is not None]
            if own:
                raise ConfigError(
                    _at(path, own[0]),
                    f"'share: {self.share}' takes the id mapping and table of '{self.share}';"
                    f" remove {', '.join(own)}",
                )
        _check_mapping(self, path)


@dataclass
class ComboFeatureConfig:
    """A cross of several scalar columns (e.g. user_id x item_category), hashed to one id."""

    type: Literal["combo"] = F("combo", "feature type")
    column: str | None = F(None, "unused: a combo reads 'columns'")
    embedding_dim: int = F(16, "embedding width", ge=1)
    embedding_name: str | None = F(
        None, "embedding table name; features with the same name share one table"
    )
    columns: list[str] = F([], "the (at least two) scalar columns to cross")
    hash_buckets: int | None = F(None, "required: hash the crossed values into N buckets", ge=1)

    def check(self, path: str = "") -> None:
        """Common names plus: >= 2 distinct columns and hash_buckets set."""
        _check_common(self, path)
        if self.column is not None:
            raise ConfigError(
                _at(path, "column"), "a combo feature reads 'columns' (a list), not 'column'"
            )
        if len(self.columns) < 2:
            raise ConfigError(_at(path, "columns"), "list at least two columns to cross")
        if any(not c for c in self.columns):
            raise ConfigError(_at(path, "columns"), "column names must be non-empty")
        if len(set(self.columns)) != len(self.columns):
            raise ConfigError(_at(path, "columns"), f"columns repeat: {self.columns}")
        if self.hash_buckets is None:
            raise ConfigError(
                _at(path, "hash_buckets"), "a combo feature needs hash_buckets (e.g. 100000)"
            )


@dataclass
class LabelConfig:
    """A training target: float32(column), or float32(column >= threshold) if threshold is set."""

    column: str | None = F(None, "input column; default: the label's own name")
    threshold: float | None = F(None, "binarise: 1.0 where column >= threshold, else 0.0")

    def check(self, path: str = "") -> None:
        if self.column is not None and not self.column:
            raise ConfigError(_at(path, "column"), "must be a non-empty column name or null")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ConfigError(_at(path, "threshold"), "must be a finite number")


FeatureConfig = (
    IdFeatureConfig | RawFeatureConfig | TagFeatureConfig | SequenceFeatureConfig
    | ComboFeatureConfig
)

FEATURE_TYPES: dict[str, type] = {
    "id": IdFeatureConfig,
    "raw": RawFeatureConfig,
    "tag": TagFeatureConfig,
    "sequence": SequenceFeatureConfig,
    "combo": ComboFeatureConfig,
}


def mapping_spec(cfg: Any) -> tuple:
    """The id mapping a config asks for, as a comparable tuple (vocab is the default)."""
    if getattr(cfg, "dynamic", None) is not None:
        return ("dynamic", cfg.dynamic)
    if cfg.hash_buckets is not None:
        return ("hash", int(cfg.hash_buckets))
    if cfg.num_buckets is not None:
        return ("identity", int(cfg.num_buckets))
    vocab = cfg.vocab or VocabConfig()
    return ("vocab", int(vocab.min_count), vocab.max_size)


# --- plain-dict round trip (the saved pipeline state) ----------------------------------------


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (nested dataclasses become dicts)."""
    return dataclasses.asdict(cfg)


def feature_config_from_dict(data: dict[str, Any] | FeatureConfig, path: str = "") -> FeatureConfig:
    """Build (and check) a feature config from a plain dict such as ``config_to_dict`` wrote;
    the class is picked by ``type`` (default ``id``), the fields by :func:`lingjie.schema.build`."""
    if isinstance(data, tuple(FEATURE_TYPES.values())):
        data.check(path)
        return data
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping, got {type(data).__name__}")
    kind = data.get("type", "id")
    if kind not in FEATURE_TYPES:
        raise ConfigError(
            _at(path, "type"), f"unknown feature type {kind!r}; one of {sorted(FEATURE_TYPES)}",
            close_names(str(kind), FEATURE_TYPES),
        )
    cfg = build(FEATURE_TYPES[kind], data, path)
    cfg.check(path)
    return cfg


def label_config_from_dict(data: dict[str, Any] | LabelConfig, path: str = "") -> LabelConfig:
    """Build (and check) a label config from a plain dict."""
    cfg = build(LabelConfig, data, path)
    cfg.check(path)
    return cfg
