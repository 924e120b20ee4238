"""The types every description writer shares; `registry.make_writer` picks a backend by name.

A writer turns a batch of pairs (each with its images' captions) into one `Generation`
per pair, in order; LLM backends also answer `TextRequest`s (class comparatives, class
descriptions, rewritten captions), each filling the slots of its own prompt file. Backends:
`template` (offline, DiffWorld), `hf` (a local causal LM through transformers) and `openai`
(any OpenAI-compatible chat-completions server, e.g. vLLM). LLM backends share the prompt
files and the output cleaning defined here. The backends import this module and nothing
imports them but the registry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from ..resources import read_text


@dataclass(frozen=True)
class PairInput:
    pair_id: str
    idx1: int
    idx2: int
    captions1: tuple[str, ...]
    captions2: tuple[str, ...]
    seed: tuple[int, ...]  # seeds this pair's randomness, whatever batch it lands in
    focus: str | None = None  # attribute the pair was chosen to contrast (template writer states it first)
    truth1: dict | None = None  # exact attributes (DiffWorld), used only by the template oracle mode
    truth2: dict | None = None

    def prompt_slots(self) -> dict[str, str]:
        return {"captions1": _block(self.captions1), "captions2": _block(self.captions2)}


@dataclass(frozen=True)
class TextRequest:
    """One prompt that is not about a pair: `slots` fill the prompt file's {name} slots."""

    request_id: str
    slots: tuple[tuple[str, str], ...]
    seed: tuple[int, ...]

    def prompt_slots(self) -> dict[str, str]:
        return dict(self.slots)


WriterInput = PairInput | TextRequest


def _block(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


@dataclass(frozen=True)
class Generation:
    text: str
    attributes: tuple[str, ...] | None = None  # known to the template writer; None: detect from the text
    phrasings: tuple[str, ...] = ()
    words: tuple[str, ...] = ()  # template writer: attribute words and values used
    negatives: tuple[str, ...] = ()  # template writer: false descriptions of the same pair (hard negatives)
    error: str = ""  # why no usable text came back (recorded as a rejection unless deferred)
    deferred: bool = False  # transient failure: leave the pair unwritten so a rerun retries it


class Writer(Protocol):
    name: str
    model: str
    prompt_version: str

    def write(self, batch: Sequence[WriterInput]) -> list[Generation]: ...


class WriterUnavailable(RuntimeError):
    """The backend cannot be reached or keeps failing; finished records stay on disk."""


class BatchInterrupted(Exception):
    """A writer stopped part-way through a batch. `finished` holds, in pair order, the generations
    that came back (None for the rest) so the caller stores them before raising `cause`."""

    def __init__(self, finished: list[Generation | None], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.finished, self.cause = finished, cause


@dataclass(frozen=True)
class Prompt:
    version: str  # the file's stem, recorded with every generation
    text: str

    def format(self, item: WriterInput) -> str:
        return self.text.format(**item.prompt_slots())


PAIR_SLOTS = ("captions1", "captions2")


def load_prompt(name: str, slots: Sequence[str] = PAIR_SLOTS) -> Prompt:
    """data/prompts/<name>.txt, which must contain every one of `slots` (difference prompts: the two caption
    slots) as {slot}; literal braces are written {{ and }}."""
    text = read_text(f"prompts/{name}.txt")
    missing = [f"{{{slot}}}" for slot in slots if f"{{{slot}}}" not in text]
    if missing:
        raise ValueError(f"prompt prompts/{name}.txt lacks {missing}; these slots are required")
    return Prompt(name, text.strip())


def clean_generation(text: str) -> str:
    """Strip what chat models wrap answers in: a 'Sure, here is...:' line, a label, quotes, line breaks."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    out = " ".join(lines)
    out = re.sub(r"^(description|answer|differences?)\s*:\s*", "", out, flags=re.IGNORECASE)
    return out.strip().strip('"\u201c\u201d').strip()
