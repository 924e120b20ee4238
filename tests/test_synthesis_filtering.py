"""Filter rules: each degenerate kind of text is rejected for its own reason; good text passes."""
from __future__ import annotations

import numpy as np
import pytest

from pcclip.synthesis.filtering import REASONS, DescriptionFilter, check, duplicate_key, load_rules
from pcclip.synthesis.report import filter_report, mentioned_attributes, synthesis_rows
from pcclip.world.phrasing import PHRASINGS, attribute_sentence, category_sentence

RULES = load_rules()
# 100 distinct made-up words: long without tripping the repetition rules
LONG = "The first image shows a bus, the second a tram, and " + " ".join(
    a + b for a in "bdfgklmpst" for b in ("ar", "el", "in", "ot", "um", "ash", "ide", "ory", "ux", "ew"))

CASES = {
    "": "empty",
    "   \n ": "empty",
    "The first image \x00\x01 differs from the second.": "non_text",
    "@@ ## 12 34 %% first second 99 !!": "non_text",
    "```python\nprint('the first image differs from the second')\n```": "code_or_markup",
    "<p>The first image shows a cat, the second a dog.</p>": "code_or_markup",
    "- The first image shows a cat\n- The second image shows a dog": "code_or_markup",
    "def diff(first, second): return first - second": "code_or_markup",
    "The first image is soooooo much larger than the second one.": "repeated_chars",
    "The first image image image is larger than the second.": "repeated_words",
    "the first one and the second one and the first one and the second one and the first one and so": "repeated_words",
    "First larger.": "too_short",
    LONG: "too_long",
    "A cat is sitting on a red sofa near the window.": "not_about_two_images",
    "The image shows a large dog running across a park.": "not_about_two_images",
}


@pytest.mark.parametrize("text,reason", list(CASES.items()))
def test_each_degenerate_text_gets_its_reason(text: str, reason: str) -> None:
    assert check(text, RULES) == reason


def test_good_descriptions_pass() -> None:
    rng = np.random.default_rng(0)
    texts = [attribute_sentence(a, d, rng, s) for a in ("size", "x", "y", "brightness") for d in (1, -1)
             for s in PHRASINGS for _ in range(20)]
    texts += [category_sentence("shape", "ring", "star", rng) for _ in range(20)]
    texts += ["The first image shows two people on a beach, while the second shows a busy city street.",
              "Unlike the second image, the first one was taken at night."]
    assert [t for t in texts if check(t, RULES)] == []


def test_near_duplicates_are_capped_and_counts_survive_a_resume() -> None:
    text = "The first image shows a dog, while the second image shows a cat."
    keep = DescriptionFilter(RULES, max_copies=2)
    verdicts = [keep(t) for t in (text, text.upper(), "  the FIRST image shows a dog; while the second image "
                                                       "shows a cat!", text)]
    assert verdicts == ["", "", "near_duplicate", "near_duplicate"]
    resumed = DescriptionFilter(RULES, max_copies=2, accepted=[text, text])
    assert resumed(text) == "near_duplicate"
    assert DescriptionFilter(RULES, max_copies=0)(text) == "" and duplicate_key("A, b!") == "a b"


def test_filter_report_and_metrics_count_reasons() -> None:
    records = [{"accepted": True, "reason": "", "kind": "random", "attributes": ["size"], "text": "a b c d",
                "phrasings": []}] * 3
    records += [{"accepted": False, "reason": "too_short", "kind": "random", "attributes": [], "text": "a",
                 "phrasings": []}]
    report = filter_report(records).set_index("outcome")
    assert report.loc["accepted", "count"] == 3 and report.loc["too_short", "count"] == 1
    assert set(REASONS) <= set(report.index) and report["share"].sum() == pytest.approx(1.0)
    rows = synthesis_rows(records, asked=5).set_index(["metric", "variant", "attribute"]).value
    assert rows[("accept_rate", "", "")] == 0.75 and rows[("rejected", "too_short", "")] == 1
    assert rows[("rejected", "empty", "")] == 0 and rows[("rejected", "", "")] == 1
    assert rows[("asked", "", "")] == 5 and rows[("written", "", "")] == 4 and rows[("deferred", "", "")] == 1
    assert rows[("mention_share", "", "size")] == 1.0 and rows[("words_mean", "", "")] == 4.0


def test_mentioned_attributes_by_keyword() -> None:
    assert mentioned_attributes("The first dog is bigger and further left than the red one.") == \
        ("size", "x", "color")
    assert mentioned_attributes("The second image is brighter; both show a star.") == ("brightness", "shape")
