"""Template writer: every description is true of its pair under the exact attributes.

The check is independent of the writer: it splits a description into clauses, finds each
clause's subject image (the first 'first'/'second' left after removing 'than ... second'
style comparison standards) and reads directions from comparative keywords.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pytest

from pcclip.profiles import load_profile
from pcclip.resources import load_json
from pcclip.synthesis.facts import caption_facts, oracle_facts, parse_captions
from pcclip.synthesis.pairs import contrast_attribute
from pcclip.synthesis.runner import pair_input, plan_pairs
from pcclip.synthesis.sources import diffworld_source
from pcclip.synthesis.registry import make_writer
from pcclip.synthesis.template import describe_facts
from pcclip.world import COLORS, SHAPES
from pcclip.world.phrasing import GRAMMARS, PHRASINGS, attribute_sentence, category_sentence, frames, phrasings

KEYWORDS = [
    (r"\b(larger|bigger|large|big|grows|massive)\b", "size", 1),
    (r"\b(smaller|small|little|shrinks|tinier|tiny|exceeded)\b", "size", -1),
    (r"\b(right|east)\b", "x", 1), (r"\b(left|west)\b", "x", -1),
    (r"\b(lower|low|down|bottom|below|drops|sinks|south)\b", "y", 1),
    (r"\b(higher|high|up|top|above|rises|climbs|north)\b", "y", -1),
    (r"\b(brighter|lighter|bright|light|brightens|pale|paler)\b", "brightness", 1),
    (r"\b(darker|dark|darkens|dimmer|dim|dims|outshone)\b", "brightness", -1),
]
CLAUSE_END = r";|\.\s|, | but | while "
STANDARD = r"\b(than|compared with|unlike)\b.*?\b(first|second)\b"
ROLES = [(r"\b(picture a|image 1|image one)\b", "the first image"), (r"\b(picture b|image 2|image two)\b", "the second image")]
# a change over time ('from the first image to the second, the shape grows') states the end image's attribute
CHANGE = r"\b(?:from|between) the (first|second)\b.*?\b(?:to|and) the (first|second)\b( image)?"


def claims(text: str) -> list[tuple[str, str, object]]:
    """(subject, attribute, value) per statement: value is a sign (+1: subject has more) or a name. A clause
    without an image of its own speaks of the last one named ('..., its shape is larger'); 'not'/'no' flips."""
    out, last = [], None
    text = text.lower().rstrip(".")
    for pattern, role in ROLES:
        text = re.sub(pattern, role, text)
    text = re.sub(CHANGE, r"in the \2 image", text)
    for clause in re.split(CLAUSE_END, text):
        subject_part = re.sub(STANDARD, " ", clause)
        ordinals = re.findall(r"\b(first|second|both|each)\b", subject_part)
        flip = -1 if re.search(r"\b(not|no)\b", clause) else 1
        found = [(attr, sign * flip) for pattern, attr, sign in KEYWORDS if re.search(pattern, clause)]
        found += [("shape", s) for s in SHAPES if re.search(rf"\b{s}\b", clause)]
        found += [("color", c) for c in COLORS if re.search(rf"\b{c}\b", clause)]
        last = ordinals[0] if ordinals else last
        if found:
            assert last, f"clause {clause!r} of {text!r} states something without naming an image"
            subject = "both" if last in ("both", "each") else last
            out += [(subject, attr, value) for attr, value in found]
    return out


def assert_true_of(text: str, row1: dict, row2: dict) -> set[str]:
    """Every claim holds for the exact rows; returns the attributes claimed."""
    stated = set()
    for subject, attr, value in claims(text):
        stated.add(attr)
        if subject == "both":
            assert row1[attr] == row2[attr] == value, (text, row1, row2)
        elif isinstance(value, int):
            sign = value if subject == "first" else -value
            assert np.sign(row1[attr] - row2[attr]) == sign, (text, attr, row1, row2)
        else:
            assert (row1 if subject == "first" else row2)[attr] == value, (text, row1, row2)
    return stated


@pytest.fixture(scope="module")
def world():
    profile = load_profile("smoke", {"synthesis.n_pairs": 600})
    source = diffworld_source(profile)
    return profile, source, plan_pairs(profile.synthesis, source)


@pytest.mark.parametrize("mode, grammar", [("caption", ""), ("oracle", ""), ("oracle", "broad"), ("oracle", "order")])
def test_every_description_is_true_of_its_pair(world, mode: str, grammar: str) -> None:
    profile, source, plan = world
    cfg = replace(profile.synthesis, mode=mode, broad_frames=grammar == "broad", order_frames=grammar == "order")
    inputs = [pair_input(plan, k, source, cfg) for k in range(len(plan))]
    gens = make_writer(cfg).write(inputs)
    subjects = []
    for pair, gen in zip(inputs, gens):
        if not gen.text:
            continue
        stated = assert_true_of(gen.text, source.truth(pair.idx1), source.truth(pair.idx2))
        assert set(gen.attributes) <= stated, (gen.text, gen.attributes)
        subjects += [s for s, attr, value in claims(gen.text) if isinstance(value, int)]
    assert sum(bool(g.text) for g in gens) > 0.9 * len(gens)
    # both orders: 'the first is larger' and 'the second is smaller' style statements
    assert 0.35 < subjects.count("first") / len(subjects) < 0.65
    used = {p.split(":", 1)[1] for g in gens for p in g.phrasings}
    for name in GRAMMARS:  # a switch draws its grammar's frames (every one), and only it
        theirs = {f.id for f in frames() if f.grammar == name}
        assert used & theirs == (theirs if name == grammar else set()), name


def _vocab_words(attr: str) -> set[str]:
    v = load_json("diffworld_captions.json")
    centre = {t.split()[-1] for t in v["where"]["centre"]}
    words = {"size": {w for ws in v["size_words"].values() for w in ws if w},
             "brightness": {w for ws in v["brightness_words"].values() for w in ws if w},
             "x": {w for w in [*v["x_words"].values(), *v["compass"]["x"].values()] if w} | centre,
             "y": {w for w in [*v["y_words"].values(), *v["compass"]["y"].values()] if w} | centre,
             "color": set(COLORS), "shape": set(SHAPES)}
    return words[attr]


def test_caption_mode_states_only_what_both_captions_mention(world) -> None:
    profile, source, plan = world
    cfg = profile.synthesis
    inputs = [pair_input(plan, k, source, cfg) for k in range(len(plan))]
    for pair, gen in zip(inputs, make_writer(cfg).write(inputs)):
        for attr in gen.attributes:
            for caps in (pair.captions1, pair.captions2):
                said = set(re.findall(r"[a-z-]+", " ".join(caps).lower()))
                assert said & _vocab_words(attr), (gen.text, attr, caps)


def test_contrast_pairs_lead_with_their_attribute_and_size_is_common(world) -> None:
    profile, source, plan = world
    cfg = profile.synthesis
    inputs = [pair_input(plan, k, source, cfg) for k in range(len(plan))]
    gens = make_writer(cfg).write(inputs)
    size_pairs = [(p, g) for p, g in zip(inputs, gens) if p.focus == "size"]
    assert size_pairs and all(contrast_attribute(plan.kind[k]) for k in range(len(plan)) if inputs[k].focus)
    for pair, gen in size_pairs:
        if "size" in caption_facts(pair.captions1, pair.captions2).directions:
            assert gen.attributes[0] == "size"
    share = np.mean(["size" in g.attributes for g in gens])
    assert share > 0.2  # the finetuning set must mention size often


def test_parse_and_caption_facts_hand_computed() -> None:
    assert parse_captions(["a photo of a large red circle on the left"]) == \
        {"size": "high", "color": "red", "shape": "circle", "x": "low"}
    assert parse_captions(["a small blue circle in the center", "dim blue circle"]) == \
        {"size": "low", "color": "blue", "shape": "circle", "x": "mid", "y": "mid", "brightness": "low"}
    facts = caption_facts(["a photo of a large red circle on the left"], ["a small blue circle in the center"])
    assert facts.directions == {"size": 1, "x": -1}
    assert facts.categories == {"color": ("red", "blue")} and facts.shared == {"shape": "circle"}
    # 'medium-sized' vs 'huge': the second is larger; a caption without size supports nothing
    assert caption_facts(["medium-sized ring"], ["huge ring"]).directions == {"size": -1}
    assert caption_facts(["ring"], ["huge ring"]).directions == {}


def test_oracle_facts_hand_computed() -> None:
    row1 = {"shape": "star", "color": "red", "size": 0.9, "x": 0.5, "y": 0.1, "brightness": 0.40}
    row2 = {"shape": "ring", "color": "red", "size": 0.2, "x": 0.45, "y": 0.8, "brightness": 0.50}
    facts = oracle_facts(row1, row2, gap=0.15)
    assert facts.directions == {"size": 1, "y": -1}
    assert facts.categories == {"shape": ("star", "ring")} and facts.shared == {"color": "red"}
    with pytest.raises(ValueError, match="oracle_gap"):
        oracle_facts(row1, row2, gap=0.0)


@pytest.mark.parametrize("attr", ["size", "x", "y", "brightness"])
@pytest.mark.parametrize("split", PHRASINGS)
def test_attribute_sentence_direction_and_both_orders(attr: str, split: str) -> None:
    rng = np.random.default_rng(0)
    subjects = set()
    for direction in (1, -1):
        for _ in range(60):
            text = attribute_sentence(attr, direction, rng, split)
            assert text[0].isupper() and text.endswith(".")
            found = claims(text)
            assert {a for _, a, _ in found} == {attr}, text
            for subject, _, sign in found:
                assert (sign if subject == "first" else -sign) == direction, text
                subjects.add(subject)
    assert subjects == {"first", "second"}


def test_eval_phrasings_never_appear_in_training() -> None:
    rng = np.random.default_rng(1)
    for attr in ("size", "x", "y", "brightness"):
        train = {attribute_sentence(attr, d, rng, "train") for d in (1, -1) for _ in range(300)}
        held = {attribute_sentence(attr, d, rng, "eval") for d in (1, -1) for _ in range(300)}
        assert not train & held and len(held) >= 16
    train_templates = json.dumps([f.text for f in frames() if not f.heldout]) + json.dumps(phrasings()["category"]["train"])
    assert not any(json.dumps(f.text) in train_templates for f in frames() if f.heldout)
    for templates in phrasings()["category"]["eval"].values():
        assert not any(json.dumps(t) in train_templates for t in templates)
    with pytest.raises(ValueError, match="phrasing split"):
        attribute_sentence("size", 1, rng, "test")
    with pytest.raises(ValueError, match="direction"):
        attribute_sentence("size", 0, rng)


@pytest.mark.parametrize("attr,values", [("shape", SHAPES), ("color", COLORS)])
def test_category_sentence_names_each_image_value(attr: str, values: tuple[str, ...]) -> None:
    rng = np.random.default_rng(2)
    for split in ("train", "eval"):
        for _ in range(50):
            v1, v2 = rng.choice(values, 2, replace=False)
            text = category_sentence(attr, str(v1), str(v2), rng, split)
            assert_true_of(text, {attr: v1}, {attr: v2})
            assert {a for _, a, _ in claims(text)} >= {attr}
    assert "an orange" in " ".join(category_sentence("color", "orange", "red", rng) for _ in range(20))
    with pytest.raises(ValueError, match="both shape values are 'ring'"):
        category_sentence("shape", "ring", "ring", rng)


def test_describe_respects_word_budget_and_empty_facts() -> None:
    from pcclip.synthesis.facts import Facts

    rng = np.random.default_rng(3)
    facts = Facts({"size": 1, "x": -1, "y": 1, "brightness": -1}, {"shape": ("ring", "star")}, {"color": "red"})
    for _ in range(200):
        d = describe_facts(facts, rng, focus="y", max_facts=3, max_words=18)
        assert d.attributes[0] == "y"
        first_clause_only = len(d.phrasings) == 1 or d.phrasings[0].startswith("same")
        assert len(d.text.split()) <= 18 or first_clause_only
        assert_true_of(d.text, {"size": 1, "x": 0, "y": 1, "brightness": 0, "shape": "ring", "color": "red"},
                       {"size": 0, "x": 1, "y": 0, "brightness": 1, "shape": "star", "color": "red"})
    assert describe_facts(Facts(), rng).text == ""


def test_subject_first_sets_the_share_of_clauses_about_the_first_image(world) -> None:
    """synthesis.subject_first: the share of continuous clauses whose subject is the first image (passive frames,
    whose subject is the image with more, left aside); the writer passes it through."""
    from pcclip.synthesis.facts import Facts

    passive = {f"{a}:{f.id}" for f in frames() if f.subject_more for a in f.attributes}
    facts = Facts({"size": 1, "brightness": -1, "y": 1}, {"shape": ("ring", "star")})
    for share in (0.0, 1 / 3, 1.0):
        rng = np.random.default_rng(5)
        said = [s for d in (describe_facts(facts, rng, subject_first=share) for _ in range(1500))
                for s, clause in zip(d.subjects, d.phrasings[-len(d.subjects):]) if s and clause not in passive]
        assert len(said) > 1000 and abs(said.count("first") / len(said) - share) < 0.03, share
    profile, source, plan = world
    for share, low, high in ((0.0, 0.0, 0.3), (1.0, 0.7, 1.0)):
        cfg = replace(profile.synthesis, subject_first=share)
        inputs = [pair_input(plan, k, source, cfg) for k in range(len(plan))]
        subjects = [s for g in make_writer(cfg).write(inputs)
                    for s, _, value in claims(g.text) if isinstance(value, int)]
        assert low <= subjects.count("first") / len(subjects) <= high, share


@pytest.mark.parametrize("setting, default, other", [("subject_first", 0.5, 0.2), ("broad_frames", False, True),
                                                      ("order_frames", False, True)])
def test_a_store_written_before_a_later_setting_existed_still_matches_at_its_default(tmp_path, monkeypatch, setting,
                                                                                    default, other) -> None:
    """Its meta lacks the setting (runner.ADDED_LATER): at the default it is resumed as is; another value starts
    afresh."""
    from pcclip.paths import run_paths
    from pcclip.synthesis import synthesize
    from pcclip.synthesis.store import meta_path

    monkeypatch.setenv("PCCLIP_RESULTS", str(tmp_path))
    paths = run_paths("smoke")
    path = synthesize(load_profile("smoke", {"synthesis.n_pairs": 60}), paths, progress=False)
    assert setting not in json.loads(meta_path(path).read_text())["synthesis"]
    before = path.read_bytes()
    synthesize(load_profile("smoke", {"synthesis.n_pairs": 60, f"synthesis.{setting}": default}), paths, progress=False)
    assert path.read_bytes() == before and not list(path.parent.glob("differences.*.jsonl"))
    synthesize(load_profile("smoke", {"synthesis.n_pairs": 60, f"synthesis.{setting}": other}), paths, progress=False)
    assert json.loads(meta_path(path).read_text())["synthesis"][setting] == other
    assert len(list(path.parent.glob("differences.*.jsonl"))) == 1 and path.read_bytes() != before


@pytest.mark.parametrize("switch", ["broad_frames", "order_frames"])
def test_a_further_grammar_with_an_llm_writer_is_refused_naming_both_settings(world, switch: str) -> None:
    from pcclip.synthesis.runner import check_settings

    profile, source, _ = world
    with pytest.raises(ValueError, match=rf"synthesis.{switch} .* synthesis.writer is 'hf': set synthesis.{switch}"):
        check_settings(replace(profile.synthesis, writer="hf", **{switch: True}), source)
    check_settings(replace(profile.synthesis, **{switch: True}), source)  # the template writer takes it
