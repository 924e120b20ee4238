"""Profiles: override typing and validation, helpful errors, the forced profile, the paper data root."""
from __future__ import annotations

import dataclasses

import pytest

from pcclip.profiles import DATA_ENV, FORCE_ENV, PROFILES, Profile, _coerce, data_root, load_profile


def test_every_profile_loads_with_its_own_name():
    for name in PROFILES:
        profile = load_profile(name)
        assert isinstance(profile, Profile) and profile.name == name
    assert load_profile("paper").source == "paper" and load_profile("smoke").source == "diffworld"


def test_overrides_are_typed_from_cli_strings():
    p = load_profile("smoke", {"pretrain.steps": "50", "finetune.lr": "1e-4", "world.holdout": "ring:green, star:red",
                               "model.device": "cuda", "seed": "7"})
    assert p.pretrain.steps == 50 and isinstance(p.pretrain.steps, int)
    assert p.finetune.lr == 1e-4 and isinstance(p.finetune.lr, float)
    assert p.world.holdout == ("ring:green", "star:red")
    assert p.model.device == "cuda" and p.seed == 7
    assert load_profile("smoke").pretrain.steps != 50  # the named profile itself is untouched


def test_overrides_accept_python_values():
    p = load_profile("smoke", {"pretrain.steps": 3.0, "finetune.lr": 1, "world.holdout": ["ring:green"]})
    assert p.pretrain.steps == 3 and isinstance(p.pretrain.steps, int)
    assert p.finetune.lr == 1.0 and isinstance(p.finetune.lr, float)
    assert p.world.holdout == ("ring:green",)


def test_overrides_leave_other_fields_alone():
    base, p = load_profile("smoke"), load_profile("smoke", {"pretrain.steps": 3})
    assert dataclasses.replace(p.pretrain, steps=base.pretrain.steps) == base.pretrain
    assert (p.world, p.model, p.finetune, p.cache) == (base.world, base.model, base.finetune, base.cache)


@pytest.mark.parametrize("key, value, expected", [
    ("pretrain.steps", "abc", "expected int"), ("pretrain.steps", 3.5, "expected int"),
    ("pretrain.steps", "3.5", "expected int"), ("finetune.lr", "fast", "expected float"),
])
def test_badly_typed_overrides_name_the_key_and_type(key, value, expected):
    with pytest.raises(ValueError, match=f"override {key}={value!r}: {expected}"):
        load_profile("smoke", {key: value})


def test_bool_coercion():
    assert [_coerce("k", v, bool) for v in ("true", "False", "1", "0", True)] == [True, False, True, False, True]
    with pytest.raises(ValueError, match="override k='yes': expected bool"):
        _coerce("k", "yes", bool)


def test_unknown_profile_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown profile 'smok'; choose one of \['diffworld', 'paper'"):
        load_profile("smok")


@pytest.mark.parametrize("key, hint", [
    ("steps", "did you mean .*'pretrain.steps'.*'finetune.steps'"),
    ("pretran.steps", "did you mean .*'pretrain.steps'"),
    ("pretrain.stepz", "known: \\[.*'pretrain.steps'"),
    ("name", "known: "),  # the profile's name is not an override
])
def test_unknown_override_gives_a_hint(key, hint):
    with pytest.raises(ValueError, match=f"unknown override '{key}' for profile 'smoke'.*{hint}"):
        load_profile("smoke", {key: 1})


def test_forced_profile_replaces_the_requested_one(monkeypatch, capsys):
    monkeypatch.setenv(FORCE_ENV, "smoke")
    p = load_profile("diffworld", {"pretrain.steps": 5})
    assert p.name == "smoke" and p.world == load_profile("smoke").world
    assert p.pretrain.steps == 5  # overrides still apply on top of the forced profile
    assert "profile 'diffworld' replaced by 'smoke'" in capsys.readouterr().out
    monkeypatch.setenv(FORCE_ENV, "nope")
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        load_profile("diffworld")


def test_data_root_missing_names_the_override_and_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=f"profile 'paper' needs a data root: pass data_root=.*\\${DATA_ENV}"):
        data_root(load_profile("paper"))


def test_data_root_that_does_not_exist(monkeypatch, tmp_path):
    missing = tmp_path / "coco"
    monkeypatch.setenv(DATA_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match=f"data root '{missing}' .* does not exist"):
        data_root(load_profile("paper"))


def test_data_root_from_env_and_override(monkeypatch, tmp_path):
    env_root, own_root = tmp_path / "env", tmp_path / "own"
    env_root.mkdir()
    own_root.mkdir()
    monkeypatch.setenv(DATA_ENV, str(env_root))
    assert data_root(load_profile("paper")) == str(env_root)
    assert data_root(load_profile("paper", {"data_root": str(own_root)})) == str(own_root)  # the profile wins


@pytest.mark.parametrize("key, value, allowed", [
    ("finetune.steps", "-5", ">= 0"),  # used to train 0 steps and save the base model as pcclip.pt
    ("finetune.lr", "-1", "> 0"),  # used to fail only in notebook 02, after 00 and 01 ran
    ("finetune.lr", "nan", "> 0"),
    ("finetune.batch_size", "0", ">= 2"),
    ("finetune.accum_steps", "0", ">= 1"),
    ("finetune.save_every", "0", ">= 1"),
    ("finetune.log_every", "0", ">= 1"),
    ("pretrain.log_every", "0", ">= 1"),
    ("pretrain.lr", "inf", "> 0"),
    ("cache.shard_size", "0", ">= 1"),
    ("finetune.wa_alpha", "1.5", ">= 0 and <= 1"),
    ("eval.alpha", "-0.1", ">= 0 and <= 1"),
    ("finetune.temperature", "0", "> 0"),
    ("synthesis.contrast_fraction", "2", ">= 0 and <= 1"),
    ("synthesis.top_p", "0", "> 0 and <= 1"),
    ("synthesis.timeout_s", "0", "> 0"),
    ("eval.alpha_steps", "1", ">= 2"),
    ("world.n_train", "0", ">= 1"),
])
def test_out_of_range_settings_fail_at_load_naming_key_value_and_range(key, value, allowed):
    with pytest.raises(ValueError, match=f"{key}=.* \\(allowed: {allowed}\\)"):
        load_profile("smoke", {key: value})


@pytest.mark.parametrize("overrides, match", [
    ({"finetune.steps": "0"}, "finetune.steps=0, finetune.epochs=0.0: finetune.steps=0 means 'train finetune.epochs"),
    ({"finetune.caption_steps": "0"}, "finetune.caption_epochs must then be > 0"),
    ({"finetune.accum_steps": "3"}, "finetune.batch_size=64, finetune.accum_steps=3: .* must be a multiple"),
    ({"finetune.caption_batch_size": "30", "finetune.accum_steps": "4"}, "finetune.caption_batch_size=30"),
])
def test_related_settings_are_checked_together(overrides, match):
    with pytest.raises(ValueError, match=match):
        load_profile("smoke", overrides)


def test_valid_edges_pass():
    p = load_profile("smoke", {"finetune.steps": "0", "finetune.epochs": "0.5", "finetune.accum_steps": "4",
                               "eval.alpha": "1", "finetune.grad_clip": "0", "synthesis.max_copies": "0"})
    assert p.finetune.steps == 0 and p.finetune.accum_steps == 4


def test_finetune_seeds_per_profile_and_from_the_cli():
    assert load_profile("diffworld").finetune.seeds == (0, 1, 2)
    assert load_profile("smoke").finetune.seeds == (0, 1)  # make test's smoke pipeline runs two seeds
    assert {load_profile(n).finetune.seeds for n in ("paper", "paper-b32", "rehearsal")} == {(0,)}
    p = load_profile("smoke", {"finetune.seeds": " 3, 1,2 "})
    assert p.finetune.seeds == (3, 1, 2) and all(isinstance(s, int) for s in p.finetune.seeds)
    assert load_profile("smoke", {"finetune.seeds": [4]}).finetune.seeds == (4,)
    assert load_profile("smoke", {"finetune.seeds": "5"}).finetune.seed == 0  # the seed of one run stays apart


@pytest.mark.parametrize("value, match", [
    ("", r"finetune.seeds=\(\) \(list at least one seed"),
    ("0,1,0", r"finetune.seeds=\(0, 1, 0\) \(seed \[0\] repeated"),
    ("2,-1", r"finetune.seeds=\(2, -1\) \(seeds must be >= 0; \[-1\] are not\)"),
    ("0,x", r"override finetune.seeds='0,x': expected comma-separated tuple\[int, ...\]"),
    ("0.5", r"expected comma-separated tuple\[int, ...\]"),
])
def test_bad_finetune_seeds_fail_at_load(value, match):
    with pytest.raises(ValueError, match=match):
        load_profile("smoke", {"finetune.seeds": value})


def test_every_numeric_setting_has_a_range_rule():
    from pcclip.profile_checks import RULES
    from pcclip.profiles import _leaf_fields

    numeric = {k for k, tp in _leaf_fields(Profile).items() if tp in (int, float)}
    assert numeric == set(RULES)


def _leaves(cfg, prefix: str = "") -> dict:
    """Dotted name -> value of every field of a (nested) config dataclass, except the profile's name."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_leaves(value, f"{prefix}{f.name}."))
        elif f.name != "name":
            out[f"{prefix}{f.name}"] = value
    return out


def test_rehearsal_differs_from_paper_only_in_its_allowlist():
    from pcclip.profiles import REHEARSAL_CHANGES
    from pcclip.rehearsal.fixtures import DATASETS

    rehearsal, paper = _leaves(load_profile("rehearsal")), _leaves(load_profile("paper"))
    assert set(rehearsal) == set(paper)
    assert {key for key in paper if paper[key] != rehearsal[key]} == set(REHEARSAL_CHANGES)
    assert rehearsal["source"] == "paper" and set(rehearsal["eval.datasets"]) <= set(DATASETS)
    assert rehearsal["model.pretrained"].startswith(rehearsal["data_root"])  # a local file, as a user's download
    assert rehearsal["synthesis.base_url"].startswith("http://127.0.0.1:")


def test_switches_default_to_ours_and_reject_unknown_values():
    from pcclip.profile_checks import CHOICES

    for name in ("smoke", "diffworld", "paper", "paper-b32", "rehearsal"):
        p = load_profile(name)
        assert (p.eval.pairs, p.eval.awa2_predicates, p.eval.awa2_max_attributes, p.eval.split_scheme,
                p.eval.split_seed) == ("ordered", "ours", 5, "ours", 0)
    authors = load_profile("paper", {"eval.pairs": "unordered", "eval.awa2_predicates": "authors",
                                     "eval.awa2_max_attributes": "0", "eval.split_scheme": "paper_random10",
                                     "finetune.precision": "fp32", "eval.se_ddof": "0"})
    assert (authors.eval.pairs, authors.eval.awa2_max_attributes, authors.finetune.precision) == ("unordered", 0,
                                                                                                  "fp32")
    for key, options in CHOICES.items():
        with pytest.raises(ValueError, match=rf"{key}='nope' \(choose one of {', '.join(options)}\)"):
            load_profile("smoke", {key: "nope"})
    with pytest.raises(ValueError, match=r"eval.awa2_max_attributes=-1 \(allowed: >= 0\)"):
        load_profile("smoke", {"eval.awa2_max_attributes": -1})
