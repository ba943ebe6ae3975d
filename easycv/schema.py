"""The typed schema of an easycv experiment (``domain: cv``): data, augmentation, models.

Stdlib only (no torch, no PIL), so a typo in an image experiment is reported in milliseconds
with the same did-you-mean messages as everywhere else (:func:`lingjie.schema.build`).
The trainer/hardware/logger/paths groups are the shared ones; ``data`` and ``model`` are
easycv's own. Augmentations are a YAML list, each item picked by ``name``::

    train_transforms:
      - {name: resize, size: 36}
      - {name: random_crop, size: 32}
      - {name: normalize, mean: [0.5], std: [0.5]}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lingjie.errors import ConfigError
from lingjie.schema import F, build, chosen_model, close_names
from trainer.schema.spec import RootSpec, build_root

# ----------------------------------------------------------------------------- transforms


@dataclass
class ResizeT:
    """Resize to ``size`` x ``size``; keep_ratio: scale the longer side to ``size`` and pad
    (letterbox, top-left aligned so box coordinates only scale)."""

    name: str = F("resize", "transform name")
    size: int = F(32, "output height and width in pixels", ge=1)
    keep_ratio: bool = F(False, "letterbox: keep the aspect ratio and pad with pad_value")
    pad_value: float = F(0.0, "value of padded pixels (0..1)", ge=0, le=1)


@dataclass
class RandomCropT:
    """Pad ``padding`` pixels on every side, then cut a random ``size`` x ``size`` window."""

    name: str = F("random_crop", "transform name")
    size: int = F(32, "output height and width", ge=1)
    padding: int = F(0, "pixels padded on every side before cropping", ge=0)
    pad_value: float = F(0.0, "value of padded pixels (0..1)", ge=0, le=1)
    min_visible: float = F(0.5, "detection: drop a box when less than this share of it stays in the crop",
                           ge=0, le=1)


@dataclass
class FlipT:
    """Mirror the image (and its boxes) with probability ``p``."""

    name: str = F("hflip", "hflip (left-right) or vflip (up-down)")
    p: float = F(0.5, "probability", ge=0, le=1)


@dataclass
class ColorJitterT:
    """Random brightness / contrast / saturation factors in [1 - x, 1 + x]."""

    name: str = F("color_jitter", "transform name")
    brightness: float = F(0.2, "max relative brightness change", ge=0)
    contrast: float = F(0.2, "max relative contrast change", ge=0)
    saturation: float = F(0.0, "max relative saturation change (3-channel images)", ge=0)
    p: float = F(1.0, "probability of jittering an image", ge=0, le=1)


@dataclass
class NormalizeT:
    """(x - mean) / std per channel; x is in 0..1. Exports bake this in."""

    name: str = F("normalize", "transform name")
    mean: list[float] = F([0.5], "per-channel mean (one value: all channels)")
    std: list[float] = F([0.5], "per-channel std (one value: all channels)")


@dataclass
class MosaicT:
    """Detection: with probability ``p`` join 4 training images in a 2x2 mosaic around a random
    centre, scale it by a factor drawn from ``scale`` and cut a ``size`` x ``size`` window (YOLOX)."""

    name: str = F("mosaic", "transform name")
    size: int = F(128, "output height and width", ge=1)
    p: float = F(0.5, "probability of a mosaic (else the image passes through)", ge=0, le=1)
    scale: list[float] = F([0.5, 1.0], "[low, high] scale of the 2x-size mosaic before the cut")
    min_visible: float = F(0.5, "drop a box when less than this share of it stays visible", ge=0, le=1)


TRANSFORMS: dict[str, type] = {"resize": ResizeT, "random_crop": RandomCropT, "hflip": FlipT, "vflip": FlipT,
                               "color_jitter": ColorJitterT, "normalize": NormalizeT, "mosaic": MosaicT}
GEOMETRIC = ("resize", "random_crop", "mosaic")


def build_transforms(raw: list[dict[str, Any]], path: str) -> list[Any]:
    """Typed transforms of one pipeline, dispatched on ``name`` (did-you-mean on typos)."""
    out = []
    for i, item in enumerate(raw or []):
        ipath = f"{path}[{i}]"
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(ipath, f"expected a mapping with a 'name' ({', '.join(TRANSFORMS)}), got {item!r}")
        name = str(item["name"])
        if name not in TRANSFORMS:
            raise ConfigError(f"{ipath}.name", f"unknown transform {name!r}; valid: {', '.join(TRANSFORMS)}",
                              close_names(name, TRANSFORMS))
        t = build(TRANSFORMS[name], item, ipath)
        if isinstance(t, MosaicT) and (len(t.scale) != 2 or not 0 < t.scale[0] <= t.scale[1]):
            raise ConfigError(f"{ipath}.scale", f"expected [low, high] with 0 < low <= high, got {t.scale}")
        if isinstance(t, NormalizeT) and (len(t.mean) != len(t.std) or any(s <= 0 for s in t.std)):
            raise ConfigError(f"{ipath}", "mean and std need the same length and std > 0")
        out.append(t)
    return out


def output_size(transforms: list[Any]) -> int | None:
    """The image size a pipeline produces (its last geometric transform), or None if it keeps the input's."""
    size = None
    for t in transforms:
        if t.name in GEOMETRIC:
            size = t.size
    return size


# ----------------------------------------------------------------------------- data


@dataclass
class CVDataSpec:
    dataset: str | None = F(None, "bundled dataset prepared on first use (digits, mnist-detection)")
    train_path: str | None = F(None, "list file, image folder or COCO JSON (any fsspec URL)")
    eval_path: str | None = F(None, "held-out data, same formats")
    format: Literal["auto", "list", "folder", "coco"] = F(
        "auto", "list: '<path> <label>' lines; folder: one sub-folder per class; coco: COCO JSON "
                "(detection); auto: .json -> coco, a directory -> folder, else list")
    image_root: str | None = F(None, "base of relative image paths; null: the list/JSON file's directory")
    classes: list[str] | None = F(None, "class names in index order; null: from the data "
                                        "(classes.txt beside a list file, folder names, COCO categories)")
    channels: Literal[1, 3] = F(3, "decode images as grey (1) or RGB (3)")
    image_size: int = F(32, "model input height and width; the transforms must produce it", ge=8)
    train_transforms: list[dict[str, Any]] = F(
        [{"name": "resize", "size": 32}, {"name": "normalize", "mean": [0.5], "std": [0.5]}],
        "training augmentation pipeline, applied in order (see README: easycv); transforms: resize {size, "
        "keep_ratio, pad_value}, random_crop {size, padding, pad_value, min_visible}, hflip/vflip {p}, "
        "color_jitter {brightness, contrast, saturation, p}, normalize {mean, std}, mosaic {size, p, scale, "
        "min_visible} (detection, first)")
    eval_transforms: list[dict[str, Any]] = F(
        [{"name": "resize", "size": 32}, {"name": "normalize", "mean": [0.5], "std": [0.5]}],
        "evaluation / prediction / export preprocessing, applied in order (the transforms above)")
    batch_size: int = F(64, "training batch size", ge=1)
    eval_batch_size: int = F(256, "evaluation / prediction batch size", ge=1)
    shuffle: bool = F(True, "shuffle training images each epoch (seeded)")
    limit_train_rows: int | None = F(None, "use at most this many training images (tests, smoke runs)", ge=1)
    limit_eval_rows: int | None = F(None, "use at most this many evaluation images", ge=1)
    cache_images: bool = F(True, "keep decoded images in memory after the first epoch")
    prefetch_batches: int = F(4, "batches prepared ahead by the loader thread", ge=1)
    on_error: Literal["raise", "skip"] = F("raise", "unreadable image: raise names the file; skip counts it")
    storage_options: dict[str, Any] = F({}, "fsspec storage options")


# ----------------------------------------------------------------------------- models


@dataclass
class EmaSpec:
    enabled: bool = F(True, "keep an exponential moving average of the weights; eval/export use it")
    decay: float = F(0.999, "EMA decay per step", gt=0, lt=1)
    warmup_steps: int = F(200, "decay ramps up as decay * (1 - exp(-step / warmup_steps))", ge=1)


@dataclass
class TaskInfo:
    name: str
    type: str


@dataclass
class BackboneSpec:
    type: Literal["resnet", "mobilenet"] = F("resnet", "resnet (basic/bottleneck blocks) or mobilenet "
                                                       "(inverted residuals, depthwise convs)")
    stem_channels: int = F(32, "channels of the 3x3 stem conv", ge=1)
    stem_stride: Literal[1, 2] = F(1, "stride of the stem (2 halves the resolution early)")
    widths: list[int] = F([32, 64, 128], "output channels of each stage")
    depths: list[int] = F([1, 1, 1], "blocks per stage")
    strides: list[int] | None = F(None, "stride of each stage's first block; null: 1 then 2 for the rest")
    block: Literal["basic", "bottleneck"] = F("basic", "resnet: block type (bottleneck widths are outputs)")
    expand_ratio: int = F(4, "mobilenet: hidden expansion of each inverted residual", ge=1)

    def check(self, path: str) -> None:
        if not self.widths or len(self.widths) != len(self.depths):
            raise ConfigError(f"{path}.depths", f"needs one entry per stage of widths ({len(self.widths)}), "
                              f"got {len(self.depths)}")
        if self.strides is not None and len(self.strides) != len(self.widths):
            raise ConfigError(f"{path}.strides", f"needs one entry per stage ({len(self.widths)})")
        for key in ("widths", "depths"):
            if any(v < 1 for v in getattr(self, key)):
                raise ConfigError(f"{path}.{key}", "entries must be >= 1")
        if self.strides is not None and any(s not in (1, 2) for s in self.strides):
            raise ConfigError(f"{path}.strides", "entries must be 1 or 2")

    def stage_strides(self) -> list[int]:
        return list(self.strides) if self.strides is not None else [1] + [2] * (len(self.widths) - 1)

    def reductions(self) -> list[int]:
        """Total stride (input pixels per feature cell) after each stage."""
        out, r = [], self.stem_stride
        for s in self.stage_strides():
            r *= s
            out.append(r)
        return out


@dataclass
class ClassifierSpec(BackboneSpec):
    """resnet / mobilenet image classifier: backbone, global average pooling, linear head."""

    name: str = F("resnet", "model-zoo entry: resnet | mobilenet | yolox")
    dropout: float = F(0.0, "dropout before the classification head", ge=0, lt=1)
    label_smoothing: float = F(0.0, "cross-entropy label smoothing", ge=0, lt=1)
    ema: EmaSpec = F(EmaSpec(), "weight EMA")

    task: ClassVar[str] = "classification"

    @property
    def tasks(self) -> list[TaskInfo]:
        return [TaskInfo("label", "multiclass")]

    def check(self) -> None:
        BackboneSpec.check(self, "model")


@dataclass
class YoloxSpec:
    """Anchor-free YOLOX-style detector: backbone, FPN-lite neck, decoupled head, SimOTA-lite."""

    name: str = F("yolox", "model-zoo entry: resnet | mobilenet | yolox")
    backbone: BackboneSpec = F(BackboneSpec(stem_channels=16, stem_stride=2, widths=[24, 48, 96],
                                            depths=[1, 2, 1], strides=[2, 2, 2]), "the feature extractor")
    out_strides: list[int] = F([8, 16], "feature levels the head predicts on (backbone reductions)")
    neck_channels: int = F(48, "channels of the FPN-lite levels", ge=1)
    head_channels: int = F(48, "channels of the decoupled head branches", ge=1)
    head_convs: int = F(1, "3x3 convs in each head branch", ge=1)
    assigner: Literal["simota", "center"] = F(
        "simota", "label assignment: simota (dynamic-k by cost, YOLOX) or center (every point near a "
                  "box centre and inside it)")
    center_radius: float = F(2.5, "candidate points lie within this many strides of a box centre", gt=0)
    candidate_topk: int = F(10, "simota: IoUs summed for each box's dynamic k", ge=1)
    box_weight: float = F(5.0, "weight of the IoU loss", ge=0)
    score_thresh: float = F(0.01, "keep detections scoring above this (eval, predict)", ge=0, lt=1)
    nms_iou: float = F(0.65, "class-wise NMS IoU threshold", gt=0, le=1)
    max_detections: int = F(100, "detections kept per image", ge=1)
    ema: EmaSpec = F(EmaSpec(), "weight EMA")

    task: ClassVar[str] = "detection"

    @property
    def tasks(self) -> list[TaskInfo]:
        return [TaskInfo("boxes", "detection")]

    def check(self) -> None:
        self.backbone.check("model.backbone")
        red = self.backbone.reductions()
        for i, s in enumerate(self.out_strides):
            if s not in red:
                raise ConfigError(f"model.out_strides[{i}]", f"the backbone has no level of stride {s}; "
                                  f"its stages reduce by {red}")
        if sorted(set(self.out_strides)) != list(self.out_strides):
            raise ConfigError("model.out_strides", "must be increasing and distinct")


MODELS: dict[str, type] = {"resnet": ClassifierSpec, "mobilenet": ClassifierSpec, "yolox": YoloxSpec}


def build_model_spec(raw: dict[str, Any]) -> Any:
    """The model spec picked by ``model.name``."""
    name, cls = chosen_model(raw, MODELS, "easycv")
    data = dict(raw)
    if name == "mobilenet":
        data.setdefault("type", "mobilenet")
    elif name == "resnet":
        data.setdefault("type", "resnet")
    spec = build(cls, data, "model")
    if name in ("resnet", "mobilenet") and spec.type != name:
        raise ConfigError("model.type", f"model {name} has a {name} backbone; use model={spec.type} instead")
    spec.check()
    return spec


# ----------------------------------------------------------------------------- root


@dataclass
class CVRunSpec:
    """The validated easycv config: the root groups, the typed model and the typed pipelines."""

    root: RootSpec  # .data is a CVDataSpec
    model: Any  # ClassifierSpec | YoloxSpec
    train_transforms: list[Any]
    eval_transforms: list[Any]

    @property
    def task_types(self) -> dict[str, str]:
        return {t.name: t.type for t in self.model.tasks}

    @property
    def detection(self) -> bool:
        return self.model.task == "detection"


def validate_root(cfg: dict[str, Any]) -> CVRunSpec:
    """Check a plain config dict of ``domain: cv``; raise ConfigError naming the path and the fix."""
    root = build_root(cfg, CVDataSpec)
    if root.features:
        raise ConfigError("features", "easycv experiments take no feature columns; remove the features: block "
                          "(images are read through the data group)")
    model = build_model_spec(root.model)
    data, trainer = root.data, root.trainer
    if trainer.backend != "torch":
        raise ConfigError("trainer.backend", "easycv models are torch models; use trainer.backend=torch")
    if trainer.mode == "stream":
        raise ConfigError("trainer.mode", "stream (online training from Kafka) is for recommendation; easycv "
                          "runs train | evaluate | predict | export")
    if trainer.mode == "train" and not data.train_path:
        raise ConfigError("data.train_path", "required for trainer.mode=train")
    train_t = build_transforms(data.train_transforms, "data.train_transforms")
    eval_t = build_transforms(data.eval_transforms, "data.eval_transforms")
    for key, pipeline in (("train_transforms", train_t), ("eval_transforms", eval_t)):
        size = output_size(pipeline)
        if size is not None and size != data.image_size:
            raise ConfigError(f"data.{key}", f"the pipeline produces {size}x{size} images but data.image_size is "
                              f"{data.image_size}; make its last resize/crop size {data.image_size}")
        for i, t in enumerate(pipeline):
            if t.name == "mosaic" and (key != "train_transforms" or i != 0 or model.task != "detection"):
                raise ConfigError(f"data.{key}[{i}]", "mosaic must be the first training transform of a "
                                  "detection model (it joins 4 decoded images)")
            if isinstance(t, NormalizeT) and len(t.mean) not in (1, data.channels):
                raise ConfigError(f"data.{key}[{i}].mean", f"needs 1 or {data.channels} values (data.channels)")
    if data.format == "coco" and model.task != "detection":
        raise ConfigError("data.format", "coco data is read for detection models (model=yolox); classifiers "
                          "read list files or image folders")
    if model.task == "detection" and data.format in ("list", "folder"):
        raise ConfigError("data.format", "a detector reads boxes from COCO JSON: use data.format=coco (or auto)")
    return CVRunSpec(root=root, model=model, train_transforms=train_t, eval_transforms=eval_t)
