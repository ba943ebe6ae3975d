"""Stable hashing: fixed expected values pin the on-disk contract across versions/machines."""
from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import numpy as np
import pyarrow as pa

from easyrec.features.hashing import hash_to_buckets, hash_to_int64, hash_values

# Computed once; a change here silently re-maps every trained embedding: never update
# these numbers without a state format version bump.
ROOT = str(Path(__file__).resolve().parents[2])
EXPECTED = {"5": 6003376442921572779, "item_42": 3438392347204156075, "user_1": 6052794395819671133}


def test_hash_values_are_pinned():
    got = hash_values(pa.array(list(EXPECTED))).tolist()
    assert got == list(EXPECTED.values())
    assert hash_to_buckets(pa.array(["item_42"]), 1000).tolist() == [EXPECTED["item_42"] % 1000]


def test_int_float_and_string_forms_hash_the_same():
    a = hash_values(pa.array([5], pa.int64()))
    b = hash_values(pa.array(["5"]))
    c = hash_values(pa.array([5.0]))
    d = hash_values(pa.array([5], pa.int32()).dictionary_encode())
    assert a[0] == b[0] == c[0] == d[0] == EXPECTED["5"]


def test_stable_across_processes():
    code = ("import pyarrow as pa; from easyrec.features.hashing import hash_values; "
            "print(hash_values(pa.array(['user_1'])).tolist()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=ROOT)
    assert int(out.stdout) == EXPECTED["user_1"]


def test_nulls_and_nan_go_to_bucket_zero_and_buckets_in_range():
    ids = hash_to_buckets(pa.array(["a", None, "b"]), 7)
    assert ids[1] == 0 and ids.dtype == np.int64
    assert hash_to_buckets(pa.array([float("nan"), 1.0]), 7)[0] == 0
    many = hash_to_buckets(pa.array([str(i) for i in range(10000)]), 13)
    assert many.min() >= 0 and many.max() < 13
    assert len(np.unique(many)) == 13


def test_group_hash_int64():
    g = hash_to_int64(pa.array(["user_1", "user_1", None]))
    assert g.dtype == np.int64
    assert g[0] == g[1] == np.uint64(EXPECTED["user_1"]).view(np.int64)
    assert g[2] == 0
