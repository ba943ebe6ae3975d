"""DIN: padded history positions never change the prediction; valid ones do; the target
and the history share one table."""
from __future__ import annotations

import torch

from easyrec.models import specs
from easyrec.models.torch.base import ServingModule
from tests.easyrec.zoo_helpers import FEATURES, make_batch, make_config


def _din(softmax: bool = False):
    torch.manual_seed(0)
    cfg = make_config("din")
    cfg.attention_softmax = softmax
    return specs.build_model(cfg, FEATURES)


def test_padded_positions_do_not_change_the_output() -> None:
    for softmax in (False, True):
        model = _din(softmax)
        inputs, _ = make_batch(8, seed=5)
        inputs["hist.lengths"] = torch.tensor([6, 3, 0, 1, 5, 2, 4, 0])
        mask = torch.arange(6).unsqueeze(0) < inputs["hist.lengths"].unsqueeze(1)
        inputs["hist.values"] = inputs["hist.values"].clamp(min=1) * mask
        for mode in ("train", "eval"):
            model.train(mode == "train")
            before = model(inputs)["like"]
            junk = dict(inputs)
            junk["hist.values"] = torch.where(mask, inputs["hist.values"],
                                              torch.randint(0, 64, (8, 6)))
            torch.testing.assert_close(model(junk)["like"], before)
            valid = dict(inputs)
            valid["hist.values"] = inputs["hist.values"].clone()
            valid["hist.values"][1, 0] = (valid["hist.values"][1, 0] + 1) % 64
            after = model(valid)["like"]
            assert not torch.allclose(after[1], before[1])
            torch.testing.assert_close(after[0], before[0])


def test_history_attends_through_the_candidates_table() -> None:
    model = _din()
    bags = [m for m in model.modules() if isinstance(m, torch.nn.EmbeddingBag)]
    # user_id, item (shared by item_id and hist) in the width-8 weight; tags in width 4
    assert sorted(b.weight.shape[0] for b in bags) == [20, 128]
    assert model.target_names == ["item_id"]


def test_serving_scripted_din_matches_eager() -> None:
    serving = ServingModule(_din())
    scripted = torch.jit.script(serving)
    inputs, _ = make_batch(4)
    torch.testing.assert_close(scripted(inputs)["like"], serving(inputs)["like"])
