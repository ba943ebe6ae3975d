"""The typed schema of a ``domain: nlp`` config: text data, tokenizer, model zoo entries.

Light on purpose (stdlib + trainer.schema only): a typo in an NLP experiment fails in well
under a second, before torch or the tokenizers library is imported. The trainer, hardware,
logger and paths groups are the shared ones (TrainerSpec, HardwareSpec, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lingjie.errors import ConfigError
from lingjie.schema import F
from trainer.schema.spec import RootSpec, build_root

SCHEMA_TYPES = {"str": "string", "string": "string", "int": "int64", "bigint": "int64",
                "float": "float64", "double": "float64"}


@dataclass
class NLPCsvSpec:
    delimiter: str = F(",", "field separator (a .tsv file read with ',' is tab-separated)")
    header: bool | None = F(None, "first line holds column names; null: false when data.schema is set, else true")
    column_names: list[str] | None = F(None, "names when the file has no header (data.schema sets them too)")


@dataclass
class TokenizerSpec:
    type: Literal["auto", "char", "wordpiece", "bpe", "pretrained"] = F(
        "auto", "auto: the pretrained model's tokenizer when model.pretrained is set, else char; "
        "char/wordpiece/bpe: trained on the train split and saved with the model")
    vocab_size: int = F(8000, "largest vocabulary a trained tokenizer may have (special tokens included)", ge=16)
    min_frequency: int = F(2, "a trained tokenizer keeps tokens seen at least this often", ge=1)
    lowercase: bool = F(True, "lowercase (and NFKC-normalise) before tokenizing; trained tokenizers only")
    path: str | None = F(None, "type=pretrained without model.pretrained: a tokenizer.json file, or a "
                               "directory with tokenizer.json or vocab.txt")


@dataclass
class NLPDataSpec:
    dataset: str | None = F(None, "bundled dataset prepared on first use (chnsenti, chnsenti-dedup, "
                                  "intent-match, intent-ner)")
    train_path: str | None = F(None, "training data: file, directory, glob or fsspec URL")
    eval_path: str | None = F(None, "evaluation data (the held-out split)")
    format: Literal["auto", "parquet", "csv", "jsonl"] = F("auto", "file format; auto: by extension (.tsv is csv)")
    csv: NLPCsvSpec = F(NLPCsvSpec(), "CSV/TSV options")
    schema: str | None = F(None, "EasyNLP-style column schema of a header-less CSV/TSV, "
                                 "'name:type[:n],...' with type str|int|float, e.g. 'label:str:1,text:str:1'")
    text_column: str = F("text", "the text (token tasks: a list of tokens, or a string split on whitespace)")
    text_pair_column: str | None = F(None, "the second text of a sentence pair (model.task=matching)")
    label_column: str = F("label", "the class (token tasks: the list of per-token tags, or a string "
                                   "split on whitespace)")
    labels: list[str] | None = F(None, "class / tag names in output order; null: the distinct values of train, sorted")
    max_len: int = F(128, "tokens per example after truncation ([CLS]/[SEP] included)", ge=4)
    padding: Literal["bucket", "longest", "max_length"] = F(
        "bucket", "bucket: sort a pool of batches by length, pad each batch to its longest; "
        "longest: pad each batch to its longest (input order); max_length: pad everything to max_len")
    bucket_pool_batches: int = F(32, "padding=bucket: batches sorted together (larger: less padding, "
                                     "less randomness)", ge=1)
    pad_to_multiple_of: int = F(8, "round padded lengths up to a multiple of this (1: off)", ge=1)
    tokenizer: TokenizerSpec = F(TokenizerSpec(), "how text becomes token ids")
    batch_size: int = F(64, "training batch size", ge=1)
    eval_batch_size: int = F(256, "evaluation / prediction batch size", ge=1)
    shuffle: bool = F(True, "shuffle training data each epoch (seeded)")
    shuffle_buffer_rows: int = F(100_000, "rows held by the shuffle buffer (memory bound)", ge=1)
    read_rows: int = F(65536, "rows per read chunk (memory bound and shard unit)", ge=1)
    fit_rows: int | None = F(None, "rows of train used to train the tokenizer and collect labels; null: all", ge=1)
    limit_train_rows: int | None = F(None, "use at most this many training rows (tests, smoke runs)", ge=1)
    limit_eval_rows: int | None = F(None, "use at most this many evaluation rows", ge=1)
    on_error: Literal["raise", "skip"] = F("raise", "bad rows (wrong field count, null text, unknown label, "
                                                    "tag count != token count): raise names file and row; skip counts them")
    storage_options: dict[str, Any] = F({}, "fsspec storage options")

    def parsed_schema(self) -> list[tuple[str, str]] | None:
        """``data.schema`` as (column, arrow type) pairs; ConfigError on a malformed entry."""
        if not self.schema:
            return None
        out = []
        for i, part in enumerate(p.strip() for p in self.schema.split(",")):
            bits = part.split(":")
            if len(bits) not in (2, 3) or not bits[0] or bits[1] not in SCHEMA_TYPES:
                raise ConfigError("data.schema", f"entry {i} {part!r} is not 'name:type' or 'name:type:n' "
                                  f"with type one of {', '.join(SCHEMA_TYPES)}")
            out.append((bits[0], SCHEMA_TYPES[bits[1]]))
        names = [n for n, _ in out]
        if len(set(names)) != len(names):
            raise ConfigError("data.schema", f"column names repeat: {names}")
        return out

    def csv_header(self) -> bool:
        if self.csv.header is not None:
            return self.csv.header
        return not self.schema

    def csv_column_names(self) -> list[str] | None:
        schema = self.parsed_schema()
        return [n for n, _ in schema] if schema else self.csv.column_names

    def column_types(self) -> dict[str, str]:
        return dict(self.parsed_schema() or [])


TASKS = ("classification", "matching", "token_classification")


@dataclass
class TaskInfo:
    """One prediction target (the shape the shared tooling expects of ``spec.model.tasks``)."""

    name: str
    label: str
    type: str  # multiclass | token


@dataclass
class TextModelSpec:
    """Knobs every text model has."""

    name: str = F(None, "model zoo entry: textcnn | transformer")
    task: Literal["classification", "matching", "token_classification"] = F(
        "classification", "classification: one label per text; matching: one label per text pair "
        "(cross-encoder over '[CLS] a [SEP] b [SEP]'); token_classification: one tag per input token (NER)")
    dropout: float = F(0.1, "dropout before the head (and inside the encoder)", ge=0, lt=1)
    label_smoothing: float = F(0.0, "cross-entropy label smoothing", ge=0, lt=1)
    task_name: str | None = F(None, "metric / prediction name of the target; null: data.label_column")
    # filled by validation (not a knob): the one target, as the shared tooling lists tasks
    tasks: list[TaskInfo] = field(default_factory=list, init=False, repr=False)


@dataclass
class TextCNNSpec(TextModelSpec):
    embedding_dim: int = F(128, "token embedding size", ge=1)
    filter_sizes: list[int] = F([2, 3, 4], "convolution widths (tokens)")
    num_filters: int = F(128, "filters per width", ge=1)

    def check(self, path: str) -> None:
        if not self.filter_sizes or any(k < 1 for k in self.filter_sizes):
            raise ConfigError(f"{path}.filter_sizes", f"needs at least one width >= 1, got {self.filter_sizes}")


@dataclass
class TransformerSpec(TextModelSpec):
    pretrained: str | None = F(None, "a local BERT-architecture directory (config.json, model.safetensors, "
                                     "tokenizer.json or vocab.txt) or a bundled name (minilm-l6) to "
                                     "fine-tune; null: train from scratch with the sizes below")
    hidden_size: int = F(256, "from scratch: width", ge=8)
    num_layers: int = F(4, "from scratch: encoder layers", ge=1)
    num_heads: int = F(4, "from scratch: attention heads (must divide hidden_size)", ge=1)
    intermediate_size: int = F(1024, "from scratch: feed-forward width", ge=1)
    max_position: int = F(512, "from scratch: longest sequence the position table holds", ge=8)
    attention_dropout: float = F(0.1, "dropout of attention probabilities", ge=0, lt=1)
    pooling: Literal["cls", "mean"] = F("mean", "sentence vector: the masked mean of the outputs, or the [CLS] output")

    def check(self, path: str) -> None:
        if not self.pretrained and self.hidden_size % self.num_heads:
            raise ConfigError(f"{path}.num_heads", f"must divide hidden_size={self.hidden_size}, got {self.num_heads}")


MODELS: dict[str, type] = {"textcnn": TextCNNSpec, "transformer": TransformerSpec}


def build_nlp_root(cfg: dict[str, Any]) -> RootSpec:
    """The typed root of a ``domain: nlp`` config: the shared groups plus an :class:`NLPDataSpec`."""
    return build_root(cfg, NLPDataSpec)


@dataclass
class NLPRunSpec:
    """A validated NLP config: the root groups and the typed model."""

    root: RootSpec  # .data is an NLPDataSpec
    model: TextCNNSpec | TransformerSpec

    @property
    def task_name(self) -> str:
        return self.model.task_name or self.root.data.label_column

    @property
    def task_types(self) -> dict[str, str]:
        return {self.task_name: "token" if self.model.task == "token_classification" else "multiclass"}

    @property
    def is_pair(self) -> bool:
        return self.model.task == "matching"

    @property
    def is_token(self) -> bool:
        return self.model.task == "token_classification"
