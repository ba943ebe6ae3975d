"""Typed configs of the recommendation model zoo, and the registry that maps a name to a model.

This module is deliberately light (stdlib only, no torch): the config validator imports it
before any heavy import so that a typo in ``model.*`` is reported in milliseconds with a
did-you-mean, not after torch has loaded. Each field carries metadata the validator reads:
``help`` (always), and bounds ``ge`` / ``gt`` / ``le`` where a number has them. Cross-field
rules (a group the model needs, a feature that is not defined, FM dims) live in ``check``.

YAML shape (``configs/model/deepfm.yaml``)::

    name: deepfm
    feature_groups: {wide: [user_id, item_id], deep: [user_id, item_id, age]}
    hidden_units: [256, 128]
    tasks: [{name: like, label: like}]
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from lingjie.errors import ConfigError
from lingjie.schema import F, close_names

if TYPE_CHECKING:  # only for annotations; info.py is light anyway
    from easyrec.features.info import FeatureInfo

Activation = Literal["relu", "gelu", "silu", "tanh", "sigmoid", "prelu"]


@dataclass
class TaskConfig:
    """One prediction target. A model emits one logit (binary) or value (regression) per task."""

    name: str = F("like", "task name: key of the model output and prefix of its metrics")
    label: str = F("like", "label column this task learns (a name from data.labels)")
    type: Literal["binary", "regression"] = F("binary", "binary (logit) or regression")
    loss: Literal["bce", "mse"] = F("bce", "bce for binary tasks, mse for regression")
    weight: float = F(1.0, "weight of this task's loss in the total loss", ge=0.0)


@dataclass
class ModelConfig:
    """Knobs every model has. Subclasses add their own and name the groups they need."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ()
    # kinds a feature may have in each group; groups not listed accept every kind
    GROUP_KINDS: ClassVar[dict[str, tuple[str, ...]]] = {}

    name: str = F("", "model-zoo entry, e.g. deepfm (see MODEL_REGISTRY)")
    feature_groups: dict[str, list[str]] = F(
        {}, "group name -> feature names; which groups a model needs depends on the model")
    tasks: list[TaskConfig] = F([TaskConfig()], "prediction targets; one binary task 'like' by default")
    sparse_grad: bool = F(
        False, "embedding tables get sparse gradients (only looked-up rows); needs a "
        "sparse-capable optimizer (e.g. SparseAdam) for the model's sparse_parameters()")
    embedding_init_std: float | None = F(
        None, "std of the N(0, std) initialisation of the embedding tables (both backends); "
        "null: 1/sqrt(dim). Small values (e.g. 1e-4, deepctr's) pair with a lower table lr", ge=0)

    # ----------------------------------------------------------------- cross-field rules
    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        """Raise ConfigError for rules no single field can express.

        ``features`` (name -> FeatureInfo, or None before the pipeline is fitted) enables
        the checks that need feature facts; ``labels`` (data.labels) checks task labels.
        """
        self._check_groups(features)
        self._check_tasks(labels)
        for f_name in ("hidden_units", "expert_units", "tower_units", "attention_units"):
            units = getattr(self, f_name, None)
            if units is not None and any(int(u) <= 0 for u in units):
                raise ConfigError(f"model.{f_name}", f"every layer width must be > 0, got {units}")

    def _check_groups(self, features: dict[str, FeatureInfo] | None) -> None:
        groups = self.feature_groups
        allowed = set(self.REQUIRED_GROUPS)
        for g in self.REQUIRED_GROUPS:
            if g not in groups:
                raise ConfigError(
                    "model.feature_groups",
                    f"model '{self.name}' needs groups {list(self.REQUIRED_GROUPS)}; "
                    f"'{g}' is missing (have {sorted(groups)})", close_names(g, sorted(groups)))
            if not groups[g]:
                raise ConfigError(f"model.feature_groups.{g}", "the group lists no features")
        for g, names in groups.items():
            if g not in allowed:
                raise ConfigError(
                    f"model.feature_groups.{g}",
                    f"model '{self.name}' has no group '{g}' (its groups: "
                    f"{list(self.REQUIRED_GROUPS)})", close_names(g, sorted(allowed)))
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    raise ConfigError(f"model.feature_groups.{g}", f"feature '{n}' is listed twice")
                seen.add(n)
                if features is None:
                    continue
                if n not in features:
                    raise ConfigError(
                        f"model.feature_groups.{g}",
                        f"feature '{n}' is not defined under features", close_names(n, sorted(features)))
                kinds = self.GROUP_KINDS.get(g)
                if kinds and features[n].kind not in kinds:
                    raise ConfigError(
                        f"model.feature_groups.{g}",
                        f"feature '{n}' is {features[n].kind}; group '{g}' takes only "
                        f"{' / '.join(kinds)} features")

    def _check_tasks(self, labels: list[str] | None) -> None:
        if not self.tasks:
            raise ConfigError("model.tasks", "at least one task is needed")
        names: set[str] = set()
        for i, t in enumerate(self.tasks):
            if t.name in names:
                raise ConfigError(f"model.tasks.{i}.name", f"task name '{t.name}' is used twice")
            if t.name in ("user_emb", "item_emb"):
                raise ConfigError(f"model.tasks.{i}.name", f"'{t.name}' is a reserved output name")
            names.add(t.name)
            want = "bce" if t.type == "binary" else "mse"
            if t.loss != want:
                raise ConfigError(
                    f"model.tasks.{i}.loss",
                    f"a {t.type} task needs loss '{want}', got '{t.loss}'", [want])
            if labels is not None and t.label not in labels:
                raise ConfigError(
                    f"model.tasks.{i}.label",
                    f"label '{t.label}' is not in data.labels {list(labels)}",
                    close_names(t.label, sorted(labels)))


# ------------------------------------------------------------------------------ models
@dataclass
class LRConfig(ModelConfig):
    """Logistic regression: a bias plus one learned weight per id and per dense input.

    Groups: ``wide`` (dense and sparse features). No other knobs: the baseline every
    other model must beat.
    """

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("wide",)

    name: str = F("lr", "model-zoo entry")


@dataclass
class WideAndDeepConfig(ModelConfig):
    """Wide & Deep (Cheng et al., 2016): a linear ``wide`` part plus an MLP over ``deep``."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("wide", "deep")

    name: str = F("wide_and_deep", "model-zoo entry")
    hidden_units: list[int] = F([256, 128, 64], "widths of the deep MLP's hidden layers")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the hidden layers")
    batchnorm: bool = F(False, "batch normalisation before each activation")


@dataclass
class DeepFMConfig(ModelConfig):
    """DeepFM (Guo et al., 2017): first order over ``wide`` + FM and MLP sharing ``deep``'s
    embeddings. The FM needs every sparse/sequence feature in ``deep`` to have the same
    embedding dim; dense deep features feed only the MLP."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("wide", "deep")

    name: str = F("deepfm", "model-zoo entry")
    hidden_units: list[int] = F([256, 128, 64], "widths of the DNN's hidden layers")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the hidden layers")
    batchnorm: bool = F(False, "batch normalisation before each activation")

    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        super().check(features, labels)
        if features is None:
            return
        first: tuple[str, int] | None = None
        for n in self.feature_groups["deep"]:
            info = features[n]
            if info.kind == "dense":
                continue
            if first is None:
                first = (n, info.dim)
            elif info.dim != first[1]:
                raise ConfigError(
                    f"features.{n}.embedding_dim",
                    f"DeepFM's FM needs one embedding dim over the deep group: '{n}' has "
                    f"{info.dim} but '{first[0]}' has {first[1]}")


@dataclass
class DCNv2Config(ModelConfig):
    """DCN-V2 (Wang et al., 2021): explicit feature crosses x0 * (W x + b) + x, stacked
    before or run in parallel with an MLP. ``low_rank`` factorises W = U V^T (cheaper)."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("deep",)

    name: str = F("dcnv2", "model-zoo entry")
    cross_layers: int = F(3, "number of cross layers", ge=1, le=16)
    low_rank: int | None = F(None, "rank of the cross weights; None = full matrix", ge=1)
    hidden_units: list[int] = F([256, 128], "widths of the MLP's hidden layers")
    structure: Literal["stacked", "parallel"] = F(
        "stacked", "stacked: cross then MLP; parallel: cross and MLP side by side")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the hidden layers")
    batchnorm: bool = F(False, "batch normalisation before each activation")


@dataclass
class DINConfig(ModelConfig):
    """DIN (Zhou et al., 2018): each behaviour sequence in ``sequence`` is pooled by attention
    to the candidate: the sparse feature in ``deep`` sharing its embedding_name."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("deep", "sequence")
    GROUP_KINDS: ClassVar[dict[str, tuple[str, ...]]] = {"sequence": ("sequence",)}

    name: str = F("din", "model-zoo entry")
    attention_units: list[int] = F([64, 32], "hidden widths of the attention unit's MLP")
    attention_activation: Activation = F("sigmoid", "activation inside the attention MLP")
    attention_softmax: bool = F(
        False, "normalise attention scores by softmax (the paper does not)")
    hidden_units: list[int] = F([256, 128], "widths of the final MLP's hidden layers")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the final MLP")
    batchnorm: bool = F(False, "batch normalisation in the final MLP")

    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        super().check(features, labels)
        if features is None:
            return
        for n in self.feature_groups["sequence"]:
            if din_target(n, self.feature_groups["deep"], features) is None:
                table = features[n].embedding_name or n
                raise ConfigError(
                    "model.feature_groups.sequence",
                    f"sequence feature '{n}' has no target: no sparse feature in group 'deep' "
                    f"uses embedding_name '{table}'")


def din_target(seq: str, deep: list[str], features: dict[str, FeatureInfo]) -> str | None:
    """The sparse feature in ``deep`` sharing ``seq``'s table (DIN's attention query)."""
    table = features[seq].embedding_name or seq
    for n in deep:
        info = features[n]
        if info.kind == "sparse" and (info.embedding_name or n) == table:
            return n
    return None


@dataclass
class MMoEConfig(ModelConfig):
    """MMoE (Ma et al., 2018): shared experts, one softmax gate and one tower per task.
    Meant for two or more tasks (with one it is a mixture of experts)."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("deep",)

    name: str = F("mmoe", "model-zoo entry")
    num_experts: int = F(4, "number of shared experts", ge=1, le=64)
    expert_units: list[int] = F([256, 128], "widths of each expert MLP")
    gate_units: list[int] = F([], "hidden widths of each gate before its softmax; [] = linear")
    tower_units: list[int] = F([64], "widths of each task tower MLP")
    dropout: float = F(0.0, "dropout in experts and towers", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of experts, gates and towers")


@dataclass
class DSSMConfig(ModelConfig):
    """DSSM two-tower retrieval (Huang et al., 2013; in-batch softmax as in Yi et al., 2019).

    Groups ``user`` and ``item``; one binary task whose positive rows are the (user, item)
    pairs; every other item of the batch serves as a negative.
    """

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("user", "item")

    name: str = F("dssm", "model-zoo entry")
    tower_units: list[int] = F([256, 128], "widths of each tower's hidden layers")
    output_dim: int = F(64, "width of the user and item embeddings", ge=1)
    temperature: float = F(0.05, "similarities are divided by this before softmax", gt=0.0)
    similarity: Literal["cosine", "dot"] = F("cosine", "cosine (normalised) or dot product")
    dropout: float = F(0.0, "dropout in the towers", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the towers")
    recall_k: list[int] = F([10, 50], "k values of the in-batch recall@k metric")

    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        super().check(features, labels)
        if len(self.tasks) != 1 or self.tasks[0].type != "binary":
            raise ConfigError("model.tasks", "DSSM takes exactly one binary task (its positives)")
        if any(int(k) <= 0 for k in self.recall_k):
            raise ConfigError("model.recall_k", f"every k must be > 0, got {self.recall_k}")


def check_field_dims(model: str, names: list[str], features: dict[str, FeatureInfo]) -> int:
    """The one embedding dim of the sparse/sequence features in ``names`` (models whose
    interaction layer treats them as fields); ConfigError naming the odd one out. 0 when no
    feature is embedded."""
    first: tuple[str, int] | None = None
    for n in names:
        info = features[n]
        if info.kind == "dense":
            continue
        if first is None:
            first = (n, int(info.dim))
        elif int(info.dim) != first[1]:
            raise ConfigError(
                f"features.{n}.embedding_dim",
                f"{model}'s field interaction needs one embedding dim over its fields: '{n}' "
                f"has {info.dim} but '{first[0]}' has {first[1]}")
    return 0 if first is None else first[1]


def _count_fields(names: list[str], features: dict[str, FeatureInfo]) -> int:
    return sum(1 for n in names if features[n].kind != "dense")


@dataclass
class XDeepFMConfig(ModelConfig):
    """xDeepFM (Lian et al., 2018): a linear part over ``wide``, a Compressed Interaction
    Network (vector-wise explicit crosses of ``deep``'s embedding fields) and an MLP over
    ``deep``. The CIN needs every sparse/sequence feature in ``deep`` to share one
    embedding dim; dense deep features feed only the MLP."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("wide", "deep")

    name: str = F("xdeepfm", "model-zoo entry")
    cin_layer_sizes: list[int] = F(
        [128, 128], "feature maps of each CIN layer (even sizes when cin_split_half)")
    cin_split_half: bool = F(
        True, "each CIN layer but the last sends half its maps to the next layer and half to "
        "the output (the paper's and deepctr's default)")
    cin_activation: Literal["identity", "relu", "tanh", "sigmoid"] = F(
        "relu", "activation of the CIN feature maps (identity in the paper, relu in deepctr)")
    hidden_units: list[int] = F([256, 128], "widths of the DNN's hidden layers ([] = no DNN)")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the DNN's hidden layers")
    batchnorm: bool = F(False, "batch normalisation before each activation")

    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        super().check(features, labels)
        sizes = [int(u) for u in self.cin_layer_sizes]
        if not sizes or any(u <= 0 for u in sizes):
            raise ConfigError("model.cin_layer_sizes",
                              f"needs at least one layer, every size > 0, got {sizes}")
        if self.cin_split_half and any(u % 2 for u in sizes[:-1]):
            raise ConfigError("model.cin_layer_sizes",
                              f"cin_split_half needs even sizes but for the last, got {sizes}")
        if features is not None:
            check_field_dims("xDeepFM", self.feature_groups["deep"], features)
            if _count_fields(self.feature_groups["deep"], features) < 1:
                raise ConfigError("model.feature_groups.deep",
                                  "the CIN needs at least one sparse or sequence feature")


@dataclass
class AutoIntConfig(ModelConfig):
    """AutoInt (Song et al., 2019): stacked multi-head self-attention over the embedding
    fields of ``deep`` (with residual connections), flattened, optionally beside an MLP over
    the whole group (AutoInt+). Fields share one embedding dim; dense features need the MLP."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("deep",)

    name: str = F("autoint", "model-zoo entry")
    attention_layers: int = F(3, "number of interacting (self-attention) layers", ge=1, le=16)
    attention_heads: int = F(2, "attention heads per layer", ge=1, le=64)
    attention_dim: int = F(16, "width of each head (a layer outputs heads x dim per field)",
                           ge=1)
    residual: bool = F(True, "add a projected residual of the layer input (the paper's)")
    hidden_units: list[int] = F(
        [256, 128], "widths of the parallel MLP over the whole group ([] = attention only)")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the MLP's hidden layers")
    batchnorm: bool = F(False, "batch normalisation before each activation")

    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        super().check(features, labels)
        if features is None:
            return
        deep = self.feature_groups["deep"]
        check_field_dims("AutoInt", deep, features)
        if _count_fields(deep, features) < 1:
            raise ConfigError("model.feature_groups.deep",
                              "attention needs at least one sparse or sequence feature")
        dense = [n for n in deep if features[n].kind == "dense"]
        if dense and not self.hidden_units:
            raise ConfigError("model.hidden_units",
                              f"dense features {dense} reach AutoInt only through its MLP; "
                              "give hidden_units or move them out of the deep group")


@dataclass
class DLRMConfig(ModelConfig):
    """DLRM (Naumov et al., 2019): dense features of ``deep`` through a bottom MLP to the
    embedding dim, pairwise dot products of it and every embedding field, then a top MLP
    over [bottom output, dots]. Without dense features the fields themselves (flattened)
    take the bottom output's place in the top MLP's input."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("deep",)

    name: str = F("dlrm", "model-zoo entry")
    bottom_units: list[int] = F(
        [64], "hidden widths of the bottom MLP over the dense features (a last layer to the "
        "embedding dim is added)")
    top_units: list[int] = F([256, 128], "widths of the top MLP's hidden layers")
    interaction_itself: bool = F(
        False, "also keep each field's dot with itself (the diagonal)")
    dropout: float = F(0.0, "dropout after each top hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of both MLPs")
    batchnorm: bool = F(False, "batch normalisation in the top MLP")

    def check(self, features: dict[str, FeatureInfo] | None = None,
              labels: list[str] | None = None) -> None:
        super().check(features, labels)
        for f_name in ("bottom_units", "top_units"):
            units = getattr(self, f_name)
            if any(int(u) <= 0 for u in units):
                raise ConfigError(f"model.{f_name}", f"every layer width must be > 0, got {units}")
        if features is None:
            return
        deep = self.feature_groups["deep"]
        check_field_dims("DLRM", deep, features)
        if _count_fields(deep, features) < 1:
            raise ConfigError("model.feature_groups.deep",
                              "the dot interaction needs at least one sparse or sequence feature")


@dataclass
class MaskNetConfig(ModelConfig):
    """MaskNet (Wang et al., 2021): MaskBlocks, each an instance-guided mask (a small MLP of
    the whole ``deep`` input) multiplied into layer-normalised hidden units, then a
    Linear-LayerNorm-ReLU. ``serial`` chains the blocks; ``parallel`` runs them side by side
    on the input and concatenates their outputs; an MLP follows either way."""

    REQUIRED_GROUPS: ClassVar[tuple[str, ...]] = ("deep",)

    name: str = F("masknet", "model-zoo entry")
    mode: Literal["serial", "parallel"] = F(
        "parallel", "serial: blocks in a chain; parallel: side by side, outputs concatenated")
    num_blocks: int = F(3, "number of MaskBlocks", ge=1, le=32)
    block_dim: int = F(64, "output width of each MaskBlock", ge=1)
    reduction_ratio: float = F(
        2.0, "the mask MLP's hidden width is this times its input width", gt=0.0, le=16.0)
    hidden_units: list[int] = F([256, 128], "widths of the MLP after the blocks")
    dropout: float = F(0.0, "dropout after each hidden layer", ge=0.0, le=0.9)
    activation: Activation = F("relu", "activation of the MLP's hidden layers")
    batchnorm: bool = F(False, "batch normalisation before each activation")


# ---------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelEntry:
    """One model-zoo entry: its config class and, per backend, ``module:Class`` to import."""

    name: str
    config_cls: type[ModelConfig]
    backends: dict[str, str]
    paper: str
    summary: str


def _entry(name: str, cls: type[ModelConfig], torch_path: str, paper: str, summary: str
           ) -> ModelEntry:
    """An entry with both backends: ``easyrec.models.torch.m:C`` and its twin
    ``easyrec.models.tf.m:C`` (same module and class names)."""
    tf_path = _TF + torch_path[len(_T):]
    return ModelEntry(name, cls, {"torch": torch_path, "tf": tf_path}, paper, summary)


_T = "easyrec.models.torch."
_TF = "easyrec.models.tf."
MODEL_REGISTRY: dict[str, ModelEntry] = {e.name: e for e in [
    _entry("lr", LRConfig, _T + "lr:LR", "logistic regression",
           "linear baseline over the wide group"),
    _entry("wide_and_deep", WideAndDeepConfig, _T + "wide_and_deep:WideAndDeep",
           "Cheng et al. 2016, Wide & Deep Learning for Recommender Systems",
           "linear wide part + MLP over deep embeddings"),
    _entry("deepfm", DeepFMConfig, _T + "deepfm:DeepFM",
           "Guo et al. 2017, DeepFM: A Factorization-Machine based Neural Network for CTR "
           "Prediction", "first order + FM + MLP sharing embeddings"),
    _entry("dcnv2", DCNv2Config, _T + "dcnv2:DCNv2",
           "Wang et al. 2021, DCN V2: Improved Deep & Cross Network",
           "full or low-rank cross network, stacked or parallel with an MLP"),
    _entry("xdeepfm", XDeepFMConfig, _T + "xdeepfm:XDeepFM",
           "Lian et al. 2018, xDeepFM: Combining Explicit and Implicit Feature Interactions "
           "for Recommender Systems", "linear + compressed interaction network + MLP"),
    _entry("autoint", AutoIntConfig, _T + "autoint:AutoInt",
           "Song et al. 2019, AutoInt: Automatic Feature Interaction Learning via "
           "Self-Attentive Neural Networks", "multi-head self-attention over fields (+ MLP)"),
    _entry("dlrm", DLRMConfig, _T + "dlrm:DLRM",
           "Naumov et al. 2019, Deep Learning Recommendation Model for Personalization and "
           "Recommendation Systems", "bottom MLP + pairwise dot interaction + top MLP"),
    _entry("masknet", MaskNetConfig, _T + "masknet:MaskNet",
           "Wang et al. 2021, MaskNet: Introducing Feature-Wise Multiplication to CTR Ranking "
           "Models by Instance-Guided Mask", "instance-guided masks, serial or parallel blocks"),
    _entry("din", DINConfig, _T + "din:DIN",
           "Zhou et al. 2018, Deep Interest Network for Click-Through Rate Prediction",
           "target attention over behaviour sequences + MLP"),
    _entry("mmoe", MMoEConfig, _T + "mmoe:MMoE",
           "Ma et al. 2018, Modeling Task Relationships in Multi-task Learning with "
           "Multi-gate Mixture-of-Experts", "shared experts, per-task gates and towers"),
    _entry("dssm", DSSMConfig, _T + "dssm:DSSM",
           "Huang et al. 2013, Learning Deep Structured Semantic Models; Yi et al. 2019, "
           "Sampling-Bias-Corrected Neural Modeling (in-batch softmax)",
           "two-tower retrieval trained by in-batch softmax"),
]}


def get_model_entry(name: str, backend: str = "torch") -> ModelEntry:
    """The registry entry for ``name`` that has ``backend``; ConfigError with the fix if not."""
    entry = MODEL_REGISTRY.get(name)
    if entry is None:
        raise ConfigError(
            "model.name", f"unknown model '{name}'; the zoo has {sorted(MODEL_REGISTRY)}",
            close_names(name, sorted(MODEL_REGISTRY)))
    if backend not in entry.backends:
        having = sorted(n for n, e in MODEL_REGISTRY.items() if backend in e.backends)
        msg = (f"model '{name}' has no '{backend}' backend (it has {sorted(entry.backends)}); "
               + (f"models with '{backend}': {having}" if having
                  else f"no model has a '{backend}' backend yet"))
        raise ConfigError("model.name", msg, having)
    return entry


def build_model(cfg: ModelConfig, features: dict[str, FeatureInfo], backend: str = "torch"
                ) -> Any:
    """Check ``cfg`` against the fitted features, import the backend lazily, instantiate."""
    entry = get_model_entry(cfg.name, backend)
    if not isinstance(cfg, entry.config_cls):
        raise ConfigError(
            "model", f"model '{cfg.name}' needs a {entry.config_cls.__name__}, "
            f"got {type(cfg).__name__}")
    cfg.check(features)
    module_name, attr = entry.backends[backend].split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(cfg, features)
