"""Serving adapter of image exports: JSON instances -> the exported program -> JSON predictions.

``lingjie serve`` loads an export directory through :class:`Adapter` and hands it coalesced
batches of instances from several requests. An instance is an image:

  {"image_b64": "<base64 of PNG / JPEG bytes>"}   (a ``data:image/...;base64,`` prefix is allowed)
  {"image_url": "oss://bucket/cat.jpg"}           (any path or URL of dataio.filesystems)
  "<base64 of PNG / JPEG bytes>"                  (a bare string)

Each image is decoded and preprocessed exactly as ``trainer.mode=predict`` does (the same
decoder, the eval transforms recorded in meta.json; normalisation is inside the program), and the
answer is what predict mode writes for that image: classification ``label`` / ``score`` / ``top5``
(plus every class's ``probabilities``), detection ``boxes`` (x1, y1, x2, y2 in the original
image's pixels) / ``scores`` / ``labels`` after the NMS settings of meta.json. Nothing of training
is loaded: no config, no dataset, no checkpoint.
"""
from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import numpy as np
import torch

from easycv.data.loader import ImageTooLarge, decode_image, image_sample
from easycv.data.transforms import Pipeline
from easycv.models.ops import select_detections
from easycv.results import classification_result, detection_result
from easycv.schema import build_transforms
from lingjie.errors import RequestError
from trainer.oip_tensors import tensor, v2_string_columns
from trainer.torch_backend.programs import load_program

MAX_SIDE = 4096  # pixels: a larger image is refused from its header, before it takes memory
MAX_FILE_BYTES = 32 << 20  # an image_url larger than this is refused (no more than this is read)
IMAGE_KEYS = ("image_b64", "image_url")


class Adapter:
    """An image export (``model.pt2`` / ``model.torchscript.pt`` / ``model.onnx`` + meta.json)
    behind the serving protocol: check, predict and Open Inference Protocol tensors."""

    def __init__(self, export_dir: Path) -> None:
        self.program, self.meta = load_program(Path(export_dir))
        self.name_hint: str = str(self.meta.get("experiment_name") or self.meta.get("experiment") or "")
        self.classes: list[str] = [str(c) for c in self.meta["classes"]]
        self.detection = self.meta["task"] == "detection"
        spec = self.meta["input"]
        _, self.channels, self.height, self.width = spec["shape"]
        # the eval transforms of training, less normalize (the program normalises itself)
        self.pipeline = Pipeline(build_transforms(spec.get("preprocess") or [], "meta.json input.preprocess"))
        post = self.meta.get("postprocess") or {}
        self.score_thresh = float(post.get("score_thresh", 0.01))
        self.nms_iou = float(post.get("nms_iou", 0.65))
        self.max_detections = int(post.get("max_detections", 100))

    # ----------------------------------------------------------------- instances
    def check(self, instances: list[Any]) -> None:
        """Decode every instance's image (RequestError naming the first bad one); cheap enough
        to run before batching, so one bad image fails its own request, not a coalesced batch."""
        for i, inst in enumerate(instances):
            self._decode(i, inst)

    def _field(self, i: int, inst: Any) -> tuple[str, str]:
        """(key, value) of an instance: a bare string is base64; a dict names one image key."""
        if isinstance(inst, str):
            return "image_b64", inst
        if not isinstance(inst, dict):
            raise RequestError(f"instances[{i}]", f"expected an object with image_b64 or image_url, got "
                               f"{type(inst).__name__}")
        found = [k for k in IMAGE_KEYS if k in inst]
        if len(found) != 1:
            raise RequestError(f"instances[{i}]", "expected exactly one of image_b64, image_url" +
                               (f" (got keys {', '.join(map(str, inst))})" if not found else " (got both)"))
        value = inst[found[0]]
        if not isinstance(value, str) or not value:
            raise RequestError(f"instances[{i}].{found[0]}", f"expected a non-empty string, got {type(value).__name__}")
        return found[0], value

    def _bytes(self, i: int, key: str, value: str) -> bytes:
        """The encoded image: base64-decoded, or read through the configured file systems."""
        field = f"instances[{i}].{key}"
        if key == "image_b64":
            if value.startswith("data:") and "," in value:
                value = value.split(",", 1)[1]
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RequestError(field, f"not valid base64 ({exc})") from None
        from dataio.filesystems import filesystem_for

        try:
            fs, inner = filesystem_for(value)
            with fs.open(inner, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)  # bounded: a huge file is never read whole
        except Exception as exc:  # noqa: BLE001 - fsspec backends raise many types
            raise RequestError(field, f"cannot read {value} ({type(exc).__name__}: {exc})") from None
        if len(data) > MAX_FILE_BYTES:
            raise RequestError(field, f"{value} is larger than {MAX_FILE_BYTES} bytes", status=413)
        return data

    def _decode(self, i: int, inst: Any) -> np.ndarray:
        """uint8 [H, W, C] of instance ``i`` (RequestError naming its field when it is bad)."""
        key, value = self._field(i, inst)
        data = self._bytes(i, key, value)
        try:
            return decode_image(data, self.channels, max_side=MAX_SIDE)
        except ImageTooLarge as exc:
            raise RequestError(f"instances[{i}].{key}", f"image too large: {exc}", status=413) from None
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt data
            raise RequestError(f"instances[{i}].{key}", f"cannot decode image ({type(exc).__name__}: {exc})") from None

    def _preprocess(self, arr: np.ndarray) -> Any:
        """The eval transforms of training on one image (a fixed generator: an eval pipeline has
        no random draws, and any it had would not depend on what else is in the batch)."""
        sample = self.pipeline(image_sample(arr), np.random.default_rng(0))
        if tuple(sample.image.shape[1:]) != (self.height, self.width):
            raise RequestError("", f"the export's preprocessing produced a {sample.image.shape[2]}x"
                               f"{sample.image.shape[1]} image, not {self.width}x{self.height}", status=500)
        return sample

    # ----------------------------------------------------------------- predict
    def predict(self, instances: list[Any]) -> list[dict[str, Any]]:
        """One prediction dict per instance, the whole (coalesced) batch in one program call."""
        if not instances:
            return []
        samples = [self._preprocess(self._decode(i, inst)) for i, inst in enumerate(instances)]
        images = torch.stack([s.image for s in samples]).contiguous()
        with torch.no_grad():
            out = self.program(images)
        if not self.detection:
            probs = out["label"].float().numpy()
            return [{**classification_result(p, self.classes),
                     "probabilities": {c: round(float(v), 6) for c, v in zip(self.classes, p)}} for p in probs]
        boxes, scores = out["boxes"].float(), out["scores"].float()
        rows = []
        for b, s in enumerate(samples):
            det = select_detections(boxes[b], scores[b], self.score_thresh, self.nms_iou, self.max_detections)
            rows.append(detection_result(det.numpy(), s.affine, s.orig_size, self.classes))
        return rows

    def example_instances(self) -> list[Any]:
        """A mid-grey PNG the size of the network input (warms the program up)."""
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("L" if self.channels == 1 else "RGB", (self.width, self.height),
                  128 if self.channels == 1 else (128, 128, 128)).save(buf, format="PNG")
        return [{"image_b64": base64.b64encode(buf.getvalue()).decode()}]

    # ----------------------------------------------------------------- Open Inference Protocol
    def v2_inputs_to_instances(self, inputs: list[dict]) -> list[Any]:
        """BYTES tensors ``image_b64`` and/or ``image_url`` of shape [N] (one image per element;
        both together: the same N, one non-empty string per row) -> N instances."""
        columns = v2_string_columns(inputs, IMAGE_KEYS)
        n = len(next(iter(columns.values())))
        rows: list[Any] = []
        for r in range(n):
            rows.append({k: col[r] for k, col in columns.items() if col[r]})
        return rows

    def v2_outputs(self, predictions: list[dict]) -> list[dict]:
        """Classification: ``label`` BYTES [N], ``score`` FP32 [N], ``probabilities`` FP32 [N, C]
        (columns in the export's class order). Detection, padded to the most boxes K of the batch:
        ``num_detections`` INT32 [N], ``boxes`` FP32 [N, K, 4], ``scores`` FP32 [N, K], ``labels``
        BYTES [N, K] (padding: zeros and "")."""
        n = len(predictions)
        if not self.detection:
            return [tensor("label", [n], "BYTES", [p["label"] for p in predictions]),
                    tensor("score", [n], "FP32", [p["score"] for p in predictions]),
                    tensor("probabilities", [n, len(self.classes)], "FP32",
                           [p["probabilities"][c] for p in predictions for c in self.classes])]
        k = max([len(p["scores"]) for p in predictions], default=0)
        pad = lambda p, key, fill: list(p[key]) + [fill] * (k - len(p[key]))  # noqa: E731
        return [tensor("num_detections", [n], "INT32", [len(p["scores"]) for p in predictions]),
                tensor("boxes", [n, k, 4], "FP32", [v for p in predictions for b in pad(p, "boxes", [0.0] * 4)
                                                     for v in b]),
                tensor("scores", [n, k], "FP32", [v for p in predictions for v in pad(p, "scores", 0.0)]),
                tensor("labels", [n, k], "BYTES", [v for p in predictions for v in pad(p, "labels", "")])]

