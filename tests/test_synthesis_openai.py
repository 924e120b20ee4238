"""The 'openai' writer against a scripted chat-completions server on 127.0.0.1.

A marker in the first caption ('e500x2-7') tells the server how to treat that pair:
fail twice with 500, answer 429, stall past the client timeout, return a body that is
not a completion, or refuse with 400. Every loop is bounded by `retries`.
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
from pcclip.synthesis import load_records, synthesize
from pcclip.synthesis.openai_writer import OpenAIWriter, RequestRejected
from pcclip.synthesis.writer import PairInput, WriterUnavailable, load_prompt

MODEL = "tiny-llm"


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.attempts: Counter[str] = Counter()
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

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": MODEL}]}).encode())

    def do_POST(self) -> None:
        srv = self.server
        prompt = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"][0]["content"]
        marker = re.search(r"\b(\w+?)(?:x(\d))?-\d+\b", prompt)
        behaviour, times = (marker.group(1), int(marker.group(2) or 0)) if marker else ("ok", 0)
        with srv.lock:
            srv.attempts[marker.group(0) if marker else prompt] += 1
            n = srv.attempts[marker.group(0) if marker else prompt]
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            down = srv.healthy_for is not None and srv.completions >= srv.healthy_for
        try:
            time.sleep(srv.delay)
            self._reply(behaviour, times, n, down, prompt)
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _reply(self, behaviour: str, times: int, n: int, down: bool, prompt: str) -> None:
        if down or behaviour == "always500":
            return self._send(503, b"overloaded")
        if behaviour == "bad400":
            return self._send(400, b'{"error": "unknown parameter"}')
        if behaviour in ("e500", "e429", "slow") and n <= times:
            if behaviour == "slow":
                time.sleep(1.5)
            return self._send(500 if behaviour == "e500" else 429, b"busy", {"Retry-After": "0"})
        if behaviour == "garbage":
            return self._send(200, b"<html>not json{")
        if behaviour == "nocontent":
            return self._send(200, json.dumps({"choices": []}).encode())
        first, second = (block.splitlines()[0][2:] for block in re.findall(r"image:\n((?:- .*\n?)+)", prompt))
        text = f"Sure, here it is:\nThe first image shows {first}, while the second image shows {second}."
        with self.server.lock:
            self.server.completions += 1
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode())


@pytest.fixture
def server():
    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
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


def test_retries_recover_from_500_and_429_and_give_up_cleanly(server) -> None:
    writer = OpenAIWriter(_cfg(server.url), load_prompt("difference_v1"))
    markers = ["ok", "e500x2", "e429x3", "garbage", "nocontent", "always500"]
    gens = writer.write([_pair(m, k) for k, m in enumerate(markers)])
    expected = [f"The first image shows a cat {m}-{k}, while the second image shows a dog on a sofa." for k, m in
                enumerate(markers)]
    assert [g.text for g in gens[:3]] == expected[:3]  # 'Sure, here it is:' line cleaned away
    assert server.attempts["e500x2-1"] == 3 and server.attempts["e429x3-2"] == 4
    for k in (3, 4):  # never a completion: recorded as an error, not retried forever
        assert gens[k].text == "" and "malformed" in gens[k].error and not gens[k].deferred
        assert server.attempts[f"{markers[k]}-{k}"] == 4
    assert gens[5].deferred and "HTTP 503" in gens[5].error and server.attempts["always500-5"] == 4


def test_slow_replies_time_out_and_are_retried(server) -> None:
    writer = OpenAIWriter(_cfg(server.url, timeout_s=0.5), load_prompt("difference_v1"))
    gen = writer.write([_pair("slowx1", 0)])[0]
    assert gen.text.startswith("The first image shows a cat slowx1-0") and server.attempts["slowx1-0"] == 2
    gen = writer.write([_pair("slowx9", 1)])[0]  # slower than the timeout every time: deferred, not lost
    assert gen.deferred and gen.text == "" and server.attempts["slowx9-1"] == 4


def test_requests_in_flight_are_bounded(server) -> None:
    server.delay = 0.2
    writer = OpenAIWriter(_cfg(server.url, concurrency=3), load_prompt("difference_v1"))
    gens = writer.write([_pair("ok", k) for k in range(12)])
    assert all(f"cat ok-{k}," in g.text for k, g in enumerate(gens))  # answers come back in pair order
    assert 2 <= server.max_in_flight <= 3


def test_unreachable_server_and_refusals_have_clear_errors(server) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WriterUnavailable, match=rf"127\.0\.0\.1:{port}/v1.*vllm serve"):
        OpenAIWriter(_cfg(f"http://127.0.0.1:{port}/v1"), load_prompt("difference_v1"))
    with pytest.raises(RequestRejected, match="serves \\['tiny-llm'\\], not synthesis.llm='other'"):
        OpenAIWriter(_cfg(server.url, llm="other"), load_prompt("difference_v1"))
    writer = OpenAIWriter(_cfg(server.url), load_prompt("difference_v1"))
    with pytest.raises(RequestRejected, match="HTTP 400"):
        writer.write([_pair("ok", 0), _pair("bad400", 1)])
    with pytest.raises(ValueError, match="base_url"):
        OpenAIWriter(_cfg(""), load_prompt("difference_v1"))


def test_synthesize_survives_an_outage_and_resumes(server, monkeypatch) -> None:
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
    from pcclip.synthesis.writer import make_writer

    with pytest.raises(FileNotFoundError, match="prompts/difference_v9.txt"):
        load_prompt("difference_v9")
    with pytest.raises(ValueError, match="synthesis.writer 'gpt' must be one of"):
        make_writer(replace(load_profile("smoke").synthesis, writer="gpt"))
