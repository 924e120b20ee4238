"""The rehearsal's chat server: the `openai` writer against it writes accepted, true descriptions."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from http.server import ThreadingHTTPServer
import urllib.error
import urllib.request

import numpy as np
import pytest

from pcclip.profiles import load_profile
from pcclip.rehearsal.chat_server import (NO_DIFFERENCE, ChatServer, _Handler, answer, caption_blocks, chat_server,
                                          rehearsal_llm, serve_synthesis)
from pcclip.synthesis.facts import caption_facts
from pcclip.synthesis.filtering import DescriptionFilter, load_rules
from pcclip.synthesis.openai_writer import OpenAIWriter, _Connections
from pcclip.synthesis.report import mentioned_attributes
from pcclip.synthesis.writer import PairInput, TextRequest, load_prompt
from pcclip.world import CONTINUOUS, captions, sample_records


def _pairs(n: int) -> list[PairInput]:
    rng = np.random.default_rng(3)
    records = sample_records(2 * n, rng)
    texts = list(zip(*[captions(records, rng) for _ in range(2)]))
    return [PairInput(f"p{k}", 2 * k, 2 * k + 1, texts[2 * k], texts[2 * k + 1], (0, k)) for k in range(n)]


def test_caption_blocks_follow_the_prompt_file():
    pair = PairInput("p", 0, 1, ("a large red circle", "big red circle"), ("a small blue ring",), (0,))
    assert caption_blocks(load_prompt("difference_v1").format(pair)) == (list(pair.captions1), list(pair.captions2))
    with pytest.raises(ValueError, match="1 caption block"):
        caption_blocks("Captions:\n- only one\n")


def test_answer_states_what_the_captions_support():
    prompt = load_prompt("difference_v1").format(PairInput("p", 0, 1, ("a large red circle",),
                                                           ("a small red circle",), (0,)))
    texts = {answer(prompt, seed) for seed in range(20)}
    # size is the one difference; a 'both are red' clause may name what they share
    assert len(texts) > 3 and all(set(mentioned_attributes(t)) - {"shape", "color"} == {"size"} for t in texts)
    same = load_prompt("difference_v1").format(PairInput("p", 0, 1, ("a red circle",), ("a red circle",), (0,)))
    assert answer(same, 0) == NO_DIFFERENCE


def _prompt(name: str, **slots: str) -> str:
    return load_prompt(name, tuple(slots)).format(TextRequest("r", tuple(slots.items()), (0,)))


def test_answer_to_the_class_text_and_rewrite_prompts_is_deterministic_per_seed():
    classes = ["oak tree", "pine tree", "palm tree", "willow tree", "maple tree"]
    prompt = _prompt("comparatives_v1", dataset="cifar100", count="3", classes="\n".join(f"- {c}" for c in classes))
    replies = [json.loads(answer(prompt, seed))["comparatives"] for seed in range(4)]
    assert replies[0] == json.loads(answer(prompt, 0))["comparatives"] and replies[0] != replies[1]
    assert all(len(r) == 3 and len({(e["first"], e["second"]) for e in r}) == 3 for r in replies)
    assert all(e["first"] in classes and e["second"] in classes and e["first"] != e["second"]
               for r in replies for e in r)
    assert "a willow tree" in answer(_prompt("descriptions_v1", dataset="cifar100", label="willow tree"), 1)
    rewrite = _prompt("rewrite_caption_v1", caption="A dog runs on the beach.")
    assert {answer(rewrite, seed) for seed in range(12)} == {"An image of a dog runs on the beach.",
                                                             "A picture showing a dog runs on the beach.",
                                                             "A photo of a dog runs on the beach."}
    with pytest.raises(ValueError, match="at least two '- class' lines"):
        answer(_prompt("comparatives_v1", dataset="d", count="3", classes="- one"), 0)


def test_openai_writer_against_the_server_writes_true_accepted_descriptions():
    cfg = load_profile("rehearsal").synthesis
    pairs = _pairs(60)
    with chat_server(cfg.llm) as server:
        writer = OpenAIWriter(replace(cfg, base_url=server.url, concurrency=4), load_prompt(cfg.prompt))
        generations = writer.write(pairs)
        assert server.requests == 60
    check = DescriptionFilter(load_rules())
    stated = 0
    for pair, gen in zip(pairs, generations):
        facts = caption_facts(pair.captions1, pair.captions2)
        differ = set(facts.directions) | set(facts.categories)
        assert not gen.error and gen.text
        if not differ:
            assert gen.text == NO_DIFFERENCE
            continue
        assert check(gen.text) == "", gen.text  # accepted by the paper's filter
        said = set(mentioned_attributes(gen.text))
        assert said & differ, (gen.text, differ)  # states a difference the captions support
        assert said & set(CONTINUOUS) <= differ, (gen.text, differ)  # and no continuous one they do not
        stated += 1
    assert stated > 40


def test_serve_synthesis_listens_where_the_profile_points():
    cfg = load_profile("rehearsal").synthesis
    with serve_synthesis(cfg) as server:
        assert server.url == cfg.base_url and server.model == cfg.llm
        with pytest.raises(OSError, match="another process holds the port"):
            with serve_synthesis(cfg):
                pass
    with pytest.raises(ValueError, match="127.0.0.1:<port>/v1"):
        serve_synthesis(replace(cfg, base_url="http://localhost:8000/v1"))


def test_rehearsal_llm_starts_only_for_the_rehearsal_profile():
    with rehearsal_llm(load_profile("rehearsal").synthesis) as server:
        with urllib.request.urlopen(server.url + "/models") as resp:
            assert json.load(resp)["data"][0]["id"] == "rehearsal-llm"
    for name in ("paper", "smoke"):
        with rehearsal_llm(load_profile(name).synthesis) as server:
            assert server is None


def test_server_routes_and_errors():
    with chat_server("m") as server:
        with urllib.request.urlopen(server.url + "/models") as resp:
            assert json.load(resp)["data"][0]["id"] == "m"
        body = {"model": "m", "messages": [{"role": "user", "content": "no captions here"}]}
        req = urllib.request.Request(server.url + "/chat/completions", json.dumps(body).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 400 and b"caption block" in err.value.read()
        prompt = load_prompt("difference_v1").format(_pairs(1)[0])
        body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "seed": 5}
        req = urllib.request.Request(server.url + "/chat/completions", json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req) as resp:
            reply = json.load(resp)
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert reply["choices"][0]["message"]["content"] == answer(prompt, 5)
    with pytest.raises(urllib.error.URLError):  # stopped on leaving the block
        urllib.request.urlopen(server.url + "/models", timeout=2)


def test_writer_reuses_connections_and_retries_one_the_server_closed_at_once(monkeypatch):
    """Keep-alive: a batch of 24 pairs at concurrency 4 opens at most 4 connections, not 24. A kept
    connection that the server closed while idle is replaced at once: no attempt lost, no backoff."""
    cfg = load_profile("rehearsal").synthesis
    opened = []
    monkeypatch.setattr(ChatServer, "process_request",
                        lambda self, request, address: (opened.append(address), ThreadingHTTPServer.process_request(
                            self, request, address))[1])
    with chat_server(cfg.llm, delay_s=0.02) as server:
        writer = OpenAIWriter(replace(cfg, base_url=server.url, concurrency=4, backoff_s=5.0), load_prompt(cfg.prompt))
        assert all(g.text and not g.error for g in writer.write(_pairs(24)))
        assert server.requests == 24 and 1 <= len(opened) - 1 <= 4  # the first one is the /models check
        monkeypatch.setattr(_Handler, "timeout", 0.1)  # the server drops connections idle for 0.1 s
        pool, (first, second) = _Connections(), _pairs(2)
        assert writer.complete(first, pool).text and len(pool.idle) == 1
        time.sleep(0.5)
        start = time.monotonic()
        assert writer.complete(second, pool).text  # on a new connection, without the 5 s backoff
        assert time.monotonic() - start < 2.0 and server.requests == 26
        pool.close()
