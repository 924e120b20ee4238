"""The 'hf' writer with a tiny randomly initialised GPT-2 and a word-level tokenizer built here.

No downloads: the model and tokenizer are saved to a temp folder and loaded by path, as a
user's local model would be. Random weights write gibberish; the filter must reject all
of it, each with a reason.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import load_records, synthesize
from pcclip.synthesis.filtering import REASONS, check, load_rules
from pcclip.synthesis.registry import make_writer
from pcclip.synthesis.writer import PairInput, load_prompt

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

VOCAB = ["[PAD]", "[UNK]", "[EOS]", "zq", "blorp", "{", "}", "<", ">", "!!", "7", "the", "cat", "image", "##x",
         "red", "of", "a", "-", "*"]
CHAT = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}")


def _save_tiny_lm(folder, chat_template: str | None) -> str:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    if chat_template:
        fast.chat_template = chat_template
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(VOCAB), n_positions=512, n_embd=16, n_layer=1, n_head=2, bos_token_id=2,
                     eos_token_id=2, pad_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_lms(tmp_path_factory):
    return {"chat": _save_tiny_lm(tmp_path_factory.mktemp("chat"), CHAT),
            "plain": _save_tiny_lm(tmp_path_factory.mktemp("plain"), None)}


def _cfg(path: str):
    return replace(load_profile("smoke").synthesis, writer="hf", llm=path, llm_device="cpu", max_new_tokens=12,
                   temperature=1.0)


def _pairs(n: int) -> list[PairInput]:
    return [PairInput(pair_id=str(k), idx1=k, idx2=k + 1, captions1=("a red cat",), captions2=("the image",),
                      seed=(0, k, k + 1)) for k in range(n)]


def test_prompt_uses_the_chat_template_only_when_there_is_one(tiny_lms) -> None:
    from pcclip.synthesis.hf_writer import render_prompt

    chat, plain = make_writer(_cfg(tiny_lms["chat"])), make_writer(_cfg(tiny_lms["plain"]))
    text = load_prompt("difference_v1").format(_pairs(1)[0])
    assert "- a red cat" in text and "- the image" in text
    assert render_prompt(chat.tokenizer, text) == f"<user> {text} <assistant>"
    assert render_prompt(plain.tokenizer, text) == text + "\n"
    assert chat.tokenizer.padding_side == "left" and chat.model == tiny_lms["chat"]


@pytest.mark.parametrize("kind", ["chat", "plain"])
def test_batched_generation_is_gibberish_that_the_filter_rejects(tiny_lms, kind: str) -> None:
    writer = make_writer(_cfg(tiny_lms[kind]))
    gens = writer.write(_pairs(5))
    again = writer.write(_pairs(5))
    assert [g.text for g in gens] == [g.text for g in again]  # seeded per batch
    assert len(gens) == 5 and any(g.text for g in gens)
    text = " ".join(g.text for g in gens)
    assert set(text) <= set("".join(VOCAB[3:]) + " ") and "PAD" not in text  # new tokens only, decoded
    reasons = [check(g.text, load_rules()) for g in gens]
    assert all(r in REASONS for r in reasons), list(zip(reasons, [g.text for g in gens]))


def test_synthesize_with_a_local_model_records_rejections(tiny_lms) -> None:
    overrides = {"synthesis.writer": "hf", "synthesis.llm": tiny_lms["plain"], "synthesis.llm_device": "cpu",
                 "synthesis.n_pairs": 6, "synthesis.batch_size": 4, "synthesis.max_new_tokens": 8}
    profile, paths = load_profile("smoke", overrides), run_paths("smoke")
    records = load_records(synthesize(profile, paths, progress=False))
    assert len(records) == 6 and not any(r["accepted"] for r in records)
    assert all(r["reason"] in REASONS and r["writer"] == "hf" and r["model"] == tiny_lms["plain"] for r in records)


def test_missing_model_name_is_explained() -> None:
    with pytest.raises(ValueError, match="synthesis.llm"):
        make_writer(replace(load_profile("smoke").synthesis, writer="hf", llm=""))
    with pytest.raises(OSError, match="cannot load synthesis.llm"):
        make_writer(replace(load_profile("smoke").synthesis, writer="hf", llm="/nonexistent/model/folder"))


def test_writers_of_one_run_share_the_loaded_model(tiny_lms, monkeypatch) -> None:
    """A run builds a writer per dataset and text kind (class descriptions, comparatives, rewrites): the LLM is
    loaded once while they ask for the same one, and released when another is asked for."""
    from pcclip.synthesis import hf_writer

    loads = []
    real = hf_writer._load_lm
    monkeypatch.setattr(hf_writer, "_load_lm", lambda *key: loads.append(key) or real(*key))
    hf_writer._LOADED.clear()
    first, second = make_writer(_cfg(tiny_lms["chat"])), make_writer(replace(_cfg(tiny_lms["chat"]), seed=5))
    assert second.lm is first.lm and len(loads) == 1
    other = make_writer(_cfg(tiny_lms["plain"]))
    assert other.lm is not first.lm and len(hf_writer._LOADED) == 1
    assert make_writer(_cfg(tiny_lms["chat"])).lm is not first.lm and len(loads) == 3  # the first was dropped
