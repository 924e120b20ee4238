"""Hard negatives (finetune.hard_negatives, run "pcclip_hn"): the loss by hand, the trainer's use of each pair's
false descriptions, the data path from the synthesis store, the profile checks and the runs."""
from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch

from pcclip.embeddings import difference_vectors, normalize
from pcclip.finetune import finetune
from pcclip.fingerprint import fingerprint
from pcclip.losses import difference_loss, hard_negative_info_nce, symmetric_info_nce
from pcclip.models import checkpoint_meta, save_clip
from pcclip.paths import run_paths
from pcclip.profiles import FinetuneConfig, load_profile
from pcclip.runs import checkpoint_path, profile_runs, run_config, run_settings, train_run
from pcclip.synthesis.store import DifferenceStore, load_accepted
from pcclip.traindata import TrainData, load_data, save_data
from pcclip.training import batch_indices

# description -> its role swap and its negation, as the template writer records them
NEGATIVES = {
    "the first object is larger than the second": ["the second object is larger than the first",
                                                   "the first object is not larger than the second"],
    "the first object is smaller than the second": ["the second object is smaller than the first",
                                                    "the first object is not smaller than the second"],
    "the first shape is further left": ["the second shape is further left"],
    "image two shows a brighter shape": [],
}
CFG = FinetuneConfig(trainable="blocks", steps=1, batch_size=8, lr=0.0, schedule="constant", warmup=0,
                     caption_weight=0.0, log_every=1, temperature=0.2, hard_negatives=True, negatives_per_text=2)


def _data(n_pairs: int = 24, seed: int = 0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(12, 128, generator=g)
    idx1, idx2 = torch.randint(0, 12, (n_pairs,), generator=g), torch.randint(0, 12, (n_pairs,), generator=g)
    texts = [list(NEGATIVES)[i % len(NEGATIVES)] for i in range(n_pairs)]
    captions = [f"a {'small' if i % 2 else 'large'} shape" for i in range(12)]
    return TrainData(emb, idx1, idx2, texts, torch.arange(12), captions, [NEGATIVES[t] for t in texts])


def _expected_step_loss(bundle, data: TrainData, cfg: FinetuneConfig, step: int = 0) -> float:
    """The trainer's logged loss of one step, recomputed from the base model's embeddings: each micro-batch is
    its own contrastive batch, with the first negatives_per_text negatives of each of its pairs."""
    micro, total = cfg.batch_size // cfg.accum_steps, 0.0
    for k in range(cfg.accum_steps):
        ids = batch_indices(step * cfg.accum_steps + k, micro, len(data.texts), cfg.seed).tolist()
        negatives = [(i, t) for i, pair in enumerate(ids) for t in data.negatives[pair][:cfg.negatives_per_text]]
        text = bundle.encode_text([data.texts[p] for p in ids])
        neg = bundle.encode_text([t for _, t in negatives])
        targets = difference_vectors(data.image_emb[data.idx1[ids]], data.image_emb[data.idx2[ids]])
        owner = torch.tensor([i for i, _ in negatives])
        total += hard_negative_info_nce(text, targets, neg, owner, 1 / cfg.temperature).item() / cfg.accum_steps
    return total


def test_hard_negative_loss_hand_computed():
    # logits text x target = I / T. Target 0 has no negative; target 1 has [0.6, 0.8] (cosine 0.8 with it);
    # the padding row (owner -1) counts nowhere
    text, targets = torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.eye(2)
    negatives, owner = torch.tensor([[3.0, 4.0], [-5.0, 1.0]]), torch.tensor([1, -1])
    t = 0.5
    easy = math.log(1 + math.exp(-1 / t))
    hard = math.log(math.exp(0) + math.exp(1 / t) + math.exp(0.8 / t)) - 1 / t
    expected = 0.5 * (easy + 0.5 * (easy + hard))  # text -> image unchanged; image -> text gains the negative
    got = difference_loss(text, targets, t, negatives=negatives, owner=owner)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert got.item() > difference_loss(text, targets, t).item()


def test_own_negatives_only_not_those_of_other_pairs():
    # the same negative owned by pair 0 instead of pair 1: its cosine with target 0 is 0.6, not 0.8
    text, targets, neg = torch.eye(2), torch.eye(2), torch.tensor([[0.6, 0.8]])
    as_one = difference_loss(text, targets, 1.0, negatives=neg, owner=torch.tensor([1])).item()
    as_zero = difference_loss(text, targets, 1.0, negatives=neg, owner=torch.tensor([0])).item()
    easy = math.log(1 + math.exp(-1))
    assert as_zero == pytest.approx(0.5 * (easy + 0.5 * (math.log(1 + math.e + math.exp(0.6)) - 1 + easy)), rel=1e-6)
    assert as_one == pytest.approx(0.5 * (easy + 0.5 * (math.log(1 + math.e + math.exp(0.8)) - 1 + easy)), rel=1e-6)


def test_without_negatives_the_loss_is_the_papers_exactly():
    g = torch.Generator().manual_seed(1)
    text, targets = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    assert torch.equal(difference_loss(text, targets, 0.3), symmetric_info_nce(text, targets, 1 / 0.3))
    padding_only = difference_loss(text, targets, 0.3, negatives=torch.randn(4, 8, generator=g),
                                   owner=torch.full((4,), -1))
    assert padding_only.item() == pytest.approx(symmetric_info_nce(text, targets, 1 / 0.3).item(), rel=1e-6)


def test_a_negative_as_close_as_the_positive_costs_log_2_per_pair():
    # texts equal to their targets at a sharp temperature: the paper's loss is ~0. A negative identical to the
    # positive ties with it, so image -> text costs log 2 (half the symmetric loss); an opposite one costs ~0
    targets = torch.eye(4)
    owner = torch.arange(4)
    assert difference_loss(targets, targets, 0.01).item() < 1e-6
    tie = difference_loss(targets, targets, 0.01, negatives=targets.clone(), owner=owner).item()
    assert tie == pytest.approx(0.5 * math.log(2), rel=1e-5)
    assert difference_loss(targets, targets, 0.01, negatives=-targets, owner=owner).item() < 1e-6
    closer = [difference_loss(targets, targets, 0.1, negatives=targets + s * torch.roll(targets, 1, 1), owner=owner)
              for s in (2.0, 1.0, 0.5)]
    assert closer[0] < closer[1] < closer[2]  # the nearer the negative to its target, the higher the loss


def test_gradients_push_each_negative_away_from_its_own_target():
    g = torch.Generator().manual_seed(2)
    text, targets = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    negatives = torch.randn(4, 8, generator=g, requires_grad=True)
    owner = torch.tensor([0, 2, -1, 2])
    loss = difference_loss(text, targets, 0.5, negatives=negatives, owner=owner)
    loss.backward()
    assert negatives.grad[2].abs().max() == 0 and all(negatives.grad[k].abs().max() > 1e-4 for k in (0, 1, 3))
    with torch.no_grad():
        stepped = negatives - 0.1 * negatives.grad
        cos = lambda n: (normalize(n) * normalize(targets[owner.clamp(min=0)])).sum(1)  # noqa: E731
        assert (cos(stepped)[[0, 1, 3]] < cos(negatives)[[0, 1, 3]]).all()
        assert difference_loss(text, targets, 0.5, negatives=stepped, owner=owner) < loss


def test_negatives_need_the_contrastive_loss():
    with pytest.raises(ValueError, match="contrastive"):
        difference_loss(torch.ones(2, 2), torch.ones(2, 2), 1.0, "mse", torch.ones(1, 2), torch.zeros(1, dtype=torch.long))


def test_traindata_negatives_are_checked_saved_and_keyed(tmp_path):
    data = _data()
    with pytest.raises(ValueError, match="one list of strings per pair"):
        replace(data, negatives=data.negatives[:-1])
    with pytest.raises(ValueError, match="one list of strings per pair"):
        replace(data, negatives=["the second object is larger"] * len(data.texts))
    save_data(data, tmp_path / "d.pt")
    assert load_data(tmp_path / "d.pt").negatives == data.negatives
    (tmp_path / "cut.pt").write_bytes((tmp_path / "d.pt").read_bytes()[:100])  # a copy cut short
    with pytest.raises(ValueError, match=r"training data file .*cut.pt is not one written by pcclip.traindata"):
        load_data(tmp_path / "cut.pt")
    without = replace(data, negatives=None)
    # data without negatives keeps the key of the code before negatives existed
    assert without.key() == fingerprint([data.image_emb, data.idx1, data.idx2, data.caption_idx,
                                         "\x1f".join(data.texts), "\x1f".join(data.caption_texts)])
    assert data.key() != without.key()
    assert replace(data, negatives=[n[:1] for n in data.negatives]).key() != data.key()


def test_first_step_loss_with_hard_negatives_is_computed_by_hand(tiny_bundle):
    data = _data()
    for cfg in (CFG, replace(CFG, negatives_per_text=1), replace(CFG, accum_steps=2, length_buckets=1),
                replace(CFG, length_buckets=3)):
        logged = finetune(tiny_bundle, data, cfg, progress=False).history[0]["loss"]
        assert logged == pytest.approx(_expected_step_loss(tiny_bundle, data, cfg), rel=1e-5), cfg
    off = finetune(tiny_bundle, data, replace(CFG, hard_negatives=False), progress=False).history[0]["loss"]
    assert off < finetune(tiny_bundle, data, CFG, progress=False).history[0]["loss"]


def test_switch_off_trains_exactly_as_without_negatives(tiny_bundle):
    data, cfg = _data(), replace(CFG, hard_negatives=False, steps=3, lr=1e-3)
    ours = finetune(tiny_bundle, data, cfg, progress=False)
    plain = finetune(tiny_bundle, replace(data, negatives=None), cfg, progress=False)
    assert ours.history == plain.history
    assert all(torch.equal(v, plain.bundle.model.state_dict()[k]) for k, v in ours.bundle.model.state_dict().items())


def test_training_with_negatives_moves_them_away_from_their_pairs(tiny_bundle):
    # each description's pairs differ along one direction of its own, so there is something to learn
    g = torch.Generator().manual_seed(3)
    n, kinds = 24, len(NEGATIVES)
    rest, directions = torch.randn(n, 128, generator=g), torch.randn(kinds, 128, generator=g)
    emb = torch.cat([rest + 2.0 * directions[torch.arange(n) % kinds], rest])
    texts = [list(NEGATIVES)[i % kinds] for i in range(n)]
    data = TrainData(emb, torch.arange(n), torch.arange(n) + n, texts, negatives=[NEGATIVES[t] for t in texts])
    cfg = replace(CFG, steps=6, lr=1e-3, batch_size=12)
    pairs = [(i, t) for i, negs in enumerate(data.negatives) for t in negs]
    targets = difference_vectors(data.image_emb[data.idx1], data.image_emb[data.idx2])

    def margin(bundle) -> float:  # mean cosine of each positive minus that of its own negatives, with its target
        pos = (normalize(bundle.encode_text(data.texts)) * targets).sum(1)
        neg = (normalize(bundle.encode_text([t for _, t in pairs])) * targets[[i for i, _ in pairs]]).sum(1)
        return float(pos[[i for i, _ in pairs]].mean() - neg.mean())

    with_hn = finetune(tiny_bundle, data, cfg, progress=False).bundle
    without = finetune(tiny_bundle, data, replace(cfg, hard_negatives=False), progress=False).bundle
    assert margin(with_hn) > margin(without) + 0.2 and margin(with_hn) > margin(tiny_bundle) + 0.2


def test_missing_negatives_fail_naming_the_fix(tiny_bundle, tmp_path):
    data = replace(_data(), negatives=None)
    with pytest.raises(ValueError, match=r"TrainData\(negatives=\.\.\.\)"):
        finetune(tiny_bundle, data, CFG, progress=False)
    with pytest.raises(ValueError, match="no pair has a negative"):
        finetune(tiny_bundle, replace(data, negatives=[[] for _ in data.texts]), CFG, progress=False)
    with pytest.raises(ValueError, match="finetune.hard_negatives needs finetune.loss='contrastive'"):
        finetune(tiny_bundle, _data(), replace(CFG, loss="mse"), progress=False)
    base_file = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", base_file)
    profile = load_profile("smoke", {"model.pretrained": str(base_file), "finetune.hard_negatives": True})
    paths = run_paths(profile.name)
    with pytest.raises(ValueError, match=r"differences\.jsonl have no 'negatives' field: regenerate .* template "
                                         r"writer .*01_data_synthesis"):
        train_run(profile, paths, "pcclip_hn", tiny_bundle, data, progress=False)


def test_store_records_lend_their_negatives_when_every_accepted_one_has_them(tmp_path):
    path = tmp_path / "differences.jsonl"
    rows = [{"pair_id": f"{k}-{k + 1}", "index": k, "accepted": k != 2, "idx1": k, "idx2": k + 1,
             "text": f"pair {k}", "negatives": [f"swap {k}", f"not {k}"][:1 + k % 2]} for k in range(4)]
    with DifferenceStore(path, {"source": "test"}) as store:
        for row in rows:
            store.append(row)
    assert load_accepted(path).negatives == [["swap 0"], ["swap 1", "not 1"], ["swap 3", "not 3"]]
    older = tmp_path / "older.jsonl"
    with DifferenceStore(older, {"source": "test"}) as store:
        for row in rows:
            store.append({k: v for k, v in row.items() if k != "negatives" or row["index"] != 1})
    assert load_accepted(older).negatives is None and load_accepted(older).texts == ["pair 0", "pair 1", "pair 3"]


def test_profile_checks_and_the_pcclip_hn_run():
    with pytest.raises(ValueError, match=r"finetune.negatives_per_text=0 \(allowed: >= 1\)"):
        load_profile("smoke", {"finetune.negatives_per_text": 0})
    with pytest.raises(ValueError, match="hard_negatives=true needs finetune.loss='contrastive'"):
        load_profile("smoke", {"finetune.hard_negatives": True, "finetune.loss": "mse"})
    for name in ("smoke", "diffworld", "paper", "rehearsal"):
        assert not load_profile(name).finetune.hard_negatives and "pcclip_hn" not in profile_runs(load_profile(name))
    off, on = load_profile("smoke"), load_profile("smoke", {"finetune.hard_negatives": True})
    assert profile_runs(on) == ("base", "pcclip", "pcclip_hn", "caption_ft")
    assert run_config(on.finetune, "pcclip_hn").hard_negatives and run_config(off.finetune, "pcclip_hn").hard_negatives
    assert not any(run_config(on.finetune, r).hard_negatives for r in ("base", "pcclip", "caption_ft", "rewritten_ft"))


def test_pcclip_hn_trains_beside_pcclip_whose_recipe_is_unchanged(tiny_bundle, tmp_path):
    from pcclip.basemodel import load_base_model
    from pcclip.loading import load_models

    base_file = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", base_file)
    sizes = {"model.pretrained": str(base_file), "finetune.steps": 2, "finetune.batch_size": 8,
             "finetune.caption_steps": 2, "finetune.caption_batch_size": 8, "finetune.trainable": "blocks"}
    off = load_profile("smoke", sizes)
    on = load_profile("smoke", {**sizes, "finetune.hard_negatives": True, "finetune.negatives_per_text": 1})
    paths = run_paths(on.name)
    base = load_base_model(on, paths)
    data = _data(16, seed=4)
    fields = asdict(on.finetune)
    recipe = run_settings(on, "pcclip", base)
    assert recipe == run_settings(off, "pcclip", base)  # the switch leaves pcclip's recipe (and checkpoint) alone
    assert recipe["finetune"] == {k: v for k, v in fields.items()
                                  if not k.startswith("rewritten_")
                                  and k not in ("hard_negatives", "negatives_per_text", "seeds", "relational_captions")}
    summaries = {run: train_run(on, paths, run, base, data, progress=False) for run in profile_runs(on)}
    assert summaries["pcclip_hn"].steps == 2 and not summaries["pcclip_hn"].reused
    hn = checkpoint_meta(checkpoint_path(paths, "pcclip_hn", on.finetune.seed))["recipe"]
    assert hn["finetune"]["hard_negatives"] and hn["finetune"]["negatives_per_text"] == 1 and hn["data"] == data.key()
    plain = checkpoint_meta(checkpoint_path(paths, "pcclip", on.finetune.seed))["recipe"]
    assert plain["data"] == replace(data, negatives=None).key()  # pcclip never saw the negatives
    assert train_run(off, paths, "pcclip", base, data, progress=False).reused
    models = load_models(on, paths)
    assert set(models) == {"base", "pcclip", "pcclip_hn", "caption_ft", "pcclip_wa"}
    assert models["pcclip_hn"].fingerprint != models["pcclip"].fingerprint
