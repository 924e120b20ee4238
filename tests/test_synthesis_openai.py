"""The 'openai' writer against a scripted chat-completions server on 127.0.0.1: every fault a
real server shows, and the guarantees that hold under each: nothing lost, nothing stored twice,
no wrong text stored, and a rerun asks only for what is missing.

A marker in the first caption ('e500x2-7') tells the server how to treat that pair; `xN` makes
the fault last N attempts, no `xN` makes it permanent. Synthesis tests script pairs by their
prompt instead (`server.script`). Faults: 500, 429 + Retry-After, a hang past the client
timeout, a body trickled slower than the timeout, HTML or broken JSON with status 200, no
choices, empty and truncated (`finish_reason: "length"`) replies, a poison pair (400) and a
refused key (401). Every loop is bounded by `retries`.
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import load_records, plan_pairs, synthesize
from pcclip.synthesis.openai_writer import OpenAIWriter, RequestRejected
from pcclip.synthesis.report import synthesis_rows
from pcclip.synthesis.runner import SynthesisIncomplete, pair_input
from pcclip.synthesis.sources import image_source
from pcclip.synthesis.writer import BatchInterrupted, PairInput, WriterUnavailable, load_prompt

MODEL = "tiny-llm"
TRICKLE_S = 0.05  # seconds between the bytes of a trickled reply (about 200 bytes: 10 s in all)


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.attempts: Counter[str] = Counter()  # by marker (or prompt)
        self.prompts: list[str] = []  # every completion request, in arrival order
        self.script: dict[str, str] = {}  # prompt -> behaviour, for pairs without a marker
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = self.completions = 0
        self.delay = 0.0  # seconds every completion takes
        self.healthy_for: int | None = None  # after this many completions, answer 503 to everything

    def handle_error(self, request, client_address) -> None:  # a client that timed out closed the socket
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _completion(self, text: str, finish: str = "stop") -> None:
        choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
        self._send(200, json.dumps({"object": "chat.completion", "choices": [choice]}).encode())

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": MODEL}]}).encode())

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body["model"] != MODEL:
            return self._send(404, json.dumps({"error": f"The model `{body['model']}` does not exist."}).encode())
        prompt = body["messages"][0]["content"]
        found = re.search(r"\b\w+-\d+\b", prompt)
        key = found.group(0) if found else prompt
        spec = key.rsplit("-", 1)[0] if found else srv.script.get(prompt, "ok")
        behaviour, times = re.fullmatch(r"(\w+?)(?:x(\d))?", spec).groups()
        times = int(times or 0)
        with srv.lock:
            srv.prompts.append(prompt)
            srv.attempts[key] += 1
            n = srv.attempts[key]
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            down = srv.healthy_for is not None and srv.completions >= srv.healthy_for
        try:
            time.sleep(srv.delay)
            failing = down or (behaviour != "ok" and (not times or n <= times))
            self._fault(behaviour, down) if failing else self._answer(prompt)
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _fault(self, behaviour: str, down: bool) -> None:
        if down or behaviour in ("e500", "always500"):
            return self._send(503 if down else 500, b"overloaded")
        if behaviour == "e429":
            return self._send(429, b"slow down", {"Retry-After": "0"})
        if behaviour == "slow":  # hangs past the client's timeout, then fails
            time.sleep(1.5)
            return self._send(500, b"late")
        faults = {"poison": (400, b'{"error": "prompt is too long for this model"}'),
                  "auth": (401, b'{"error": "invalid api key"}'),
                  "html": (200, b"<html><body>502 Bad Gateway</body></html>"),
                  "json": (200, b'{"choices": [{"message": {"content": "The first'),
                  "nocontent": (200, json.dumps({"choices": []}).encode())}
        if behaviour in faults:
            return self._send(*faults[behaviour])
        if behaviour == "empty":
            return self._completion("")
        if behaviour == "cut":
            return self._completion("The first image shows a", finish="length")
        if behaviour == "trickle":  # a valid reply, one byte at a time: each read is quick, the whole is not
            body = json.dumps({"choices": [{"message": {"content": "The first image is slow."}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(TRICKLE_S)
            return None
        raise AssertionError(f"unknown scripted behaviour {behaviour!r}")

    def _answer(self, prompt: str) -> None:
        first, second = (block.splitlines()[0][2:] for block in re.findall(r"image:\n((?:- .*\n?)+)", prompt))
        with self.server.lock:
            self.server.completions += 1
        self._completion(f"Sure, here it is:\nThe first image shows {first}, while the second image shows {second}.")


def expected_text(pair: PairInput) -> str:
    return f"The first image shows {pair.captions1[0]}, while the second image shows {pair.captions2[0]}."


@pytest.fixture
def server():
    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _cfg(url: str, **changes):
    base = replace(load_profile("smoke").synthesis, writer="openai", base_url=url, llm=MODEL, concurrency=4,
                   timeout_s=5.0, retries=3, backoff_s=0.01)
    return replace(base, **changes)


def _pair(marker: str, k: int) -> PairInput:
    return PairInput(pair_id=str(k), idx1=k, idx2=k + 1, captions1=(f"a cat {marker}-{k}",),
                     captions2=("a dog on a sofa",), seed=(0, k, k + 1))


def test_retries_recover_from_transient_faults(server) -> None:
    writer = OpenAIWriter(_cfg(server.url), load_prompt("difference_v1"))
    markers = ["ok", "e500x2", "e429x3", "htmlx2", "jsonx1", "nocontentx1", "emptyx3", "cutx2"]
    pairs = [_pair(m, k) for k, m in enumerate(markers)]
    gens = writer.write(pairs)
    assert [g.text for g in gens] == [expected_text(p) for p in pairs]  # 'Sure, here it is:' line cleaned away
    assert not any(g.error or g.deferred for g in gens)
    assert [server.attempts[f"{m}-{k}"] for k, m in enumerate(markers)] == [1, 3, 4, 3, 2, 2, 4, 3]


@pytest.mark.parametrize("marker,error", [("always500", "HTTP 500"), ("html", "not JSON"), ("json", "not JSON"),
                                          ("nocontent", "no choices"), ("empty", "empty reply"),
                                          ("cut", "truncated"), ("slow", "within 0.5 s")])
def test_lasting_faults_are_deferred_never_stored_as_final(server, marker: str, error: str) -> None:
    writer = OpenAIWriter(_cfg(server.url, timeout_s=0.5, retries=2), load_prompt("difference_v1"))
    gen = writer.write([_pair(marker, 0)])[0]
    assert gen.deferred and gen.text == "" and error in gen.error and "after 3 attempts" in gen.error
    assert server.attempts[f"{marker}-0"] == 3


def test_timeout_bounds_the_whole_request_not_each_read(server) -> None:
    writer = OpenAIWriter(_cfg(server.url, timeout_s=0.5, retries=0), load_prompt("difference_v1"))
    start = time.monotonic()
    gen = writer.write([_pair("trickle", 0)])[0]  # each byte comes well within 0.5 s; the reply takes 3 s
    assert time.monotonic() - start < 1.2
    assert gen.deferred and gen.text == "" and "within 0.5 s" in gen.error


def test_requests_in_flight_are_bounded(server) -> None:
    server.delay = 0.2
    writer = OpenAIWriter(_cfg(server.url, concurrency=3), load_prompt("difference_v1"))
    pairs = [_pair("ok", k) for k in range(12)]
    assert [g.text for g in writer.write(pairs)] == [expected_text(p) for p in pairs]  # in pair order
    assert 2 <= server.max_in_flight <= 3


def test_a_poison_pair_is_rejected_with_its_reason_and_the_rest_written(server) -> None:
    writer = OpenAIWriter(_cfg(server.url), load_prompt("difference_v1"))
    pairs = [_pair("ok", 0), _pair("poison", 1), _pair("ok", 2)]
    gens = writer.write(pairs)
    assert not gens[1].deferred and gens[1].text == "" and server.attempts["poison-1"] == 1  # never retried
    assert "HTTP 400" in gens[1].error and "prompt is too long" in gens[1].error
    assert [gens[0].text, gens[2].text] == [expected_text(pairs[0]), expected_text(pairs[2])]


def test_unreachable_server_and_refusals_have_clear_errors(server) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WriterUnavailable, match=rf"127\.0\.0\.1:{port}/v1.*vllm serve"):
        OpenAIWriter(_cfg(f"http://127.0.0.1:{port}/v1"), load_prompt("difference_v1"))
    writer = OpenAIWriter(_cfg(server.url, llm="other"), load_prompt("difference_v1"))  # on-demand servers
    with pytest.raises(BatchInterrupted) as info:  # load models not in their list, so the first request decides
        writer.write([_pair("ok", 0)])
    assert isinstance(info.value.cause, RequestRejected) and info.value.finished == [None]
    assert re.search(r"HTTP 404.*does not exist.*serves \['tiny-llm'\]", str(info.value.cause))
    writer = OpenAIWriter(_cfg(server.url), load_prompt("difference_v1"))
    pairs = [_pair("ok", 0), _pair("auth", 1)]
    with pytest.raises(BatchInterrupted) as info:
        writer.write(pairs)
    assert "refused the API key" in str(info.value.cause) and "$OPENAI_API_KEY" in str(info.value.cause)
    assert info.value.finished[0].text == expected_text(pairs[0]) and info.value.finished[1] is None
    with pytest.raises(ValueError, match="base_url"):
        OpenAIWriter(_cfg(""), load_prompt("difference_v1"))


def _overrides(url: str, n_pairs: int, batch: int, **more) -> dict:
    return {"synthesis.writer": "openai", "synthesis.base_url": url, "synthesis.llm": MODEL,
            "synthesis.n_pairs": n_pairs, "synthesis.batch_size": batch, "synthesis.concurrency": 3,
            "synthesis.retries": 2, "synthesis.backoff_s": 0.01, "synthesis.timeout_s": 0.5} | more


def _script(server: ChatServer, profile, faults: dict[int, str]) -> tuple[list[PairInput], list[str]]:
    """Give planned pair k the fault `faults[k]`; returns every planned pair and its prompt."""
    cfg, source = profile.synthesis, image_source(profile)
    plan, prompt = plan_pairs(cfg, source), load_prompt(cfg.prompt)
    pairs = [pair_input(plan, k, source, cfg) for k in range(len(plan))]
    prompts = [prompt.format(p) for p in pairs]
    assert len(set(prompts)) == len(prompts)
    server.script = {prompts[k]: fault for k, fault in faults.items()}
    return pairs, prompts


def _check_store(path, pairs: list[PairInput], written: set[int], rejected: dict[int, str]) -> list[dict]:
    """Exactly the `written` pairs, once each, each with its own pair's text or its rejection."""
    records = load_records(path)  # refuses a pair stored twice
    assert [r["index"] for r in records] == sorted(written)
    for r in records:
        pair = pairs[r["index"]]
        assert (r["pair_id"], r["idx1"], r["idx2"]) == (pair.pair_id, pair.idx1, pair.idx2)
        if r["index"] in rejected:
            assert not r["accepted"] and r["reason"] == "writer_error" and rejected[r["index"]] in r["error"]
            assert r["text"] == ""
        else:
            assert r["accepted"] and r["text"] == expected_text(pair) and r["error"] == ""
    return records


FAULTS = {2: "poison", 5: "e500x1", 7: "html", 9: "empty", 11: "cut", 13: "e429x2", 15: "jsonx1", 17: "trickle",
          20: "slow"}
DEFERRED = {7, 9, 11, 17, 20}


def test_synthesis_under_faults_loses_nothing_and_reruns_ask_only_for_what_is_missing(server) -> None:
    profile, paths = load_profile("smoke", _overrides(server.url, 24, 6)), run_paths("smoke")
    pairs, prompts = _script(server, profile, FAULTS)
    with pytest.raises(SynthesisIncomplete, match=r"5 of 24 pairs.*allow_partial") as info:
        synthesize(profile, paths, progress=False)
    assert "truncated" in str(info.value) and "empty reply" in str(info.value)
    path = paths.data / "differences.jsonl"
    records = _check_store(path, pairs, set(range(24)) - DEFERRED, {2: "HTTP 400"})
    totals = synthesis_rows(records, asked=24).query("variant == '' and attribute == ''").set_index("metric").value
    counts = {k: totals[k] for k in ("asked", "written", "deferred", "rejected")}
    assert counts == {"asked": 24, "written": 19, "deferred": 5, "rejected": 1}
    server.script, server.prompts = {}, []  # the server recovers
    assert synthesize(profile, paths, progress=False) == path
    assert sorted(server.prompts) == sorted(prompts[k] for k in DEFERRED)  # once each, nothing else
    _check_store(path, pairs, set(range(24)), {2: "HTTP 400"})
    server.prompts = []
    synthesize(profile, paths, progress=False)
    assert server.prompts == []


def test_allow_partial_lets_a_run_end_with_deferred_pairs(server, capsys) -> None:
    overrides = _overrides(server.url, 8, 4, **{"synthesis.allow_partial": True})
    profile, paths = load_profile("smoke", overrides), run_paths("smoke")
    pairs, _ = _script(server, profile, {1: "cut", 6: "poison"})
    path = synthesize(profile, paths, progress=False)
    records = _check_store(path, pairs, set(range(8)) - {1}, {6: "HTTP 400"})
    assert "1 of 8 pairs" in capsys.readouterr().err
    rows = synthesis_rows(records, asked=8)
    assert rows[rows.metric == "deferred"].value.tolist() == [1]


def test_finished_replies_are_stored_before_a_fatal_error_propagates(server) -> None:
    overrides = _overrides(server.url, 12, 6, **{"synthesis.concurrency": 6})
    profile, paths = load_profile("smoke", overrides), run_paths("smoke")
    pairs, prompts = _script(server, profile, {3: "auth"})
    server.delay = 0.2  # the whole batch is in flight when the refusal comes
    with pytest.raises(RequestRejected, match="refused the API key"):
        synthesize(profile, paths, progress=False)
    path = paths.data / "differences.jsonl"
    _check_store(path, pairs, {0, 1, 2, 4, 5}, {})
    server.script, server.prompts = {}, []
    synthesize(profile, paths, progress=False)
    assert sorted(server.prompts) == sorted(prompts[k] for k in [3, *range(6, 12)])
    _check_store(path, pairs, set(range(12)), {})


def test_a_batch_refused_pair_by_pair_stops_the_run_without_storing(server) -> None:
    profile, paths = load_profile("smoke", _overrides(server.url, 4, 4)), run_paths("smoke")
    _script(server, profile, dict.fromkeys(range(4), "poison"))  # a setting the server refuses, not bad pairs
    with pytest.raises(WriterUnavailable, match="refused every pair of a batch.*HTTP 400"):
        synthesize(profile, paths, progress=False)
    path = paths.data / "differences.jsonl"
    assert not path.exists() or load_records(path) == []


def test_synthesize_survives_an_outage_and_resumes(server) -> None:
    overrides = {"synthesis.writer": "openai", "synthesis.base_url": server.url, "synthesis.llm": MODEL,
                 "synthesis.n_pairs": 30, "synthesis.batch_size": 5, "synthesis.concurrency": 2,
                 "synthesis.retries": 1, "synthesis.backoff_s": 0.01, "synthesis.timeout_s": 5.0}
    profile, paths = load_profile("smoke", overrides), run_paths("smoke")
    server.healthy_for = 10  # two batches, then the server answers 503 to everything
    with pytest.raises(WriterUnavailable, match="10 finished pairs are safe"):
        synthesize(profile, paths, progress=False)
    assert len(load_records(paths.data / "differences.jsonl")) == 10
    server.healthy_for = None
    path = synthesize(profile, paths, progress=False)
    records = load_records(path)
    assert sorted(r["index"] for r in records) == list(range(30))
    assert all(r["accepted"] and r["model"] == MODEL and r["prompt_version"] == "difference_v1" for r in records)
    assert all(r["text"].startswith("The first image shows ") and "shape" in r["attributes"] for r in records)


@pytest.mark.parametrize("raw,clean", [
    ('Sure! Here is the description:\n\n"The first image shows a cat, the second a dog."',
     "The first image shows a cat, the second a dog."),
    ("Description: The first image is darker.\nIt also has more people.",
     "The first image is darker. It also has more people."),
    ("  \u201cThe second image is taken indoors.\u201d  ", "The second image is taken indoors."),
    ("", ""),
])
def test_clean_generation_strips_chat_wrapping(raw: str, clean: str) -> None:
    from pcclip.synthesis.writer import clean_generation

    assert clean_generation(raw) == clean


def test_prompt_and_writer_names_are_checked() -> None:
    from pcclip.synthesis.registry import make_writer

    with pytest.raises(FileNotFoundError, match="prompts/difference_v9.txt"):
        load_prompt("difference_v9")
    with pytest.raises(ValueError, match="synthesis.writer 'gpt' must be one of"):
        make_writer(replace(load_profile("smoke").synthesis, writer="gpt"))
