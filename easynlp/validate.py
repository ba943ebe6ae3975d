"""Checking a ``domain: nlp`` config: the typed spec, or a ConfigError that names the path.

Imports only the schema (no torch, no tokenizers), so a typo in an NLP experiment fails in well
under a second with the path and a did-you-mean. Also used to rebuild the training-time spec
saved in a checkpoint (easynlp.restore.spec_from_meta).
"""
from __future__ import annotations

from typing import Any

from easynlp.schema import MODELS, NLPDataSpec, NLPRunSpec, TaskInfo, build_nlp_root
from lingjie.errors import ConfigError
from lingjie.schema import build, chosen_model, close_names


def build_model_spec(raw: dict[str, Any]) -> Any:
    """The text model spec picked by ``model.name``."""
    _, cls = chosen_model(raw, MODELS, "text")
    spec = build(cls, {k: v for k, v in raw.items() if k != "tasks"}, "model")
    spec.check("model")
    return spec


def validate(cfg: dict[str, Any]) -> NLPRunSpec:
    """Check a plain (resolved) ``domain: nlp`` config; ConfigError names the path and the fix."""
    root = build_nlp_root(cfg)
    if root.features:
        raise ConfigError("features", "text experiments take no feature columns; remove the features: block "
                          "(the text columns are data.text_column / data.text_pair_column / data.label_column)")
    model = build_model_spec(root.model)
    root.data.parsed_schema()
    _check_mode(root)
    _check_columns(root.data, model)
    _check_labels(root.data, model)
    _check_tokenizer(root.data, model)
    spec = NLPRunSpec(root=root, model=model)
    model.tasks = [TaskInfo(spec.task_name, root.data.label_column, spec.task_types[spec.task_name])]
    return spec


def _check_mode(root: Any) -> None:
    mode = root.trainer.mode
    if mode == "stream":
        raise ConfigError("trainer.mode", "stream (online training from Kafka) is for recommendation models; "
                          "use train | evaluate | predict | export")
    if mode == "train" and not root.data.train_path:
        raise ConfigError("data.train_path", "required for trainer.mode=train")
    if root.trainer.backend != "torch":
        raise ConfigError("trainer.backend", "text models run on torch; set trainer.backend=torch")


def _check_columns(data: NLPDataSpec, model: Any) -> None:
    """The text / pair / label columns: present as the task needs, distinct, and in data.schema."""
    if model.task == "matching" and not data.text_pair_column:
        raise ConfigError("data.text_pair_column", "model.task=matching compares two texts: name the column "
                          "of the second one")
    if model.task != "matching" and data.text_pair_column:
        raise ConfigError("data.text_pair_column", f"only model.task=matching reads a second text "
                          f"(model.task={model.task}); set it to null")
    names = [data.text_column, data.label_column] + ([data.text_pair_column] if data.text_pair_column else [])
    if len(set(names)) != len(names):
        raise ConfigError("data.label_column", f"text, pair and label columns must differ, got {names}")
    schema_cols = data.csv_column_names()
    if data.schema and schema_cols is not None:
        for key, col in (("text_column", data.text_column), ("label_column", data.label_column),
                         ("text_pair_column", data.text_pair_column)):
            if col and col not in schema_cols:
                raise ConfigError(f"data.{key}", f"column {col!r} is not in data.schema ({', '.join(schema_cols)})",
                                  close_names(col, schema_cols))


def _check_labels(data: NLPDataSpec, model: Any) -> None:
    if data.labels is not None and len(set(data.labels)) != len(data.labels):
        raise ConfigError("data.labels", f"names repeat: {data.labels}")
    if data.labels is not None and model.task != "token_classification" and len(data.labels) < 2:
        raise ConfigError("data.labels", "a classifier needs at least two classes")


def _check_tokenizer(data: NLPDataSpec, model: Any) -> None:
    """The tokenizer agrees with model.pretrained, and max_len fits the position embeddings."""
    tok = data.tokenizer
    pretrained = getattr(model, "pretrained", None)
    if tok.type == "pretrained" and not (tok.path or pretrained):
        raise ConfigError("data.tokenizer.path", "tokenizer.type=pretrained needs data.tokenizer.path "
                          "(or model.pretrained)")
    if pretrained and tok.type in ("char", "wordpiece", "bpe"):
        raise ConfigError("data.tokenizer.type", f"model.pretrained comes with its own vocabulary; a newly "
                          f"trained {tok.type} tokenizer would not match its embeddings: use auto or pretrained")
    if model.name == "transformer" and not pretrained and data.max_len > model.max_position:
        raise ConfigError("data.max_len", f"{data.max_len} exceeds model.max_position={model.max_position}")
