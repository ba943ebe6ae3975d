"""easycv data: list / folder / COCO records, the YAML augmentation pipeline, the loader."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from easycv.data.loader import ImageLoader, ImageSource
from easycv.data.records import read_records
from easycv.data.transforms import Pipeline, Sample
from easycv.schema import build_transforms, validate_root
from tests.conftest import compose
from lingjie.errors import ConfigError, DataError


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small ops: 1 intra-op thread is faster here


def _png(path: Path, value: int, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """root/<class>/<n>.png with 6 'cat' (dark) and 6 'dog' (bright) images + a list file."""
    root = tmp_path / "imgs"
    lines = []
    for i in range(12):
        cls = "cat" if i < 6 else "dog"
        _png(root / cls / f"{i:02d}.png", 20 * i)
        lines.append(f"{cls}/{i:02d}.png {cls}")
    (root / "all.txt").write_text("# path label\n" + "\n".join(lines) + "\n")
    return root


def test_list_folder_and_coco_records(folder: Path, tmp_path: Path) -> None:
    lst = read_records(str(folder / "all.txt"), "auto", None, None, {}, "data.train_path", detection=False)
    fold = read_records(str(folder), "auto", None, None, {}, "data.train_path", detection=False)
    assert lst.classes == fold.classes == ["cat", "dog"]
    assert sorted(zip(lst.files, lst.labels.tolist())) == sorted(zip(fold.files, fold.labels.tolist()))
    assert lst.labels.tolist() == [0] * 6 + [1] * 6
    coco = {"images": [{"id": 7, "file_name": "a.png", "width": 8, "height": 8}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 8, 8], "iscrowd": 1}],
            "categories": [{"id": 3, "name": "digit"}, {"id": 1, "name": "thing"}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    rec = read_records(str(tmp_path / "c.json"), "auto", None, None, {}, "data.train_path", detection=True)
    assert rec.classes == ["thing", "digit"]  # category id order
    assert rec.boxes[0].tolist() == [[1, 2, 4, 6]] and rec.box_classes[0].tolist() == [1]  # crowd dropped


def test_bad_list_line_and_unknown_label_name_the_file(folder: Path) -> None:
    bad = folder / "bad.txt"
    bad.write_text("cat/00.png cat\ncat/01.png\n")
    with pytest.raises(DataError, match=r"bad\.txt: line 2"):
        read_records(str(bad), "list", None, None, {}, "data.train_path", detection=False)
    bad.write_text("cat/00.png cow\n")
    with pytest.raises(DataError, match="'cow'"):
        read_records(str(bad), "list", None, ["cat", "dog"], {}, "data.train_path", detection=False)
    with pytest.raises(ConfigError, match="file not found"):
        read_records(str(folder / "nope.txt"), "list", None, None, {}, "data.train_path", detection=False)


def test_corrupt_image_raises_with_its_name_or_is_skipped_and_counted(folder: Path) -> None:
    (folder / "dog" / "09.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    rec = read_records(str(folder), "folder", None, None, {}, "data.train_path", detection=False)
    pipe = Pipeline(build_transforms([{"name": "resize", "size": 8}], "t"))
    with pytest.raises(DataError, match=r"09\.png.*cannot decode image.*on_error=skip"):
        list(ImageLoader(ImageSource(rec, 1, "raise"), pipe, 4, 8, False).epoch(0))
    src = ImageSource(rec, 1, "skip")
    batches = [b for _, b in ImageLoader(src, pipe, 4, 8, False).epoch(0)]
    assert sum(b.size for b in batches) == 11
    list(ImageLoader(src, pipe, 4, 8, False).epoch(1))  # a second pass counts the file once
    assert src.stats["bad_rows"] == 1 and src.stats["bad_files"][0].endswith("09.png")


def test_loader_is_deterministic_resumable_and_sharded(folder: Path) -> None:
    rec = read_records(str(folder), "folder", None, None, {}, "data.train_path", detection=False)
    pipe = Pipeline(build_transforms([{"name": "random_crop", "size": 8, "padding": 2},
                                      {"name": "color_jitter"}, {"name": "normalize"}], "t"))

    def batches(rank: int = 0, world: int = 1, epoch: int = 0, skip: int = 0) -> list:
        loader = ImageLoader(ImageSource(rec, 1), pipe, 3, 8, False, shuffle=True, seed=5, rank=rank,
                             world_size=world, augment=True)
        return [b for _, b in loader.epoch(epoch, skip_batches=skip)]

    a, b = batches(), batches()
    assert all(np.array_equal(x.images, y.images) for x, y in zip(a, b))
    assert all(np.array_equal(x.images, y.images) for x, y in zip(a[2:], batches(skip=2)))  # resume
    assert [x.files for x in batches(epoch=1)] != [x.files for x in a]  # a new order each epoch
    shards = [sorted(f for x in batches(r, 2) for f in x.files) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) + len(shards[1]) == 12


def test_transforms_move_boxes_with_pixels() -> None:
    img = torch.zeros(1, 20, 40)
    img[:, 5:10, 2:8] = 1.0  # an object at x 2..8, y 5..10
    box = np.array([[2, 5, 8, 10]], np.float32)
    rng = np.random.default_rng(0)

    def run(spec: list[dict]) -> Sample:
        s = Sample(img.clone(), boxes=box.copy(), classes=np.array([3]), orig_size=(20, 40))
        return Pipeline(build_transforms(spec, "t"))(s, rng)

    s = run([{"name": "hflip", "p": 1.0}])
    assert s.boxes.tolist() == [[32, 5, 38, 10]] and s.image[0, 5:10, 32:38].min() == 1
    s = run([{"name": "resize", "size": 20, "keep_ratio": True}])  # 40x20 -> 20x10 padded to 20x20
    assert s.image.shape == (1, 20, 20) and s.boxes.tolist() == [[1, 2.5, 4, 5]]
    sx, sy, tx, ty = s.affine  # predict maps boxes back with the inverse map
    assert ((s.boxes[0, 0] - tx) / sx, (s.boxes[0, 3] - ty) / sy) == (2, 10)
    for seed in range(5):  # a crop keeps a box only while enough of it stays visible, clipped
        rng = np.random.default_rng(seed)
        s = run([{"name": "random_crop", "size": 12, "min_visible": 0.5}])
        assert all(0 <= v <= 12 for v in s.boxes.ravel())


def test_mosaic_keeps_boxes_inside_and_visible() -> None:
    rng = np.random.default_rng(1)

    def sample(k: int) -> Sample:
        img = torch.zeros(1, 64, 64)
        img[:, 10:30, 20:40] = 1.0
        return Sample(img, boxes=np.array([[20, 10, 40, 30]], np.float32), classes=np.array([k]), orig_size=(64, 64))

    pipe = Pipeline(build_transforms([{"name": "mosaic", "size": 64, "p": 1.0, "scale": [0.5, 0.5]}], "t"))
    seen = set()
    for _ in range(6):
        s = pipe(sample(0), rng, lambda n: [sample(k + 1) for k in range(n)])
        assert s.image.shape == (1, 64, 64)
        seen.update(s.classes.tolist())
        for x1, y1, x2, y2 in s.boxes:  # kept boxes lie inside and cover inked (visible) pixels
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            assert s.image[0, int(y1) + 1:int(y2) - 1, int(x1) + 1:int(x2) - 1].min() > 0.9
        assert np.isnan(s.affine[0])  # no single map back to one source image
    assert seen == {0, 1, 2, 3}  # every quadrant's image shows up


def test_schema_errors_name_the_transform_and_the_fix() -> None:
    base = ["+experiment=digits_resnet"]
    with pytest.raises(ConfigError) as info:
        validate_root(compose([*base, "data.train_transforms=[{name: rezise, size: 16}]"]))
    assert info.value.path == "data.train_transforms[0].name" and "resize" in info.value.suggestions
    with pytest.raises(ConfigError, match="produces 20x20 images but data.image_size is 16"):
        validate_root(compose([*base, "data.eval_transforms=[{name: resize, size: 20}]"]))
    with pytest.raises(ConfigError, match="mosaic must be the first training transform of a detection"):
        validate_root(compose([*base, "data.train_transforms=[{name: mosaic, size: 16}]"]))
    with pytest.raises(ConfigError) as info:
        validate_root(compose([*base, "model.widths=[8,16]"]))
    assert info.value.path == "model.depths"
    with pytest.raises(ConfigError) as info:
        validate_root(compose(["+experiment=mnist_detection", "model.out_strides=[8,32]"]))
    assert info.value.path == "model.out_strides[1]" and "reduce by [4, 8, 16]" in str(info.value)
    with pytest.raises(ConfigError, match="unknown easycv model 'resnt'") as info:
        validate_root(compose([*base, "model.name=resnt"]))
    assert "resnet" in info.value.suggestions


def test_every_easycv_knob_is_in_the_group_yaml() -> None:
    """data/cv_base.yaml and model/{resnet,mobilenet,yolox}.yaml list every schema key (no '+' needed)."""
    import dataclasses

    from easycv.schema import BackboneSpec, CVDataSpec, EmaSpec, MODELS

    def missing(cls: type, node: dict) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in node]

    for exp in ("digits_resnet", "mnist_detection"):
        assert not missing(CVDataSpec, compose([f"+experiment={exp}"])["data"]), exp
    for name in ("resnet", "mobilenet", "yolox"):
        node = compose(["+experiment=digits_resnet", f"model={name}"])["model"]
        assert not missing(MODELS[name], node), name
        assert not missing(EmaSpec, node["ema"]), name
        if name == "yolox":
            assert not missing(BackboneSpec, node["backbone"])
