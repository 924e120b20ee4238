"""Tables and flat metrics that describe a difference dataset (for notebook 01 and the report).

All functions take the records of `store.load_records` and return DataFrames (tables to show,
or metric rows to record); nothing here is typed by hand.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..profiles import SynthesisConfig
from ..results import metric_rows
from ..world import ATTRIBUTES, COLORS, SHAPES
from .facts import caption_facts, oracle_facts
from .filtering import REASONS, WRITER_ERROR, words
from .pairs import PairPlan
from .sources import ImageSource
from .template import phrasings


@lru_cache(maxsize=1)
def _keywords() -> dict[str, set[str]]:
    table = {attr: set(ws) for attr, ws in phrasings()["keywords"].items()}
    table["shape"] = set(SHAPES) | {s + "s" for s in SHAPES}
    table["color"] = set(COLORS) | {"colour", "color", "coloured", "colored"}
    return table


def mentioned_attributes(text: str) -> tuple[str, ...]:
    """Attributes a free text talks about, by keyword (for LLM output, whose facts are unknown)."""
    tokens = set(words(text)) | set(re.findall(r"[a-z]+", text.lower()))
    return tuple(attr for attr, keys in _keywords().items() if tokens & keys)


def filter_report(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per outcome ('accepted' and every rejection reason, zeros included)."""
    counts = Counter("accepted" if r["accepted"] else r["reason"] for r in records)
    outcomes = ("accepted",) + REASONS + (WRITER_ERROR,)
    extra = sorted(set(counts) - set(outcomes))
    n = max(len(records), 1)
    return pd.DataFrame({"outcome": list(outcomes) + extra,
                         "count": [counts.get(o, 0) for o in list(outcomes) + extra],
                         "share": [counts.get(o, 0) / n for o in list(outcomes) + extra]})


def attribute_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Accepted descriptions stating each attribute's difference, overall and by pair kind."""
    kept = [r for r in records if r["accepted"]]
    kinds = sorted({r["kind"] for r in kept})
    rows = []
    for attr in ATTRIBUTES:
        row: dict[str, Any] = {"attribute": attr, "descriptions": sum(attr in r["attributes"] for r in kept)}
        row["share"] = row["descriptions"] / max(len(kept), 1)
        for kind in kinds:
            of_kind = [r for r in kept if r["kind"] == kind]
            row[f"share/{kind}"] = sum(attr in r["attributes"] for r in of_kind) / max(len(of_kind), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def phrasing_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """How often each template was used in accepted descriptions (template writer only)."""
    counts = Counter(p for r in records if r["accepted"] for p in r["phrasings"])
    table = pd.DataFrame(sorted(counts.items()), columns=["phrasing", "count"])
    table["group"] = table["phrasing"].str.split(":").str[0]
    return table.sort_values(["group", "phrasing"], ignore_index=True)


def kind_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame({"kind": [r["kind"] for r in records], "accepted": [r["accepted"] for r in records]})
    return frame.groupby("kind", as_index=False).agg(pairs=("accepted", "size"), accepted=("accepted", "sum"))


def synthesis_rows(records: Sequence[dict[str, Any]], asked: int) -> pd.DataFrame:
    """Metric rows (task "synthesis"): counts and acceptance, the planned pairs (`asked`) against those
    written, deferred (planned, not written) and rejected, each rejection reason (the variant), the share
    of accepted descriptions that state each attribute, mean length and distinct texts."""
    kept = [r for r in records if r["accepted"]]
    lengths = [len(words(r["text"])) for r in kept]
    totals = {"pairs": len(records), "accepted": len(kept), "accept_rate": len(kept) / max(len(records), 1),
              "asked": asked, "written": len(records), "deferred": asked - len(records),
              "rejected": len(records) - len(kept), "words_mean": float(np.mean(lengths)) if lengths else 0.0,
              "distinct_texts": len({r["text"] for r in kept})}
    report = filter_report(records)
    rejected = report[report.outcome != "accepted"].rename(columns={"outcome": "variant", "count": "rejected"})
    mentions = attribute_table(records).rename(columns={"share": "mention_share"})
    return pd.concat([metric_rows(totals, list(totals), task="synthesis"),
                      metric_rows(rejected, ["rejected"], task="synthesis"),
                      metric_rows(mentions, ["mention_share"], task="synthesis")], ignore_index=True)


def caption_support(source: ImageSource, plan: PairPlan, cfg: SynthesisConfig) -> pd.DataFrame:
    """Per attribute, the share of planned pairs whose captions support stating a difference,
    against the share whose exact attributes do (oracle): the data cost of caption noise."""
    if source.records is None:
        raise ValueError("caption support needs exact attributes (DiffWorld)")
    caption = Counter()
    oracle = Counter()
    for i, j in zip(plan.idx1.tolist(), plan.idx2.tolist()):
        c = caption_facts(source.captions[i], source.captions[j])
        o = oracle_facts(source.truth(i), source.truth(j), cfg.oracle_gap)
        caption.update(list(c.directions) + list(c.categories))
        oracle.update(list(o.directions) + list(o.categories))
    n = max(len(plan), 1)
    return pd.DataFrame({"attribute": list(ATTRIBUTES), "caption": [caption[a] / n for a in ATTRIBUTES],
                         "oracle": [oracle[a] / n for a in ATTRIBUTES]})
