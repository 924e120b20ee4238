"""The finetuning trainer: trimming, what trains, learning, resume, NaN handling, runs and checkpoints."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from pcclip.embeddings import difference_vectors, normalize
from pcclip.finetune import _setup, _streams, finetune
from pcclip.loading import load_models
from pcclip.losses import NonFiniteLoss, difference_loss, symmetric_info_nce
from pcclip.models import checkpoint_meta, save_clip
from pcclip.paths import run_paths
from pcclip.profiles import FinetuneConfig, load_profile
from pcclip.runs import profile_runs, run_config, train_run
from pcclip.text_tower import encode_batch, encode_tokens, tokenize, trainable_parameters
from pcclip.traindata import TrainData
from pcclip.training import batch_indices
from pcclip.world import sample_records

LARGER = ["the first object is larger than the second", "the first shape is bigger",
          "image one shows a larger object than image two"]
SMALLER = ["the first object is smaller than the second", "the first shape is tinier",
           "image one shows a smaller object than image two"]
CFG = FinetuneConfig(trainable="blocks", steps=8, batch_size=16, lr=1e-3, schedule="constant", warmup=0,
                     caption_weight=0.0, log_every=1, save_every=4, caption_steps=4, caption_batch_size=16)


def _world_data(n_images: int, seed: int) -> tuple[TrainData, np.ndarray]:
    """A tiny DiffWorld-like set: sampled records, embeddings that carry size along one direction,
    all pairs that differ by a caption-bucket third, each described in words."""
    records = sample_records(n_images, np.random.default_rng(seed))
    g = torch.Generator().manual_seed(seed)
    direction = normalize(torch.randn(1, 128, generator=torch.Generator().manual_seed(99)))
    emb = 0.3 * torch.randn(n_images, 128, generator=g) + 3.0 * (torch.tensor(records.size)[:, None] - 0.5) * direction
    a, b = np.nonzero(np.abs(records.size[:, None] - records.size[None, :]) >= 1 / 3)
    rng = np.random.default_rng(seed)
    texts = [(LARGER if records.size[i] > records.size[j] else SMALLER)[rng.integers(3)] for i, j in zip(a, b)]
    captions = [("a large " if s > 0.5 else "a small ") + "shape" for s in records.size]
    return TrainData(emb, torch.as_tensor(a), torch.as_tensor(b), texts, torch.arange(n_images), captions), records.size


def _accuracy(bundle, data: TrainData) -> float:
    scores = (normalize(bundle.encode_text(data.texts)) * difference_vectors(data.image_emb[data.idx1],
                                                                            data.image_emb[data.idx2])).sum(1)
    return float((scores > 0).float().mean())


def test_trimmed_batches_give_full_context_embeddings(tiny_bundle):
    model = tiny_bundle.model
    texts = ["the first object is larger than the second one by far", "a", "a red ring near the top left"]
    tokens, lengths = tokenize(tiny_bundle.tokenizer, model, texts)
    assert lengths.tolist() == (tokens.argmax(dim=1) + 1).tolist() and lengths[1] == 3  # <start> a <end>
    full = model.encode_text(tokens)
    with torch.no_grad():
        trimmed = encode_tokens(model, tokens[:, :int(lengths.max())])
        shortest = encode_tokens(model, tokens[1:2, :int(lengths[1])])
        bucketed = encode_batch(model, tokens, lengths, buckets=2)  # groups ("a", ring) and (first...): reordered
    assert int(lengths.max()) < tokens.shape[1]
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shortest, full[1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bucketed, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("buckets,packed", [(1, True), (2, True), (4, True), (2, False)])
def test_packed_encoding_matches_encode_text_in_values_and_gradients(tiny_bundle, buckets, packed, monkeypatch):
    # the trainer's packed path (no padding in the projections and MLPs, attention in length groups, one
    # token-embedding lookup) against open_clip's own encode_text at full context, for every text parameter;
    # with gradient checkpointing on, the blocks run through open_clip's transformer group by group instead
    model = copy.deepcopy(tiny_bundle.model)
    model.transformer.grad_checkpointing = not packed
    params = trainable_parameters(model, "text")
    texts = ["a", "the first object is larger than the second one by far", "a red ring near the top left",
             "two", " ".join(["the second image shows a bigger blue square"] * 4), "a small shape on the right"]
    tokens, lengths = tokenize(tiny_bundle.tokenizer, model, texts)
    assert lengths.max() == tokens.shape[1] and lengths.min() == 3  # one truncated at the context, one "a"
    weights = torch.randn(len(texts), model.text_projection.shape[1], generator=torch.Generator().manual_seed(0))

    def value_and_grads(encode):
        out = encode()
        return out, torch.autograd.grad((out * weights).sum(), params)

    plain, plain_grads = value_and_grads(lambda: model.encode_text(tokens))
    if packed:
        monkeypatch.setattr(model.transformer, "forward", None)  # the packed path never calls open_clip's blocks
    ours, our_grads = value_and_grads(lambda: encode_batch(model, tokens, lengths, buckets))
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)
    for (name, _), ours_g, plain_g in zip([(n, p) for n, p in model.named_parameters() if p.requires_grad],
                                          our_grads, plain_grads):
        torch.testing.assert_close(ours_g, plain_g, rtol=0, atol=1e-5 * float(plain_g.abs().max()), msg=name)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_trainer_optimizer_updates_as_the_for_loop_one(tiny_bundle, optimizer):
    # the trainer's fused Adam/AdamW against torch's for-loop implementation on the same gradients; rows
    # without gradient (most of the token embedding each step) still decay their moments and move
    cfg = replace(CFG, trainable="text", optimizer=optimizer, weight_decay=0.1)
    run = _setup(tiny_bundle, cfg, _streams(tiny_bundle, _world_data(20, 0)[0], cfg))
    params, fused = run.params, run.optimizer
    plain_params = [p.detach().clone().requires_grad_(True) for p in params]
    plain = (torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW)(
        plain_params, lr=fused.param_groups[0]["lr"], weight_decay=0.1, foreach=False)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        for p, q in zip(params, plain_params):
            rows = (torch.rand(p.shape[:1], generator=g) < 0.3).view(-1, *[1] * (p.dim() - 1))
            p.grad = torch.randn(p.shape, generator=g) * rows
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
    assert not torch.equal(params[0], tiny_bundle.model.token_embedding.weight)
    for p, q in zip(params, plain_params):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-6)


def test_trainable_choices(tiny_bundle):
    model = copy.deepcopy(tiny_bundle.model)
    blocks = trainable_parameters(model, "blocks")
    assert sum(p.numel() for p in blocks) == sum(p.numel() for p in model.transformer.parameters())
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f"transformer.{n}" for n, _ in model.transformer.named_parameters()}
    text = trainable_parameters(model, "text")
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "token_embedding.weight" in trained and "text_projection" in trained and len(text) == len(trained)
    assert not any(n.startswith("visual.") or n == "logit_scale" for n in trained)
    with pytest.raises(ValueError, match="blocks"):
        trainable_parameters(model, "all")


def test_training_lowers_loss_raises_accuracy_and_keeps_image_tower(tiny_bundle):
    train, _ = _world_data(48, seed=0)
    held_out, _ = _world_data(40, seed=1)
    cfg = replace(CFG, steps=12, batch_size=32, log_every=4)
    result = finetune(tiny_bundle, train, cfg, progress=False)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0] - 0.2
    before, after = _accuracy(tiny_bundle, held_out), _accuracy(result.bundle, held_out)
    assert before < 0.7 and after > 0.9, (before, after)
    for k, v in tiny_bundle.model.state_dict().items():  # frozen parts identical, input bundle untouched
        if not k.startswith("transformer."):
            assert torch.equal(result.bundle.model.state_dict()[k], v), k
    assert result.bundle.fingerprint != tiny_bundle.fingerprint and result.steps == 12 and result.skipped == 0


def test_resume_reaches_the_same_weights(tiny_bundle, tmp_path):
    data, _ = _world_data(24, seed=2)
    cfg = replace(CFG, steps=6, save_every=2, learn_temperature=True)
    straight = finetune(tiny_bundle, data, cfg, state_path=tmp_path / "a.pt", progress=False)
    first = finetune(tiny_bundle, data, cfg, state_path=tmp_path / "b.pt", until=3, progress=False)
    assert first.steps == 3 and (tmp_path / "b.pt").exists()
    resumed = finetune(tiny_bundle, data, cfg, state_path=tmp_path / "b.pt", progress=False)
    assert resumed.resumed_from == 3
    for k, v in straight.bundle.model.state_dict().items():
        assert torch.equal(resumed.bundle.model.state_dict()[k], v), k
    assert resumed.history == straight.history
    assert straight.history[-1]["temperature"] != pytest.approx(cfg.temperature)  # the temperature was learnt


def test_learnt_temperature_never_goes_below_clip_floor(tiny_bundle):
    # started at 0.005 (below CLIP's floor of 0.01), the temperature is clamped after the first step: the
    # first row logs the forward pass before the clamp, every later one the floor (Adam at lr 1e-5 moves
    # log 1/T by ~1e-5 a step, far less than the log 2 the clamp removes)
    data, _ = _world_data(24, seed=3)
    cfg = replace(CFG, steps=4, lr=1e-5, temperature=0.005, learn_temperature=True)
    temps = [row["temperature"] for row in finetune(tiny_bundle, data, cfg, progress=False).history]
    assert temps[0] == pytest.approx(0.005, rel=1e-6)
    assert all(t >= 0.01 * (1 - 1e-6) for t in temps[1:]) and temps[1:] == pytest.approx([0.01] * 3, rel=1e-3)


def test_resume_refuses_a_state_of_another_model_or_config(tiny_bundle, tmp_path):
    data, _ = _world_data(24, seed=2)
    finetune(tiny_bundle, data, replace(CFG, steps=2), state_path=tmp_path / "s.pt", progress=False)
    other_arch = replace(tiny_bundle, model_name="ViT-B-32")
    with pytest.raises(ValueError, match=r"another config \(differs in \['model'\]\)"):
        finetune(other_arch, data, replace(CFG, steps=2), state_path=tmp_path / "s.pt", progress=False)
    with pytest.raises(ValueError, match="finetune"):
        finetune(tiny_bundle, data, replace(CFG, steps=2, lr=1.0), state_path=tmp_path / "s.pt", progress=False)


def _poisoned(seed: int) -> tuple[TrainData, FinetuneConfig, list[int]]:
    """One pair, drawn at step 2, points at an image whose embedding is NaN: only step 2 has a NaN loss."""
    data, _ = _world_data(24, seed=seed)
    cfg = replace(CFG, steps=6, batch_size=8)
    n = len(data.texts)
    assert cfg.steps * cfg.batch_size < n  # the first epoch: each pair at most once
    idx2 = data.idx2.clone()
    idx2[batch_indices(2, cfg.batch_size, n, cfg.seed)[3]] = len(data.image_emb)
    emb = torch.cat([data.image_emb, torch.full((1, 128), float("nan"))])
    return TrainData(emb, data.idx1, idx2, data.texts), cfg, [2]


def test_nonfinite_loss_stops_naming_the_step(tiny_bundle):
    data, cfg, bad = _poisoned(3)
    with pytest.raises(NonFiniteLoss, match=f"at step {bad[0]};"):
        finetune(tiny_bundle, data, cfg, progress=False)


def test_nonfinite_steps_are_skipped_and_counted(tiny_bundle):
    data, cfg, bad = _poisoned(3)
    result = finetune(tiny_bundle, data, replace(cfg, skip_nonfinite=True), progress=False)
    assert result.skipped == len(bad) and [r["skipped"] for r in result.history][-1] == len(bad)
    assert all(torch.isfinite(v).all() for v in result.bundle.model.state_dict().values() if v.is_floating_point())
    assert all(np.isnan(r["loss"]) == (r["step"] in bad) for r in result.history)  # log_every=1


def test_accumulation_matches_one_big_batch_for_a_per_pair_loss(tiny_bundle):
    # with the MSE ablation every pair's loss is independent of the others: two micro-batches of 8
    # give the gradient of one batch of 16
    data, _ = _world_data(24, seed=4)
    cfg = replace(CFG, steps=3, loss="mse", grad_clip=0.0)
    one = finetune(tiny_bundle, data, cfg, progress=False)
    two = finetune(tiny_bundle, data, replace(cfg, accum_steps=2), progress=False)
    for k, v in one.bundle.model.state_dict().items():
        torch.testing.assert_close(two.bundle.model.state_dict()[k], v, atol=1e-5, rtol=1e-5)
    assert [r["loss"] for r in two.history] == pytest.approx([r["loss"] for r in one.history], rel=1e-5)


@pytest.mark.parametrize("term_batch, captions", [(0, 16), (4, 4)])  # 0: the caption term takes batch_size
def test_first_step_loss_with_caption_mixing_is_computed_by_hand(tiny_bundle, term_batch, captions):
    data, _ = _world_data(24, seed=5)
    cfg = replace(CFG, steps=1, lr=0.0, caption_weight=0.5, temperature=0.2, caption_temperature=0.05,
                  caption_term_batch=term_batch)
    result = finetune(tiny_bundle, data, cfg, progress=False)
    pairs = batch_indices(0, cfg.batch_size, len(data.texts), cfg.seed)
    caps = batch_indices(0, captions, len(data.caption_texts), cfg.seed + 7919)
    text = tiny_bundle.encode_text([data.texts[i] for i in pairs])
    cap = tiny_bundle.encode_text([data.caption_texts[i] for i in caps])
    expected = difference_loss(text, difference_vectors(data.image_emb[data.idx1[pairs]],
                                                        data.image_emb[data.idx2[pairs]]), 0.2)
    expected = expected + 0.5 * symmetric_info_nce(cap, data.image_emb[data.caption_idx[caps]], 1 / 0.05)
    assert result.history[0]["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_caption_baseline_trains_on_captions(tiny_bundle):
    data, _ = _world_data(32, seed=6)
    result = finetune(tiny_bundle, data, run_config(replace(CFG, caption_steps=12, caption_lr=1e-3), "caption_ft"),
                      progress=False)
    assert result.steps == 12 and result.history[-1]["loss"] < result.history[0]["loss"]
    no_captions = replace(data, caption_idx=None, caption_texts=None)
    with pytest.raises(ValueError, match="needs captions"):
        finetune(tiny_bundle, no_captions, run_config(CFG, "caption_ft"), progress=False)


def test_bad_data_and_config_fail_clearly(tiny_bundle):
    data, _ = _world_data(8, seed=7)
    with pytest.raises(ValueError, match=r"outside \[0, 8\)"):
        TrainData(data.image_emb, data.idx1 + 8, data.idx2, data.texts)
    with pytest.raises(ValueError, match="one entry per pair"):
        TrainData(data.image_emb, data.idx1, data.idx2, data.texts[:-1])
    with pytest.raises(ValueError, match="split evenly"):
        finetune(tiny_bundle, data, replace(CFG, batch_size=10, accum_steps=3), progress=False)
    with pytest.raises(ValueError, match="caption_term_batch=6 must be 0"):
        finetune(tiny_bundle, data, replace(CFG, caption_weight=0.5, caption_term_batch=6, accum_steps=4),
                 progress=False)


def test_runs_checkpoints_and_load_models(tiny_bundle, tmp_path, capsys):
    base_file = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", base_file)
    profile = load_profile("smoke", {"model.pretrained": str(base_file), "finetune.steps": 2, "finetune.batch_size": 8,
                                     "finetune.caption_steps": 2, "finetune.caption_batch_size": 8,
                                     "finetune.trainable": "blocks", "finetune.wa_alpha": 0.25})
    paths = run_paths(profile.name)
    with pytest.raises(FileNotFoundError, match="02_finetune"):
        load_models(profile, paths)
    data, _ = _world_data(16, seed=8)
    from pcclip.basemodel import load_base_model

    base = load_base_model(profile, paths)
    summaries = {run: train_run(profile, paths, run, base, data, progress=False)
                 for run in ("base", "pcclip", "caption_ft")}
    assert summaries["base"].steps == 0 and summaries["pcclip"].steps == 2 and not summaries["pcclip"].reused
    assert train_run(profile, paths, "pcclip", base, data, progress=False).reused
    assert capsys.readouterr().out == ""  # the same thread count: nothing to say
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert train_run(profile, paths, "pcclip", base, data, progress=False).reused
    finally:
        torch.set_num_threads(threads)
    said = capsys.readouterr().out
    assert f"trained with {threads} torch threads (now {threads + 1})" in said and "pcclip.pt" in said
    models = load_models(profile, paths)
    assert set(models) == {"base", "pcclip", "caption_ft", "pcclip_wa"}
    image_state = {k: v for k, v in models["base"].model.state_dict().items() if k.startswith("visual.")}
    for name, bundle in models.items():  # one image tower serves every model
        for k, v in image_state.items():
            assert torch.equal(bundle.model.state_dict()[k], v), (name, k)
    key = "transformer.resblocks.1.mlp.c_proj.weight"
    b, p, w = (models[n].model.state_dict()[key] for n in ("base", "pcclip", "pcclip_wa"))
    torch.testing.assert_close(w, 0.75 * b + 0.25 * p)
    changed = load_profile("smoke", {"model.pretrained": str(base_file), "finetune.steps": 3})
    with pytest.raises(ValueError, match="rerun notebooks/02_finetune"):
        load_models(changed, paths)


def test_finetune_precision_reaches_the_trainer_and_model_precision_does_not(tiny_bundle, tmp_path, monkeypatch):
    """finetune.precision picks the trainer's autocast; model.precision (the image cache) does not. On the CPU
    bf16 autocast is off, so the weights equal an fp32 run's, but the recipe differs: no checkpoint reuse."""
    import pcclip.finetune as trainer
    from pcclip.basemodel import load_base_model

    seen = []
    real = trainer.autocast
    monkeypatch.setattr(trainer, "autocast", lambda device, precision: seen.append(precision) or real(device, precision))
    base_file = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", base_file)
    sizes = {"model.pretrained": str(base_file), "finetune.steps": 2, "finetune.batch_size": 8}
    data, _ = _world_data(16, seed=8)
    trained = {}
    for ft, model in (("fp32", "bf16"), ("bf16", "fp32")):
        profile = load_profile("smoke", {**sizes, "finetune.precision": ft, "model.precision": model})
        paths = run_paths(profile.name)
        seen.clear()
        summary = train_run(profile, paths, "pcclip", load_base_model(profile, paths), data, progress=False)
        assert not summary.reused and set(seen) == {ft} and len(seen) == 2  # one autocast per micro-batch
        trained[ft] = torch.load(paths.finetuned(0) / "pcclip.pt", weights_only=False)
    assert trained["fp32"]["meta"]["recipe"]["finetune"]["precision"] == "fp32"
    assert trained["bf16"]["meta"]["recipe"]["finetune"]["precision"] == "bf16"
    fp32, bf16 = (trained[k]["state_dict"] for k in ("fp32", "bf16"))
    assert all(torch.equal(fp32[k], bf16[k]) for k in fp32)  # CPU: the same fp32 training either way


def test_paper_profiles_train_in_bf16_and_the_cpu_ones_in_fp32():
    assert load_profile("paper").finetune.precision == load_profile("paper-b32").finetune.precision == "bf16"
    assert load_profile("rehearsal").finetune.precision == "fp32"  # its CPU; bf16 would make preflight ask for a GPU
    assert load_profile("diffworld").finetune.precision == load_profile("smoke").finetune.precision == "fp32"
    assert load_profile("paper", {"finetune.precision": "fp32"}).finetune.precision == "fp32"
    with pytest.raises(ValueError, match=r"finetune.precision='fp16' \(choose one of fp32, bf16\)"):
        load_profile("paper", {"finetune.precision": "fp16"})


def test_rewritten_caption_run_trains_through_the_same_trainer(tiny_bundle, tmp_path):
    base_file = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", base_file)
    profile = load_profile("smoke", {"model.pretrained": str(base_file), "finetune.steps": 2, "finetune.batch_size": 8,
                                     "finetune.caption_steps": 2, "finetune.caption_batch_size": 8,
                                     "finetune.rewritten_captions": True, "finetune.rewritten_steps": 3})
    paths = run_paths(profile.name)
    data, _ = _world_data(16, seed=8)
    from pcclip.basemodel import load_base_model
    from pcclip.synthesis.rewriting import rewritten_path
    from pcclip.synthesis.store import DifferenceStore

    with DifferenceStore(rewritten_path(paths), {"source": "test"}) as store:
        for k in range(16):
            store.append({"pair_id": f"{k}-c0", "index": k, "accepted": True, "idx1": k, "text": f"rewritten {k}"})
    base = load_base_model(profile, paths)
    summaries = {run: train_run(profile, paths, run, base, data, progress=False) for run in profile_runs(profile)}
    assert summaries["rewritten_ft"].steps == 3 and summaries["caption_ft"].steps == 2
    meta = checkpoint_meta(paths.finetuned(0) / "rewritten_ft.pt")
    assert meta["recipe"]["finetune"]["objective"] == "caption" and meta["recipe"]["data"] != data.key()
    assert set(load_models(profile, paths)) == {"base", "pcclip", "caption_ft", "rewritten_ft", "pcclip_wa"}


def test_the_caption_term_takes_the_relational_share_without_changing_a_runs_settings():
    """finetune.relational_captions: the caption term's captions (plain at 0, as before it existed), not the
    settings a checkpoint is checked against: the data key holds the captions, so a new share retrains."""
    from pcclip.models import ClipBundle
    from pcclip.runs import caption_term, run_settings
    from pcclip.training import CAPTION_VARIANTS
    from pcclip.profiles import WorldConfig
    from pcclip.world import build_split

    train = build_split(WorldConfig(seed=3, image_size=32, n_train=96, n_val=8, n_test=8, n_holdout=8), "train")
    idx, plain = caption_term(train, 0.0)
    assert plain == [c for v in range(CAPTION_VARIANTS) for c in train.captions(1000 + v)]
    assert idx.tolist() == list(range(96)) * CAPTION_VARIANTS
    idx_half, half = caption_term(train, 0.5)
    assert torch.equal(idx_half, idx) and len(half) == len(plain)
    # half drawn relational (objects in the middle bucket of every attribute stay plain); 7 of 9 templates say "than"
    relational = sum(" than " in text for text in half) / len(half)
    assert all(" than " not in text for text in plain) and 0.25 < relational < 0.5, relational
    base = ClipBundle.__new__(ClipBundle)
    base.model_name, base.fingerprint = "diffclip-tiny", "f00d"
    assert (run_settings(load_profile("smoke", {"finetune.relational_captions": 0.5}), "pcclip", base)
            == run_settings(load_profile("smoke"), "pcclip", base))
    with pytest.raises(ValueError, match=r"finetune.relational_captions=0.5, source='paper': .*COCO's captions"):
        load_profile("paper", {"finetune.relational_captions": "0.5"})
    with pytest.raises(ValueError, match=r"finetune.relational_captions=1.5 \(allowed: >= 0 and <= 1\)"):
        load_profile("smoke", {"finetune.relational_captions": "1.5"})
