"""LLM-written class comparatives and descriptions (eval.comparatives / eval.descriptions = "llm") against the
rehearsal's chat server: parsed, checked against the class list, cached, reused without asking again, one
set per model when asked; bad replies fail naming the dataset, the reply and the fix."""
from __future__ import annotations

import importlib
import json
from dataclasses import replace

import pytest

from pcclip.datasets.names import UnknownName
from pcclip.evaluation.comparative import Comparative
from pcclip.evaluation.task_tables import comparative_groups
from pcclip.evaluation.tasks import ClassificationTask, task_comparatives, task_descriptions
from pcclip.paths import RunPaths
from pcclip.profiles import SynthesisConfig, load_profile
from pcclip.rehearsal.chat_server import chat_server
from pcclip.synthesis.class_texts import (MAX_DESCRIPTION_WORDS, check_description, comparatives_path,
                                          descriptions_path, llm_comparatives, llm_descriptions,
                                          parse_comparatives_reply)

chat = importlib.import_module("pcclip.rehearsal.chat_server")  # the package exports a function of that name
CLASSES = ["leopard", "tiger", "lion", "wolf", "fox", "hamster", "mouse", "shrew", "rabbit", "otter"]


def _cfg(server) -> SynthesisConfig:
    return SynthesisConfig(writer="openai", llm=server.model, base_url=server.url, retries=0, concurrency=4)


def test_comparatives_are_parsed_cached_and_reused_without_a_second_call(tmp_path):
    paths = RunPaths(tmp_path)
    with chat_server() as server:
        cfg = _cfg(server)
        entries = llm_comparatives(cfg, paths, "cifar100", CLASSES)
        assert server.requests == 1
        assert llm_comparatives(cfg, paths, "cifar100", CLASSES) == entries
        assert server.requests == 1  # read back from the cache
        llm_comparatives(replace(cfg, temperature=0.2), paths, "cifar100", CLASSES)
        assert server.requests == 2  # other settings: written anew
    assert len(entries) == 3 and len({(e["first"], e["second"]) for e in entries}) == 3
    assert all(e["first"] in CLASSES and e["second"] in CLASSES and e["first"] != e["second"] for e in entries)
    stored = json.loads(comparatives_path(paths, "cifar100").read_text())
    assert stored["generated_by"]["llm"] == server.model and stored["generated_by"]["temperature"] == 0.2


def test_per_model_sets_have_their_own_files_and_texts(tmp_path):
    paths = RunPaths(tmp_path)
    with chat_server() as server:
        base = llm_comparatives(_cfg(server), paths, "cifar100", CLASSES, model="base")
        tuned = llm_comparatives(_cfg(server), paths, "cifar100", CLASSES, model="pcclip")
    assert comparatives_path(paths, "cifar100", "base").name == "cifar100.base.json"
    assert comparatives_path(paths, "cifar100", "pcclip").is_file() and comparatives_path(paths, "cifar100",
                                                                                        "base").is_file()
    assert not comparatives_path(paths, "cifar100").exists()
    assert base != tuned


def test_a_bad_reply_names_dataset_reply_and_fix_and_caches_nothing(tmp_path, monkeypatch):
    paths = RunPaths(tmp_path)
    monkeypatch.setattr(chat, "answer", lambda prompt, seed: "Sure! Leopards have spots.")
    with chat_server() as server, pytest.raises(ValueError) as err:
        llm_comparatives(_cfg(server), paths, "cifar100", CLASSES)
    message = str(err.value)
    assert "LLM comparatives of cifar100" in message and "Leopards have spots" in message
    assert "eval.comparatives='handwritten'" in message and str(comparatives_path(paths, "cifar100")) in message
    assert not comparatives_path(paths, "cifar100").exists()


def test_a_rambling_description_names_class_and_fix_and_caches_nothing(tmp_path, monkeypatch):
    paths = RunPaths(tmp_path)
    monkeypatch.setattr(chat, "answer", lambda prompt, seed: " ".join(["word"] * (MAX_DESCRIPTION_WORDS + 1)))
    with chat_server() as server, pytest.raises(ValueError) as err:
        llm_descriptions(_cfg(server), paths, "cifar100", CLASSES)
    message = str(err.value)
    assert f"LLM descriptions of cifar100: the description of 'leopard' must be 1 to {MAX_DESCRIPTION_WORDS} words, " \
           f"got {MAX_DESCRIPTION_WORDS + 1}" in message
    assert "eval.descriptions='handwritten'" in message and not descriptions_path(paths, "cifar100").exists()


def test_parse_checks_json_count_and_class_names():
    good = {"first": "leopard", "second": "Tiger", "text": "The first image shows spots."}
    reply = "```json\n" + json.dumps({"comparatives": [good] * 3}) + "\n```"
    assert parse_comparatives_reply(reply, CLASSES, 2, "src")[0]["second"] == "tiger"  # resolved to the class list
    with pytest.raises(ValueError, match="src: expected JSON .* at least 4 entries"):
        parse_comparatives_reply(reply, CLASSES, 4, "src")
    with pytest.raises(UnknownName, match="'leopardess' \\(closest: \\['leopard'\\]\\)"):
        parse_comparatives_reply(json.dumps({"comparatives": [{**good, "first": "leopardess"}]}), CLASSES, 1, "src")
    with pytest.raises(ValueError, match="compares 'lion' with itself"):
        parse_comparatives_reply(json.dumps({"comparatives": [{**good, "first": "lion", "second": "Lion"}]}),
                                 CLASSES, 1, "src")


def test_descriptions_one_per_class_cached(tmp_path):
    paths = RunPaths(tmp_path)
    with chat_server() as server:
        out = llm_descriptions(_cfg(server), paths, "cifar100", CLASSES)
        assert server.requests == len(CLASSES)
        assert llm_descriptions(_cfg(server), paths, "cifar100", CLASSES) == out
        assert server.requests == len(CLASSES)
    assert list(out) == CLASSES and all(c in text and text.endswith(".") for c, text in out.items())
    assert json.loads(descriptions_path(paths, "cifar100").read_text())["descriptions"] == out
    with pytest.raises(ValueError, match=f"description of 'fox' must be 1 to {MAX_DESCRIPTION_WORDS} words, got 0"):
        check_description("  ", "fox", "src")


def test_the_template_writer_cannot_write_class_texts(tmp_path):
    with pytest.raises(ValueError, match="need an LLM: set synthesis.writer to 'openai' or 'hf'"):
        llm_comparatives(SynthesisConfig(), RunPaths(tmp_path), "cifar100", CLASSES)


def test_evaluation_takes_llm_sets_per_model_and_handwritten_by_default(tmp_path):
    paths = RunPaths(tmp_path)
    classes = ["circle", "ring", "square", "diamond", "triangle", "star", "hexagon", "cross"]
    default = load_profile("smoke")
    comps, own = task_comparatives(default, paths, "diffworld", classes)
    assert own == {} and comps and task_descriptions(default, paths, "cifar100", CLASSES) is None
    with chat_server() as server:
        profile = load_profile("smoke", {"synthesis.writer": "openai", "synthesis.llm": server.model,
                                         "synthesis.base_url": server.url, "eval.comparatives": "llm",
                                         "eval.comparatives_per_model": True, "eval.descriptions": "llm"})
        comps, own = task_comparatives(profile, paths, "diffworld", classes, models=("base", "pcclip"))
        described = task_descriptions(profile, paths, "diffworld", classes)
    assert set(own) == {"base", "pcclip"} and comps == own["base"] and own["base"] != own["pcclip"]
    assert all(isinstance(c, Comparative) and len(own[m]) == 3 for m in own for c in own[m])
    assert set(described) == set(classes)
    task = ClassificationTask("diffworld", None, None, classes, [], comps, None, model_comparatives=own)
    groups = comparative_groups({"base": "b", "pcclip": "p"}, task)
    assert [(list(models), c) for models, c in groups] == [(["base"], own["base"]), (["pcclip"], own["pcclip"])]
    with pytest.raises(ValueError, match=r"no comparatives of their own for models \['caption_ft'\]"):
        comparative_groups({"base": "b", "caption_ft": "c"}, task)
    with pytest.raises(ValueError, match="comparatives_per_model=true needs eval.comparatives='llm'"):
        load_profile("smoke", {"eval.comparatives_per_model": True})  # at load, before any notebook runs
    with pytest.raises(ValueError, match=r"eval.comparatives='chatgpt' \(choose one of handwritten, llm\)"):
        load_profile("smoke", {"eval.comparatives": "chatgpt"})
