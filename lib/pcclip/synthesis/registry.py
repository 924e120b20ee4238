"""The writer backends by name, each imported only when a run picks it.

Backends import the shared types from `writer.py`, never this module, so imports point one
way; the `template` writer runs without transformers installed.
"""
from __future__ import annotations

from importlib import import_module

from ..profiles import SynthesisConfig
from .writer import PAIR_SLOTS, Writer, load_prompt

# name -> (module, class, whether the backend takes the LLM prompt)
BACKENDS: dict[str, tuple[str, str, bool]] = {
    "template": ("template", "TemplateWriter", False),
    "hf": ("hf_writer", "HFWriter", True),
    "openai": ("openai_writer", "OpenAIWriter", True),
}
WRITERS = tuple(BACKENDS)


def make_writer(cfg: SynthesisConfig, prompt: str = "", slots: tuple[str, ...] = PAIR_SLOTS) -> Writer:
    """The backend named by `cfg.writer`; LLM backends load their model or reach their server here.
    `prompt` (default `cfg.prompt`, the difference prompt) names another prompt file with `slots`."""
    if cfg.writer not in BACKENDS:
        raise ValueError(f"synthesis.writer {cfg.writer!r} must be one of {WRITERS}")
    module, name, prompted = BACKENDS[cfg.writer]
    backend = getattr(import_module(f".{module}", __package__), name)
    return backend(cfg, load_prompt(prompt or cfg.prompt, slots)) if prompted else backend(cfg)
