"""Delta exports (trainer.export.delta_every_steps): a tiny movielens deepfm run writes a base
export at step 0 and a delta every 2 steps; replaying the chain on the base reproduces the
final full export's predictions exactly; broken or out-of-chain deltas are refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lingjie.errors import ConfigError, DataError
from tests.conftest import compose
from tests.continuous.helpers import movielens_rows, train_with_deltas


@pytest.fixture(scope="module")
def deltas_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_with_deltas(tmp_path_factory.mktemp("deltas"), "movielens_deepfm")


def test_replayed_deltas_equal_the_full_export(deltas_run: tuple[Path, Path]) -> None:
    from easyrec.serving import ExportedModel

    run, kept = deltas_run
    final = json.loads((run / "export" / "meta.json").read_text())
    assert final["version"] == "8"  # 2000 rows / 256 = 8 steps: the final export is labelled with its step
    assert not list((run / "export" / "deltas").iterdir())  # the final full export superseded the chain
    model, full = ExportedModel(kept), ExportedModel(run / "export")
    assert model.version == "0" and [p.name for p in model.pending_deltas()] == \
        ["delta-00000002", "delta-00000004", "delta-00000006", "delta-00000008"]
    table = movielens_rows()
    before = model.predict(table)["like"]
    assert model.apply_pending_deltas() == [2, 4, 6, 8] and model.delta_step == 8
    replayed, expected = model.predict(table)["like"], full.predict(table)["like"]
    assert np.abs(before - expected).max() > 1e-3  # the deltas did change the model
    np.testing.assert_array_equal(replayed, expected)  # bit for bit
    assert model.pending_deltas() == []


def test_manifest_and_sizes(deltas_run: tuple[Path, Path]) -> None:
    _, kept = deltas_run
    manifests = [json.loads((kept / "deltas" / f"delta-{s:08d}" / "manifest.json").read_text()) for s in (2, 4, 6, 8)]
    assert [(m["step"], m["previous"], m["base"]) for m in manifests] == [(2, None, "0"), (4, 2, "0"), (6, 4, "0"),
                                                                          (8, 6, "0")]
    m = manifests[0]
    assert m["format"] == "lingjie.delta" and m["version"] == 1 and m["program_format"] == "torch_export"
    tables = m["tables"]
    assert {t["kind"] for t in tables.values()} == {"rows"} and len(tables) == 2  # fused deep + wide tables
    wide = next(t for n, t in tables.items() if n.startswith("wide."))
    assert 0 < wide["changed"] < wide["rows"]  # only the rows of the ids seen meanwhile
    assert m["bytes"] == (kept / "deltas" / "delta-00000002" / "delta.pt").stat().st_size
    assert "mlp.net.0.weight" in m["dense"]


def _fresh(kept: Path, tmp: Path):
    from easyrec.serving import ExportedModel

    copy = tmp / "export"
    shutil.copytree(kept, copy)
    return ExportedModel(copy), copy


def test_corrupt_and_out_of_chain_deltas_are_refused(deltas_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, kept = deltas_run
    model, export = _fresh(kept, tmp_path)
    d2, d4 = export / "deltas" / "delta-00000002", export / "deltas" / "delta-00000004"
    with pytest.raises(DataError, match="follows the delta of step 2.*no delta applied"):
        model.apply_delta(d4)  # skipping one
    data = bytearray((d2 / "delta.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d2 / "delta.pt").write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256 mismatch"):
        model.apply_delta(d2)
    assert model.delta_step is None  # nothing applied
    manifest = json.loads((d4 / "manifest.json").read_text())
    (d4 / "manifest.json").write_text(json.dumps({**manifest, "base": "99"}))
    with pytest.raises(DataError, match="version '99'.*loaded export is version '0'"):
        model.apply_delta(d4)
    (d4 / "manifest.json").write_text(json.dumps({**manifest, "format": "something.else"}))
    with pytest.raises(DataError, match="not a lingjie.delta manifest"):
        model.apply_delta(d4)


@pytest.mark.parametrize("override, says", [("trainer.backend=tf", "trainer.backend=torch"),
                                            ("trainer.export.format=onnx", "ONNX graph cannot be patched"),
                                            ("trainer.export.enabled=false", "need trainer.export.enabled=true")])
def test_tf_onnx_and_no_export_refuse_deltas(override: str, says: str) -> None:
    from trainer.schema.validate import validate

    with pytest.raises(ConfigError, match=says):
        validate(compose(["+experiment=movielens_deepfm", "trainer.export.delta_every_steps=5", override]))

