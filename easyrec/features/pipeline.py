"""FeaturePipeline: fit on training batches once, then turn any RecordBatch into a Batch.

The same object (saved with the model and reloaded) transforms at training, evaluation and
prediction time, which is what keeps offline and online features consistent. Construction
resolves which features share an embedding table (``embedding_name``, ``share``) and gives
each table one id mapping, so shared features agree on rows; ``fit`` is one streaming pass
with bounded memory; ``transform`` is vectorised per feature.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from easyrec.features.base import Feature
from easyrec.features.batch import Batch
from easyrec.features.columns import check_columns, get_column
from easyrec.features.combo_feature import ComboFeature
from easyrec.features.config import (
    ComboFeatureConfig, FeatureConfig, IdFeatureConfig, LabelConfig, RawFeatureConfig,
    SequenceFeatureConfig, TagFeatureConfig, config_to_dict, feature_config_from_dict,
    label_config_from_dict, mapping_spec,
)
from easyrec.features.hashing import hash_to_int64
from easyrec.features.id_feature import IdFeature
from easyrec.features.id_mapping import IdMapping, make_mapping
from easyrec.features.info import FeatureInfo
from easyrec.features.labels import label_column, transform_label
from easyrec.features.raw_feature import RawFeature
from easyrec.features.sequence_feature import SequenceFeature
from easyrec.features.state import FORMAT, VERSION, check_header, read_json, write_json
from easyrec.features.tag_feature import TagFeature
from lingjie.errors import ConfigError, DataError
from lingjie.schema import close_names

_MAPPED = (IdFeatureConfig, TagFeatureConfig, SequenceFeatureConfig)  # use an id mapping
_SHAREABLE = (IdFeatureConfig, TagFeatureConfig)  # valid targets of ``share``


class FeaturePipeline:
    """Features (+ labels, + an optional GAUC group column) -> backend-neutral batches.

    ``features`` maps feature name -> config dataclass (or a plain dict with a ``type`` key);
    ``labels`` maps label name -> :class:`LabelConfig` (or dict); ``group_by`` names the
    column whose hash becomes ``Batch.group_ids`` (e.g. the user id, for GAUC). Labels and
    the group column are read only when ``with_labels`` is true (training and evaluation).
    """

    def __init__(
        self,
        features: Mapping[str, FeatureConfig | dict[str, Any]],
        labels: Mapping[str, LabelConfig | dict[str, Any]] | None = None,
        group_by: str | None = None,
    ) -> None:
        if not features:
            raise ConfigError("features", "no features configured; add at least one")
        for name in features:
            if not name or "." in name:
                raise ConfigError(
                    f"features.{name}", "feature names must be non-empty and contain no '.'"
                    " (model inputs are named '<feature>.values')"
                )
        self.configs: dict[str, FeatureConfig] = {
            name: feature_config_from_dict(cfg, f"features.{name}")
            for name, cfg in features.items()
        }
        self.label_configs: dict[str, LabelConfig] = {
            name: label_config_from_dict(cfg, f"labels.{name}")
            for name, cfg in (labels or {}).items()
        }
        if group_by is not None and not group_by:
            raise ConfigError("group_by", "must be a column name or null")
        self.group_by = group_by
        self.mappings: dict[str, IdMapping] = {}
        self.features: dict[str, Feature] = {}
        self._fitted = False
        self._build()

    # ---- construction --------------------------------------------------------------------

    def _table_of(self, name: str) -> tuple[str, int, str]:
        """(embedding_name, dim, owner) of a feature; ``owner`` is the feature whose config
        decides the table (the ``share`` target for a shared sequence)."""
        cfg = self.configs[name]
        if isinstance(cfg, SequenceFeatureConfig) and cfg.share is not None:
            target = self.configs.get(cfg.share)
            if not isinstance(target, _SHAREABLE):
                candidates = [n for n, c in self.configs.items() if isinstance(c, _SHAREABLE)]
                what = "is not a feature" if target is None else f"is a {target.type} feature"
                raise ConfigError(
                    f"features.{name}.share",
                    f"'{cfg.share}' {what}; share names an id (or tag) feature: "
                    f"{', '.join(candidates) or '(none configured)'}",
                    close_names(cfg.share, candidates),
                )
            return target.embedding_name or cfg.share, target.embedding_dim, cfg.share
        return cfg.embedding_name or name, cfg.embedding_dim, name

    def _build(self) -> None:
        tables: dict[str, list[tuple[str, int, str]]] = {}
        for name, cfg in self.configs.items():
            if isinstance(cfg, RawFeatureConfig) and not cfg.bucketised:
                continue  # dense: no table
            emb, dim, owner = self._table_of(name)
            tables.setdefault(emb, []).append((name, dim, owner))
        table_of: dict[str, tuple[str, int]] = {}
        for emb, members in tables.items():
            first, first_dim, first_owner = members[0]
            spec_owner: str | None = None
            for name, dim, owner in members:
                table_of[name] = (emb, dim)
                if dim != first_dim:
                    raise ConfigError(
                        f"features.{owner}.embedding_dim",
                        f"'{name}' shares embedding table '{emb}' with '{first}', so their "
                        f"embedding_dim must match ({dim} != {first_dim})",
                    )
                if not isinstance(self.configs[name], _MAPPED):
                    continue
                spec = mapping_spec(self.configs[owner])
                if spec_owner is None:
                    spec_owner = owner
                    self.mappings[emb] = make_mapping(spec)
                elif spec != mapping_spec(self.configs[spec_owner]):
                    raise ConfigError(
                        f"features.{owner}.embedding_name",
                        f"'{owner}' and '{spec_owner}' share embedding table '{emb}' but map "
                        f"ids differently ({_describe(spec)} vs "
                        f"{_describe(mapping_spec(self.configs[spec_owner]))}); "
                        "give them the same hash_buckets/vocab/num_buckets",
                    )
        for name, cfg in self.configs.items():
            emb, dim = table_of.get(name, ("", 0))
            if isinstance(cfg, IdFeatureConfig):
                self.features[name] = IdFeature(name, cfg, self.mappings[emb], emb)
            elif isinstance(cfg, TagFeatureConfig):
                self.features[name] = TagFeature(name, cfg, self.mappings[emb], emb)
            elif isinstance(cfg, SequenceFeatureConfig):
                self.features[name] = SequenceFeature(name, cfg, self.mappings[emb], emb, dim)
            elif isinstance(cfg, RawFeatureConfig):
                self.features[name] = RawFeature(name, cfg, emb)
            elif isinstance(cfg, ComboFeatureConfig):
                self.features[name] = ComboFeature(name, cfg, emb)
            else:  # pragma: no cover - feature_config_from_dict admits only the above
                raise ConfigError(f"features.{name}.type", f"unsupported config {type(cfg)}")

    # ---- columns -------------------------------------------------------------------------

    def required_columns(self, with_labels: bool = True) -> list[str]:
        """Input columns to read, in a stable order (features, then labels and group_by)."""
        cols: list[str] = []
        for f in self.features.values():
            cols.extend(f.input_columns())
        if with_labels:
            cols.extend(label_column(n, c) for n, c in self.label_configs.items())
            if self.group_by is not None:
                cols.append(self.group_by)
        return list(dict.fromkeys(cols))

    # ---- fit / transform -----------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return self._fitted

    def fit(
        self, batches: Iterable[pa.RecordBatch | pa.Table] | pa.RecordBatch | pa.Table
    ) -> FeaturePipeline:
        """One streaming pass over training batches (any iterable, e.g. a RecordBatchReader,
        or one batch/table); returns self. Memory is bounded by distinct values
        (vocabularies) and a fixed-size sample (quantiles), not by rows. Refitting starts
        afresh."""
        if isinstance(batches, (pa.RecordBatch, pa.Table)):
            batches = [batches]
        columns = self.required_columns(with_labels=False)
        rows = 0
        for batch in batches:
            check_columns(batch, columns)
            if batch.num_rows == 0:
                continue
            rows += batch.num_rows
            for feature in self.features.values():
                feature.fit_batch(batch)
        if rows == 0:
            raise DataError("cannot fit the feature pipeline: the training data has no rows")
        for mapping in self.mappings.values():
            mapping.finish()
        for feature in self.features.values():
            feature.finish_fit()
        self._fitted = True
        self.feature_infos()  # surface shared-table conflicts now, not in the model
        return self

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("FeaturePipeline is not fitted: call fit() or load() first")

    def transform(self, batch: pa.RecordBatch | pa.Table, with_labels: bool = True) -> Batch:
        """Arrow batch -> :class:`Batch` (dense float32 [B,1], sparse int64 ids + offsets,
        sequences [B, max_len]; labels float32 [B] and group_ids int64 [B] if with_labels)."""
        self._require_fitted()
        check_columns(batch, self.required_columns(with_labels))
        out = Batch(size=batch.num_rows)
        for feature in self.features.values():
            feature.transform(batch, out)
        if with_labels:
            for name, cfg in self.label_configs.items():
                out.labels[name] = transform_label(name, cfg, batch)
            if self.group_by is not None:
                out.group_ids = hash_to_int64(get_column(batch, self.group_by))
        return out

    def feature_infos(self) -> dict[str, FeatureInfo]:
        """Shape facts per feature; features sharing an embedding_name agree on dim and rows."""
        self._require_fitted()
        infos = {name: f.info() for name, f in self.features.items()}
        for name, f in self.features.items():  # dynamic tables (easyrec.dynamic): raw keys
            mapping = getattr(f, "mapping", None)
            if getattr(mapping, "kind", "") == "dynamic":
                infos[name] = dataclasses.replace(infos[name], dynamic=mapping.config)
        seen: dict[str, FeatureInfo] = {}
        for name, info in infos.items():
            if info.kind == "dense":
                continue
            other = seen.setdefault(info.embedding_name, info)
            if (other.dim, other.num_embeddings) != (info.dim, info.num_embeddings):
                raise ConfigError(
                    f"features.{name}.embedding_name",
                    f"'{name}' and '{other.name}' share embedding table '{info.embedding_name}' "
                    f"but need {info.num_embeddings} x {info.dim} and "
                    f"{other.num_embeddings} x {other.dim} rows x dim; give them distinct "
                    "embedding_name values or matching sizes",
                )
        return infos

    # ---- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Configs + fitted state + format version; JSON-serialisable."""
        state: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "group_by": self.group_by,
            "features": {n: config_to_dict(c) for n, c in self.configs.items()},
            "labels": {n: config_to_dict(c) for n, c in self.label_configs.items()},
            "fitted": self._fitted,
        }
        if self._fitted:
            state["mappings"] = {
                emb: {"kind": m.kind, **m.state()} for emb, m in self.mappings.items()
            }
            state["feature_state"] = {n: f.state() for n, f in self.features.items()}
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FeaturePipeline:
        """Rebuild a pipeline equal to the one ``state_dict`` was taken from."""
        check_header(state)
        pipe = cls(state["features"], state.get("labels") or {}, state.get("group_by"))
        if state.get("fitted"):
            for emb, mstate in state["mappings"].items():
                mapping = pipe.mappings.get(emb)
                if mapping is None or mapping.kind != mstate.get("kind"):
                    raise DataError(f"feature state has an id mapping '{emb}' the configs do not")
                mapping.load_state(mstate)
            for name, fstate in state["feature_state"].items():
                if name not in pipe.features:
                    raise DataError(f"feature state has a feature '{name}' the configs do not")
                pipe.features[name].load_state(fstate)
            pipe._fitted = True
        return pipe

    def save(self, path: str) -> None:
        """Write the state as JSON (local path or fsspec URL; atomic on local disks)."""
        write_json(path, self.state_dict())

    @classmethod
    def load(cls, path: str) -> FeaturePipeline:
        return cls.from_state_dict(read_json(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeaturePipeline):
            return NotImplemented
        return self.state_dict() == other.state_dict()

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}:{c.type}" for n, c in self.configs.items())
        return (f"FeaturePipeline([{kinds}], labels={list(self.label_configs)}, "
                f"fitted={self._fitted})")


def _describe(spec: tuple) -> str:
    if spec[0] == "dynamic":
        return f"dynamic({spec[1]})"
    if spec[0] == "vocab":
        return f"vocab(min_count={spec[1]}, max_size={spec[2]})"
    return f"{'hash_buckets' if spec[0] == 'hash' else 'num_buckets'}={spec[1]}"
