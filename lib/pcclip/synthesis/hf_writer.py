"""Writer 'hf': a local causal LM through transformers, generating in batches.

The model is named like any hub model (or a local folder). Chat models get their chat
template; base models get the plain prompt, which ends in a cue line. Batches are
left-padded so every row's new tokens start at the same position.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..profiles import SynthesisConfig
from .writer import Generation, Prompt, WriterInput, clean_generation


def render_prompt(tokenizer: Any, text: str) -> str:
    """The model's chat template around one user turn when it has one, else the text itself."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text + "\n"


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"synthesis.llm_device {name!r} must be 'auto', 'cuda' or 'cpu'")
    return name


_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}


def load_lm(llm: str, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) of `llm` on `device`, kept while the next writer asks for the same one: one synthesis
    run builds a writer per dataset and per text kind, and a 13B model takes about a minute to load. Asking for
    another model drops this one from the cache before loading it (a writer still alive keeps its own)."""
    if (llm, device) not in _LOADED:
        _LOADED.clear()
        _LOADED[(llm, device)] = _load_lm(llm, device)
    return _LOADED[(llm, device)]


def _load_lm(llm: str, device: str) -> tuple[Any, Any]:
    """The tokenizer (left-padded for batched generation) and the model, read from the hub cache or a folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(llm)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        lm = AutoModelForCausalLM.from_pretrained(llm, dtype=dtype).to(device).eval()
    except OSError as err:
        raise OSError(f"cannot load synthesis.llm={llm!r} ({err}); give a local folder or log in with "
                      "`hf auth login` for gated models such as LLaMA-2") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, lm


class HFWriter:
    name = "hf"

    def __init__(self, cfg: SynthesisConfig, prompt: Prompt) -> None:
        if not cfg.llm:
            raise ValueError("synthesis.writer='hf' needs synthesis.llm: a hub model name "
                             "(e.g. meta-llama/Llama-2-13b-chat-hf) or a local folder with a causal LM")
        self.cfg, self.prompt = cfg, prompt
        self.model, self.prompt_version = cfg.llm, prompt.version
        self.device = _device(cfg.llm_device)
        self.tokenizer, self.lm = load_lm(cfg.llm, self.device)

    def _generate(self, texts: list[str], seed: int) -> list[str]:
        import torch

        chat = bool(getattr(self.tokenizer, "chat_template", None))  # a chat template already adds BOS
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat).to(self.device)
        sample = self.cfg.temperature > 0
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.lm.generate(**enc, max_new_tokens=self.cfg.max_new_tokens, do_sample=sample,
                                   temperature=self.cfg.temperature if sample else None,
                                   top_p=self.cfg.top_p if sample else None,
                                   pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def write(self, batch: Sequence[WriterInput]) -> list[Generation]:
        if not batch:
            return []
        texts = [render_prompt(self.tokenizer, self.prompt.format(pair)) for pair in batch]
        seed = int(np.random.SeedSequence(batch[0].seed).generate_state(1)[0])
        return [Generation(text=clean_generation(t)) for t in self._generate(texts, seed)]
