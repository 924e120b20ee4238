"""A local OpenAI-compatible chat server that stands in for the paper's LLM in the rehearsal.

It reads the two caption blocks of the difference prompt (data/prompts/difference_v1.txt puts each
image's captions on '- ' lines, after its '- ' rules) and answers, as the LLM would, with one to three differences the
captions support, in DiffWorld's words (`synthesis.template.describe` over `caption_facts`). It also answers
pcclip's other prompts, deterministically per request seed: class comparatives (comparatives_v1: JSON naming
pairs of the listed classes), a class description (descriptions_v1: the 'Class:' line) and a rewritten caption
(rewrite_caption_v1: the 'Caption:' line).

    with chat_server() as server:               # 127.0.0.1, a free port, stopped on exit
        overrides = {"synthesis.base_url": server.url, "synthesis.llm": server.model}
    with serve_synthesis(profile.synthesis):    # at the profile's base_url (the rehearsal profile's)
        synthesize(profile, paths)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import numpy as np

from ..profiles import SynthesisConfig, serves_own_llm
from ..synthesis.facts import caption_facts
from ..synthesis.template import describe_facts

MODEL = "rehearsal-llm"
NO_DIFFERENCE = "The captions state no difference between the first image and the second image."


DESCRIPTIONS = ("A photo whose main subject is a {label}, shown clearly.",
                "An image of a {label} in its usual setting.", "A clear view of a {label} with its typical shape and colours.")
REWRITES = ("An image of {c}.", "A picture showing {c}.", "A photo of {c}.")


def item_blocks(prompt: str) -> list[list[str]]:
    """Every run of consecutive '- item' lines of a prompt, in order."""
    blocks: list[list[str]] = []
    previous = False
    for line in prompt.splitlines():
        item = line.startswith("- ")
        if item and not previous:
            blocks.append([])
        if item:
            blocks[-1].append(line[2:].strip())
        previous = item
    return blocks


def caption_blocks(prompt: str) -> tuple[list[str], list[str]]:
    """The last two runs of '- caption' lines of a prompt: the first and the second image's captions
    (the prompt's rules, also '- ' lines, come before them)."""
    blocks = item_blocks(prompt)
    if len(blocks) < 2:
        raise ValueError(f"the prompt holds {len(blocks)} caption block(s), not two ('- caption' lines)")
    return blocks[-2], blocks[-1]


def _field(prompt: str, label: str) -> str | None:
    """The text after `label` on the prompt's last line that starts with it."""
    found = [line[len(label):].strip() for line in prompt.splitlines() if line.startswith(label)]
    return found[-1] if found else None


def comparatives_reply(prompt: str, rng: np.random.Generator) -> str:
    """JSON naming the prompt's 'Choose the N pairs' count of distinct pairs of its listed classes."""
    blocks, count = item_blocks(prompt), re.search(r"Choose the (\d+) pairs", prompt)
    classes = blocks[-1] if blocks else []
    if count is None or len(classes) < 2:
        raise ValueError("a comparatives prompt needs 'Choose the N pairs' and at least two '- class' lines")
    pairs: list[tuple[str, str]] = []
    while len(pairs) < min(int(count.group(1)), len(classes) * (len(classes) - 1)):
        i, j = rng.choice(len(classes), 2, replace=False)
        if (classes[i], classes[j]) not in pairs:
            pairs.append((classes[i], classes[j]))
    return json.dumps({"comparatives": [{"first": a, "second": b, "text": f"The first image shows a {a}, while the "
                                         f"second image shows a {b}."} for a, b in pairs]})


def answer(prompt: str, seed: int) -> str:
    """The reply to one of pcclip's prompts (see the module docstring); for the difference prompt, how the first
    image differs from the second, as far as its captions tell."""
    rng = np.random.default_rng(seed)
    if '{"comparatives"' in prompt:
        return comparatives_reply(prompt, rng)
    if (label := _field(prompt, "Class: ")) is not None:
        return DESCRIPTIONS[rng.integers(len(DESCRIPTIONS))].format(label=label)
    if (caption := _field(prompt, "Caption: ")) is not None:
        c = caption.rstrip(". ")
        return REWRITES[rng.integers(len(REWRITES))].format(c=c[:1].lower() + c[1:])
    first, second = caption_blocks(prompt)
    text = describe_facts(caption_facts(first, second), rng, max_facts=3, max_words=40).text
    return text or NO_DIFFERENCE


def completion(model: str, text: str) -> dict:
    return {"id": f"chatcmpl-{hashlib.sha256(text.encode()).hexdigest()[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": len(text.split())}}


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog of 5 overflows when a writer opens `concurrency` connections at once:
    # the kernel drops the extra SYNs and the client resends them after 1 s (p99 latency 1.2 s at a 0.2 s
    # delay, 0.57 of the writer's ceiling). Real servers (vLLM's uvicorn: 2048) queue them.
    request_queue_size = 1024

    def __init__(self, model: str = MODEL, delay_s: float = 0.0, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.model, self.delay_s = model, delay_s
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM and OpenAI serve: every reply has a Content-Length
    disable_nagle_algorithm = True  # else a kept-alive reply's body waits ~40 ms for the ACK of its headers

    def log_message(self, *args) -> None:  # quiet: the writer reports what matters
        pass

    def _send(self, code: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, code: int, message: str) -> None:
        self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            return self._error(404, f"no route GET {self.path}")
        self._send(200, {"object": "list", "data": [{"id": self.server.model, "object": "model",
                                                     "owned_by": "pcclip-rehearsal"}]})

    def do_POST(self) -> None:
        start = time.monotonic()
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route POST {self.path}")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = body["messages"][-1]["content"]
            if body.get("model") != self.server.model:
                return self._error(404, f"model {body.get('model')!r} is not served; this server serves "
                                        f"{self.server.model!r}")
            seed = int(body.get("seed") or int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16))
            text = answer(prompt, seed)
        except (ValueError, KeyError, IndexError, TypeError) as err:
            return self._error(400, f"bad chat request: {err}")
        with self.server.lock:
            self.server.requests += 1
        time.sleep(max(0.0, self.server.delay_s - (time.monotonic() - start)))  # the answer's work counts in
        self._send(200, completion(self.server.model, text))


@contextlib.contextmanager
def chat_server(model: str = MODEL, delay_s: float = 0.0, port: int = 0) -> Iterator[ChatServer]:
    """Serve on 127.0.0.1 (`port`, 0: a free one) in a background thread for the `with` block; `delay_s`
    makes each completion take that long from its request's arrival (for throughput benchmarks of the writer)."""
    try:
        server = ChatServer(model, delay_s, port)
    except OSError as err:
        raise OSError(f"cannot serve the rehearsal LLM on 127.0.0.1:{port} ({err.strerror}): another process "
                      "holds the port; stop it or set synthesis.base_url to another port") from None
    thread = threading.Thread(target=server.serve_forever, name="rehearsal-chat-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve_synthesis(cfg: SynthesisConfig, delay_s: float = 0.0) -> contextlib.AbstractContextManager[ChatServer]:
    """`chat_server` at `cfg.base_url` (which must be http://127.0.0.1:<port>/v1) serving `cfg.llm`."""
    url = urllib.parse.urlsplit(cfg.base_url)
    if url.scheme != "http" or url.hostname != "127.0.0.1" or not url.port or url.path.rstrip("/") != "/v1":
        raise ValueError(f"synthesis.base_url={cfg.base_url!r}: the rehearsal LLM serves http://127.0.0.1:<port>/v1")
    return chat_server(cfg.llm, delay_s, url.port)


def rehearsal_llm(cfg: SynthesisConfig) -> contextlib.AbstractContextManager[ChatServer | None]:
    """The rehearsal's chat server when `cfg` asks the `openai` writer for the rehearsal LLM, else nothing
    to start: synthesis code wraps itself in this whatever the profile, and never branches on it."""
    if serves_own_llm(cfg):
        return serve_synthesis(cfg)
    return contextlib.nullcontext()
