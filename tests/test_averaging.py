"""Weight averaging: hand-computed blends, refusals, and the interpolation sweep over text-tower changes."""
from __future__ import annotations

import copy

import pytest
import torch

from pcclip.averaging import averaged_bundle, changed_entries, interpolate_state_dicts, interpolation_sweep
from pcclip.models import ClipBundle, state_fingerprint


def test_interpolation_hand_computed():
    base = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    ft = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(3)}
    out = interpolate_state_dicts(base, ft, 0.25)
    assert out["w"].tolist() == [1.0, 3.0]  # 0.25 * ft + 0.75 * base
    assert out["n"].item() == 3
    assert torch.equal(interpolate_state_dicts(base, ft, 0.0)["w"], base["w"])
    assert torch.equal(interpolate_state_dicts(base, ft, 1.0)["w"], ft["w"])
    assert out["w"] is not base["w"] and base["w"].tolist() == [0.0, 2.0]  # inputs untouched


def test_interpolation_refuses_mismatched_state_dicts():
    base = {"w": torch.zeros(2), "n": torch.tensor(1)}
    with pytest.raises(ValueError, match="different entries"):
        interpolate_state_dicts(base, {"w": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        interpolate_state_dicts(base, {"w": torch.zeros(3), "n": torch.tensor(1)}, 0.5)
    with pytest.raises(ValueError, match="non-float entry 'n'"):
        interpolate_state_dicts(base, {"w": torch.zeros(2), "n": torch.tensor(2)}, 0.5)


def _text_edited(bundle: ClipBundle) -> ClipBundle:
    """A copy whose text transformer weights moved (as finetuning would), image tower untouched."""
    model = copy.deepcopy(bundle.model)
    with torch.no_grad():
        for p in model.transformer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return ClipBundle(model, bundle.preprocess, bundle.tokenizer, bundle.model_name, bundle.pretrained,
                      state_fingerprint(bundle.model_name, model.state_dict()))


def test_changed_entries_are_the_text_transformer(tiny_bundle):
    ft = _text_edited(tiny_bundle)
    keys = changed_entries(tiny_bundle.model.state_dict(), ft.model.state_dict())
    assert keys and all(k.startswith("transformer.") for k in keys)
    assert len(keys) == len(list(tiny_bundle.model.transformer.state_dict()))


def test_averaged_bundle_blends_weights_and_keeps_image_tower(tiny_bundle):
    ft = _text_edited(tiny_bundle)
    mid = averaged_bundle(tiny_bundle, ft, 0.5)
    key = "transformer.resblocks.0.mlp.c_fc.weight"
    b, f, m = (x.model.state_dict()[key] for x in (tiny_bundle, ft, mid))
    assert torch.allclose(m, 0.5 * (b + f), atol=1e-7)
    for k, v in tiny_bundle.model.visual.state_dict().items():
        assert torch.equal(mid.model.visual.state_dict()[k], v)
    assert mid.fingerprint not in (tiny_bundle.fingerprint, ft.fingerprint)
    assert averaged_bundle(tiny_bundle, ft, 1.0).fingerprint == ft.fingerprint


def test_interpolation_sweep_matches_separately_averaged_models(tiny_bundle):
    ft = _text_edited(tiny_bundle)
    texts = ["the first object is larger than the second", "a red circle"]
    before = tiny_bundle.model.state_dict()["transformer.resblocks.0.attn.in_proj_weight"].clone()

    def evaluate(bundle):
        emb = bundle.encode_text(texts)
        return {"x": float(emb[0, 0]), "fingerprint": bundle.fingerprint}

    rows = interpolation_sweep(tiny_bundle, ft, [0.0, 0.3, 1.0], evaluate)
    assert [r["alpha"] for r in rows] == [0.0, 0.3, 1.0]
    for row in rows:
        ref = averaged_bundle(tiny_bundle, ft, row["alpha"])
        assert row["x"] == pytest.approx(float(ref.encode_text(texts)[0, 0]), abs=1e-5)
        assert row["fingerprint"] == ref.fingerprint
    assert rows[0]["fingerprint"] == tiny_bundle.fingerprint
    assert torch.equal(tiny_bundle.model.state_dict()["transformer.resblocks.0.attn.in_proj_weight"], before)
