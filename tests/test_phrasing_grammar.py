"""The difference grammar: frame families, held-out frames and words, hard negatives, structure sets and rows.

Truth is read back from the text with the independent parser of test_synthesis_template (`claims`), which
knows negation, change over time, marked roles and two-clause contrasts, never from the writer's own record.
"""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from test_synthesis_template import assert_true_of, claims

from pcclip.evaluation.difference import difference_table
from pcclip.evaluation.diffworld_sets import attribute_pairs, frame_sets, pool_frames, structure_sets
from pcclip.evaluation.tables import difference_rows, structures_pivot
from pcclip.profiles import EvalConfig, WorldConfig, load_profile
from pcclip.paths import run_paths
from pcclip.synthesis.facts import Facts
from pcclip.synthesis.runner import synthesize
from pcclip.synthesis.store import load_records
from pcclip.synthesis.template import describe_facts
from pcclip.world import CONTINUOUS, WorldSplit, build_split, make_records
from pcclip.world.phrasing import (FAMILIES, STRUCTURES, attribute_phrase, attribute_words, frames,
                                   heldout_frame_ids, heldout_words, phrasings, selection, sentence)

ROWS = ({"size": 0.9, "x": 0.9, "y": 0.9, "brightness": 0.9}, {"size": 0.1, "x": 0.1, "y": 0.1, "brightness": 0.1})


def tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def caption_words(profile) -> set[str]:
    """The words of the pretraining captions of `profile`'s train split (two caption draws)."""
    return tokens(" ".join(t for seed in range(2) for t in build_split(profile.world, "train").captions(seed)))


def slotless(text: str) -> set[str]:
    """The words of a template, its {slots} left out."""
    return tokens(re.sub(r"\{\w+\}", " ", text))


def roles_blanked(text: str) -> list[str]:
    return sorted(re.sub(r"^(first|second|a|b|1|2|one|two)$", "ROLE", w) for w in re.findall(r"\w+", text.lower()))


def is_false(text: str, row1: dict, row2: dict) -> bool:
    try:
        assert_true_of(text, row1, row2)
    except AssertionError:
        return True
    return False


def test_every_family_has_training_and_held_out_frames_for_every_attribute() -> None:
    assert {f.family for f in frames()} == set(FAMILIES)
    for attr in CONTINUOUS:
        train, _ = selection("train", attr)
        for family in FAMILIES:
            held, words = selection(family, attr)
            assert held and all(f.heldout and f.family == family for f in held) and words == "train"
            assert any(f.family == family for f in train), (attr, family)
        words, split = selection("heldout_words", attr)
        assert split == "heldout" and set(words) <= set(train) and all(f.slots & {"c", "co", "p", "po", "vo"} for f in words)


@pytest.mark.parametrize("phrasing", STRUCTURES)
def test_each_frame_states_its_direction_and_twins_say_the_opposite(phrasing: str) -> None:
    seen = set()
    for attr in CONTINUOUS:
        for k in range(200):
            for direction in (1, -1):
                p = attribute_phrase(attr, direction, np.random.default_rng(k), phrasing)
                twin = attribute_phrase(attr, -direction, np.random.default_rng(k), phrasing)
                assert p.id == twin.id and p.text != twin.text and p.direction == direction
                row1, row2 = ROWS if direction > 0 else ROWS[::-1]
                assert_true_of(sentence(p.text), row1, row2)  # the sentence is true of its pair
                assert is_false(sentence(twin.text), row1, row2)  # its reversed twin is false
                assert len(sentence(p.text).split()) <= 18, p.text  # within the text tower's 24 tokens
                seen.add(p.id.split(":", 1)[1])
    assert seen == {f.id for attr in CONTINUOUS for f in selection(phrasing, attr)[0]}  # every frame was drawn


def test_negation_keeps_its_true_meaning() -> None:
    negation = [f for f in frames() if f.family == "negation"]
    assert all(re.search(r"\b(not|no) \{co\}", f.text) and "{c}" not in f.text for f in negation)
    assert all(re.search(r"\b(not|no) \{c\}", f.negated) for f in negation)  # its false form negates the truth
    plain = [re.sub(r"\{\w+\}", "", f.text) for f in frames() if f.family != "negation"]  # '{no}' is a slot
    assert not any(re.search(r"\b(not|no)\b", text) for text in plain)
    # read back by the parser: 'not smaller' means at least as large, so the first image is the larger
    assert claims("The first shape is not smaller than the second one.") == [("first", "size", 1)]
    assert claims("From the first image to the second, the shape moves left.") == [("second", "x", -1)]


def test_subject_families_make_the_given_image_the_subject_of_a_training_frame() -> None:
    """subject_first / subject_second: the training frames but the passive ones, with the subject forced; the same
    random state gives both the same frame, roles and words, so one is the other with the roles exchanged."""
    frame_of = {f.id: f for f in frames()}
    assert any(f.subject_more for a in CONTINUOUS for f in selection("seen_frames", a)[0])  # passive ones are left out
    for attr in CONTINUOUS:
        chosen, words = selection("subject_second", attr)
        assert words == "train" and chosen == selection("subject_first", attr)[0]
        assert set(chosen) == {f for f in selection("seen_frames", attr)[0] if not f.subject_more}
        more = {e["comparative"] for e in attribute_words(attr, "train", "more")}
        for k in range(200):
            for direction in (1, -1):
                first = attribute_phrase(attr, direction, np.random.default_rng(k), "subject_first")
                second = attribute_phrase(attr, -direction, np.random.default_rng(k), "subject_second")
                assert second.text == first.swapped and second.id == first.id
                frame = frame_of[first.id.split(":", 1)[1]]
                if "c" in frame.slots:  # the subject's comparative: 'more' exactly when the first image has more
                    assert (first.words[0] in more) == (direction > 0), first.text


def test_hard_negatives_contradict_the_description() -> None:
    rng = np.random.default_rng(4)
    facts = Facts({"size": 1, "x": -1, "y": 1, "brightness": -1}, {"shape": ("ring", "star")}, {"color": "red"})
    row1 = {"size": 1, "x": 0, "y": 1, "brightness": 0, "shape": "ring", "color": "red"}
    row2 = {"size": 0, "x": 1, "y": 0, "brightness": 1, "shape": "star", "color": "red"}
    negated = 0
    for _ in range(300):
        d = describe_facts(facts, rng)
        assert_true_of(d.text, row1, row2)
        assert 1 <= len(d.negatives) <= 2 and d.text not in d.negatives
        for negative in d.negatives:
            assert is_false(negative, row1, row2), (d.text, negative)
        # the first negative exchanges the roles of every clause: the same words but for the role names
        assert roles_blanked(d.negatives[0]) == roles_blanked(d.text) and d.negatives[0] != d.text
        negated += len(d.negatives) == 2
    assert negated > 50  # most frames have a negated form


def test_held_out_frames_and_words_never_train_but_captions_teach_the_words() -> None:
    profile = load_profile("smoke", {"synthesis.n_pairs": 400, "synthesis.mode": "oracle"})
    heldout_frames = {f.id for f in frames() if f.heldout}
    held = set().union(*heldout_words().values())
    assert {"east", "west", "north", "south", "tiny", "massive", "pale", "dim"} <= held
    for mode, grammar in (("oracle", ""), ("caption", ""), ("oracle", "broad"), ("oracle", "order")):
        syn = replace(profile.synthesis, mode=mode, broad_frames=grammar == "broad", order_frames=grammar == "order")
        records = load_records(synthesize(replace(profile, synthesis=syn), run_paths("smoke"), progress=False))
        texts = [r["text"] for r in records if r["text"]]
        assert len(texts) > 300
        assert not held & set().union(*map(tokens, texts))
        assert not heldout_frames & {p.split(":", 1)[1] for r in records for p in r["phrasings"]}
        assert all(r["negatives"] for r in records if r["text"])
        assert np.mean([bool(r["words"]) for r in records if r["text"]]) > 0.95  # passive frames have no slot
        assert all(w in r["text"].lower() for r in records for w in r["words"])
        families = {p.split(":")[1] for r in records for p in r["phrasings"] if p.split(":")[0] in CONTINUOUS}
        assert families == set(FAMILIES)  # training data uses every family
    captions = caption_words(profile)
    for attr in CONTINUOUS:  # every form ("tiny", "more tiny", "gets more tiny"), not just the positive, is taught
        assert heldout_words()[attr] and heldout_words()[attr] <= captions, (attr, heldout_words()[attr] - captions)


def test_held_out_frames_use_only_words_that_training_or_captions_teach() -> None:
    """A held-out frame tests a new arrangement of known words: a word no data teaches ('exceeded', 'no')
    would test the vocabulary instead, which is the held-out-words family's job."""
    grammar = phrasings()
    taught = set().union(*(slotless(f.text) for f in frames() if not f.heldout))
    taught |= {w for attr in CONTINUOUS for r in ("more", "less") for e in attribute_words(attr, "train", r)
               for form in e.values() for w in tokens(form)}
    taught |= tokens(" ".join([*grammar["nouns"], *(r for pair in grammar["roles"] for r in pair),
                               *grammar["joins"], *grammar["multi"]]))
    taught |= set().union(*(slotless(t) for ts in grammar["category"]["train"].values() for t in ts))
    taught |= {"first", "second"}  # the role names of unmarked frames
    taught |= caption_words(load_profile("smoke"))
    untaught = {f.id: sorted(slotless(f.text) - taught) for f in frames() if f.heldout}
    assert not any(untaught.values()), untaught
    assert {f.family for f in frames() if f.heldout} == set(FAMILIES)


@pytest.mark.parametrize("grammar, count", [("broad", 26), ("order", 6)])  # README, DiffWorld, "Broad grammar"
def test_a_further_grammar_trains_only_with_its_switch_and_states_its_direction(grammar: str, count: int) -> None:
    """A further grammar's switch adds its frames to the training draws and nothing else: the core training frames
    keep their order (so the default data is unchanged) and every evaluation phrasing draws the frames it did."""
    extra = {f.id for f in frames() if f.grammar == grammar}
    assert len(extra) == count and not any(f.heldout for f in frames() if f.id in extra)
    for attr in CONTINUOUS:
        core, wide = selection("train", attr)[0], selection("train", attr, (grammar,))[0]
        assert not extra & {f.id for f in core} and [f for f in wide if f.id not in extra] == list(core)
        for phrasing in (*STRUCTURES, *heldout_frame_ids()):
            assert selection(phrasing, attr, (grammar,)) == selection(phrasing, attr), (attr, phrasing)
    seen = set()
    for attr in CONTINUOUS:
        for k in range(400):
            for direction in (1, -1):
                p = attribute_phrase(attr, direction, np.random.default_rng(k), "train", grammars=(grammar,))
                twin = attribute_phrase(attr, -direction, np.random.default_rng(k), "train", grammars=(grammar,))
                row1, row2 = ROWS if direction > 0 else ROWS[::-1]
                assert_true_of(sentence(p.text), row1, row2)
                for false in (twin.text, p.swapped, p.negated):  # reversed twin, role swap, negated form
                    assert false is None or is_false(sentence(false), row1, row2), (p.text, false)
                assert len(sentence(p.text).split()) <= 18, p.text
                seen.add(p.id.split(":", 1)[1])
    assert extra <= seen


def test_a_frame_of_an_unknown_grammar_is_refused_naming_the_known_ones(monkeypatch) -> None:
    from pcclip.world import phrasing

    table = phrasings()
    bad = {**table, "frames": {**table["frames"], "change": [*table["frames"]["change"],
                                                             {"text": "the {ns} {vo}", "grammar": "wide"}]}}
    monkeypatch.setattr(phrasing, "phrasings", lambda: bad)
    with pytest.raises(ValueError, match=r"frames \['change:10'\]: 'grammar' must be one of \('broad', 'order'\)"):
        frames.__wrapped__()


def predicate_position(text: str) -> tuple[str, str] | None:
    """(the image a frame's first predicate describes, the last image it names before that predicate), in its
    subject's terms ('s' or 'o'); None for a frame with no word slot or no image before it. The predicate is a
    comparative ({c}, {co}), a positive ({p}, {po}) or the verb ({vo}): the subject's slots and a negated other's
    ('is not {co}') describe the subject, the other's slots the other image ({vo}: the end of the change)."""
    text = text.replace("{S}", "{s}").replace("{O}", "{o}")
    slot = re.search(r"(not )?\{(c|co|p|po|vo)\}", text)
    named = re.findall(r"\{(s|o)\}", text[:slot.start()]) if slot else []
    if not named:
        return None
    return ("s" if slot.group(1) or slot.group(2) in ("c", "p") else "o"), named[-1]


def test_order_frames_are_the_only_training_frames_whose_predicate_is_not_bound_by_position() -> None:
    """The order grammar's reason to exist: in every core and broad training frame that names an image before its
    first predicate, the image that predicate describes is the last one named before it, so a tower may bind roles
    by that position alone; held-out change:2 ('in the second image compared with the first, the shape shrinks')
    is the one held-out frame where that reading is wrong. Every order frame breaks the position rule."""
    def unbound(f) -> bool:
        found = predicate_position(f.text)
        return found is not None and found[0] != found[1]
    assert [f.id for f in frames() if unbound(f) and f.grammar != "order"] == ["change:2"]
    assert all(unbound(f) for f in frames() if f.grammar == "order")


def arrangement(text: str) -> str:
    """A frame with its role names and image nouns folded ('picture A', 'the first picture' -> 'the first image')."""
    text = text.replace("{S}", "the {s} image").replace("{O}", "the {o} image")
    return re.sub(r"\bpicture\b", "image", text)


@pytest.mark.parametrize("grammar", ["broad", "order"])
def test_no_further_frame_is_a_held_out_frame_under_other_role_names(grammar: str) -> None:
    """A further grammar teaches further arrangements, not the held-out ones: none of its frames is a held-out frame
    (or its negated form) with other role names or 'picture' for 'image', and none's negated form (a hard
    negative) is a held-out frame. (A negated form may equal a held-out frame's negated form: core comparative:3's
    already equals negation:2's.)"""
    held = {arrangement(f.text) for f in frames() if f.heldout}
    held_negated = {arrangement(f.negated) for f in frames() if f.heldout and f.negated}
    for f in (f for f in frames() if f.grammar == grammar):
        assert arrangement(f.text) not in held | held_negated, f.id
        assert not f.negated or arrangement(f.negated) not in held, f.id
    assert arrangement("compared with {O}, {S} has {a_ns} that is {c}") in held  # the folding finds marked_roles:2


def split_of(n: int, seed: int = 0) -> WorldSplit:
    rng = np.random.default_rng(seed)
    records = make_records(shape="circle", color="red", **{a: rng.random(n) for a in CONTINUOUS})
    return WorldSplit("test", WorldConfig(n_train=4, n_val=4, n_test=n, n_holdout=4), records)


def test_structure_sets_share_pairs_and_describe_them_in_their_family() -> None:
    split = split_of(30)
    sets = structure_sets(split, EvalConfig(n_images=20, seeds=2, phrasings=4))
    assert {(f, a) for _, f, a in sets} == {(f, a) for f in STRUCTURES for a in CONTINUOUS}
    for (_, family, attr), draws in sets.items():
        base = attribute_pairs(split, attr, 20, 0, "train", phrasings=4)
        assert np.array_equal(draws[0].idx1, base.idx1) and np.array_equal(draws[0].sign, base.sign)
        for p in draws:
            for i, j, text, twin in zip(p.idx1, p.idx2, p.texts, p.reversed_texts):
                row1, row2 = ({attr: getattr(split.records, attr)[k]} for k in (i, j))
                assert_true_of(text, row1, row2)
                assert is_false(twin, row1, row2)
    negation = {t for p in sets[("test", "negation", "size")] for t in p.texts}
    assert all(re.search(r"\b(not|no)\b", t) for t in negation)
    for attr, held in heldout_words().items():  # every sentence of the family uses a held-out word
        assert all(tokens(t) & held for p in sets[("test", "heldout_words", attr)] for t in p.texts), attr
    with pytest.raises(ValueError, match="frame family of continuous"):
        attribute_pairs(split, "shape", 5, 0, "negation")


def frame_pattern(text: str) -> re.Pattern:
    """A frame's text as a pattern of the sentences it writes: any fill in each slot, capitalised, full stop."""
    return re.compile("".join(".+" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{\w+\})", text)) + r"\.", re.IGNORECASE)


def test_frame_sets_describe_the_structure_pairs_in_each_held_out_frame_alone() -> None:
    split = split_of(30)
    cfg = EvalConfig(n_images=20, seeds=2, phrasings=4)
    sets, families = frame_sets(split, cfg), structure_sets(split, cfg)
    held = {f.id: f for f in frames() if f.heldout}
    assert heldout_frame_ids() == tuple(held) and {f.family for f in held.values()} == set(FAMILIES)
    assert {(f, a) for _, f, a in sets} == {(f, a) for f in held for a in CONTINUOUS if a in held[f].attributes}
    for (_, frame, attr), draws in sets.items():
        same = families[("test", held[frame].family, attr)]
        pattern = frame_pattern(held[frame].text)
        for p, q in zip(draws, same):  # the family's pairs, each described by this frame
            assert np.array_equal(p.idx1, q.idx1) and np.array_equal(p.idx2, q.idx2)
            assert all(pattern.fullmatch(t) for t in [*p.texts, *p.reversed_texts]), frame
            for i, j, text, twin in zip(p.idx1, p.idx2, p.texts, p.reversed_texts):
                row1, row2 = ({attr: getattr(split.records, attr)[k]} for k in (i, j))
                assert_true_of(text, row1, row2)
                assert is_false(twin, row1, row2)
    texts = {frame: {t for p in draws for t in p.texts} for (_, frame, attr), draws in sets.items() if attr == "size"}
    assert not any(texts[a] & texts[b] for a in texts for b in texts if a < b)  # no two frames write one sentence
    with pytest.raises(ValueError, match="held-out frame's id"):
        selection("negation:0", "size")  # a training frame is no evaluation phrasing
    with pytest.raises(ValueError, match="frame family of continuous"):
        attribute_pairs(split, "shape", 5, 0, heldout_frame_ids()[0])


def test_pool_frames_names_the_frame_of_every_sentence_a_family_row_is_scored_on() -> None:
    """The held-out-frames row of a continuous attribute reads one pool of eval.phrasings sentences (every pair, seed
    and split picks from it); pool_frames names each sentence's frame, so the row's mix of frames can be read."""
    by_id = {f.id: f for f in frames()}
    for attr in CONTINUOUS:
        for phrasing in ("heldout_frames", "negation"):
            pool = [text for pair in structure_sets(split_of(40), EvalConfig(n_images=30, seeds=1))[
                ("test", phrasing, attr)] for text in pair.texts]
            named = pool_frames(attr, phrasing)
            assert len(named) == 16 and set(named) <= {f.id for f in selection(phrasing, attr)[0]}
            for text in pool:  # each sentence of the set is one of the pool's, written by a frame it names
                assert any(frame_pattern(by_id[f].text).fullmatch(text) for f in named), (attr, text)


def test_structure_rows_one_per_attribute_model_and_family(text_tower) -> None:
    split = split_of(30)
    sets = structure_sets(split, EvalConfig(n_images=12, seeds=2, phrasings=2))
    emb = torch.as_tensor(np.stack([split.records.size, split.records.x, 1 - split.records.y,
                                    split.records.brightness], axis=1), dtype=torch.float32)
    texts = {t for draws in sets.values() for p in draws for t in [*p.texts, *p.reversed_texts]}
    rng = np.random.default_rng(0)
    models = {"base": text_tower({t: rng.normal(size=4) for t in texts}), "other": text_tower(default=[1, 0, 0, 0])}
    table = difference_table(models, {"test": emb}, sets)
    rows = difference_rows(table, {"test": ("diffworld", "test")}, task="structures")
    acc = rows[rows.metric == "accuracy"]
    assert len(acc) == len(CONTINUOUS) * 2 * len(STRUCTURES)
    assert not acc.duplicated(["attribute", "model", "variant"]).any()
    assert set(acc.variant) == set(STRUCTURES) and set(rows.task) == {"structures"}
    assert acc.value.between(0, 1).all() and rows[rows.metric == "two_way"].value.between(0, 1).all()
    # a text tower that embeds every text as "larger" gets size right exactly on the pairs whose first is larger
    other_size = acc[(acc.model == "other") & (acc.attribute == "size")].value
    assert other_size.nunique() == 1 and 0.3 < other_size.iloc[0] < 0.7
    pivot = structures_pivot(table)
    assert list(pivot.index.get_level_values("family"))[:len(STRUCTURES)] == list(STRUCTURES)
    assert list(pivot.columns) == ["base", "other"]
