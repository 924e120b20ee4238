"""Writer 'openai': any OpenAI-compatible chat-completions server (vLLM, `transformers serve`, llama.cpp, ollama).

This is how generation scales past one GPU: point `synthesis.base_url` at a vLLM
deployment. Requests run in a bounded thread pool (`concurrency` in flight), each under a
wall-clock deadline of `timeout_s` (a server that sends a byte now and then cannot hold
it longer). What a retry can fix (429, 5xx, timeouts, dropped connections, replies that
are not a completion, empty or cut off at `max_tokens`) is retried with exponential
backoff up to `retries`, then deferred: the pair stays unwritten and a rerun retries it.
A pair the server refuses with another 4xx (a prompt too long, a content policy) is
returned as an error, which the run stores as a rejection. A refused key (401, 403) or an
unknown model (404) stops the run; the replies already finished are handed back with it.
Only the standard library is used.
"""
from __future__ import annotations

import functools
import http.client
import io
import json
import os
import random
import socket
import threading
import time
import urllib.parse
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..profiles import SynthesisConfig
from .writer import BatchInterrupted, Generation, Prompt, WriterInput, WriterUnavailable, clean_generation

MAX_DELAY_S = 60.0
RETRYABLE = frozenset({408, 409, 425, 429})  # and every 5xx
FATAL = frozenset({401, 403, 404})  # about the key or the model, not the pair: no pair can succeed
_HELP = "README section 'Paper profile: difference data' shows how to start vLLM or `transformers serve`"


class RequestRejected(RuntimeError):
    """The server refused the run's settings (key, permission, model name): retrying cannot help."""


class _Transient(Exception):
    """A reply a retry may fix: not a completion, empty, or truncated."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def detail(self, n: int = 200) -> str:
        return self.body[:n].decode("utf-8", "replace")


def _content(raw: bytes) -> str:
    """The completion's text; raises _Transient for anything that is not a finished, non-empty reply."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Transient(f"reply is not JSON: {raw[:80]!r}") from None
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Transient(f"reply has no choices[0].message.content: {str(data)[:120]}") from None
    if not isinstance(content, str):
        raise _Transient(f"reply content is {type(content).__name__}, not text")
    if choice.get("finish_reason") == "length":
        raise _Transient("truncated reply (finish_reason 'length'): raise synthesis.max_new_tokens")
    if not content.strip():
        raise _Transient("empty reply")
    return content


def _retry_after(reply: Reply) -> float:
    try:
        return float(reply.headers.get("retry-after", 0))
    except (TypeError, ValueError):
        return 0.0


class _DeadlineReader(io.RawIOBase):
    """A socket read that gives each recv only the time left before `deadline`, so the whole reply
    (status line, headers, body) is bounded, not each read: a server trickling bytes cannot hold it."""

    def __init__(self, sock: socket.socket, deadline: float, held: io.IOBase) -> None:
        super().__init__()
        self.sock, self.deadline = sock, deadline
        self.held = held  # the response's own socket file: keeps the socket open until the reply is read

    def close(self) -> None:
        self.held.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline reached")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline, self.fp))


class _Connections:
    """Idle connections to the server, reused by the requests of one `write` (HTTP keep-alive): no TCP
    (or TLS) handshake per request, and no new handler thread on servers that start one per
    connection. Closed at the end of the batch, so nothing is left open between batches."""

    def __init__(self) -> None:
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            self.idle.append(conn)

    def close(self) -> None:
        with self.lock:
            for conn in self.idle:
                conn.close()
            self.idle.clear()


# A reused connection the server closed while idle fails at once with one of these; it is retried at
# once on a new connection (not counted as an attempt: no request reached the server).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class OpenAIWriter:
    name = "openai"

    def __init__(self, cfg: SynthesisConfig, prompt: Prompt) -> None:
        if not cfg.base_url or not cfg.llm:
            raise ValueError("synthesis.writer='openai' needs synthesis.base_url (e.g. http://localhost:8000/v1) "
                             f"and synthesis.llm (the served model name); {_HELP}")
        if cfg.concurrency < 1 or cfg.retries < 0 or cfg.timeout_s <= 0:
            raise ValueError("synthesis.concurrency must be >= 1, retries >= 0 and timeout_s > 0; got "
                             f"{cfg.concurrency}, {cfg.retries}, {cfg.timeout_s}")
        self.cfg, self.prompt = cfg, prompt
        self.model, self.prompt_version = cfg.llm, prompt.version
        self.url = cfg.base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"synthesis.base_url {cfg.base_url!r} must be an http(s) URL such as "
                             "http://localhost:8000/v1")
        self._parts = parts
        self.key = os.environ.get(cfg.api_key_env, "")
        self.served = self._served_models()

    def _request(self, path: str, body: dict[str, Any] | None, timeout: float,
                 pool: _Connections | None = None) -> Reply:
        """One HTTP exchange that ends within `timeout` seconds, whatever the server does; on a
        connection from `pool` when it has one, handed back to it when the server keeps it open."""
        conn = pool.take() if pool else None
        if conn is not None:
            try:
                return self._exchange(conn, path, body, timeout, pool)
            except _STALE:
                pass  # closed by the server while idle: the request never arrived
        kind = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return self._exchange(kind(self._parts.hostname, self._parts.port, timeout=timeout), path, body, timeout, pool)

    def _exchange(self, conn: http.client.HTTPConnection, path: str, body: dict[str, Any] | None, timeout: float,
                  pool: _Connections | None) -> Reply:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        conn.timeout = timeout
        if conn.sock is not None:  # a reused connection: the last reply's deadline is still on its socket
            conn.sock.settimeout(timeout)
        conn.response_class = functools.partial(_DeadlineResponse, deadline=time.monotonic() + timeout)
        keep = False
        try:
            conn.request("GET" if body is None else "POST", self._parts.path + path,
                         None if body is None else json.dumps(body).encode(), headers)
            resp = conn.getresponse()
            reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
            keep = pool is not None and not resp.will_close
            return reply
        except TimeoutError:
            raise TimeoutError(f"no complete reply within {timeout:g} s") from None
        finally:
            if keep:
                pool.give_back(conn)
            else:
                conn.close()

    def _served_models(self) -> list[str]:
        """Fail now, with what to do, if the server is down or refuses the key; the models it lists.

        The list only explains a later 404: servers that load models on demand (`transformers
        serve`, ollama) answer for models they do not list."""
        try:
            reply = self._request("/models", None, min(self.cfg.timeout_s, 10.0))
        except (OSError, http.client.HTTPException) as err:
            raise WriterUnavailable(f"cannot reach the OpenAI-compatible server at {self.url} ({err}); start "
                                    f"one (e.g. `vllm serve {self.cfg.llm} --port 8000`) or set "
                                    f"synthesis.base_url; {_HELP}") from None
        if reply.status in (401, 403):
            raise RequestRejected(self._refusal(reply))
        try:
            return [str(m["id"]) for m in json.loads(reply.body).get("data", [])]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
            return []  # some servers have no /models listing

    def _refusal(self, reply: Reply) -> str:
        if reply.status in (401, 403):
            return (f"server at {self.url} refused the API key (HTTP {reply.status}: {reply.detail(120)}); set "
                    f"${self.cfg.api_key_env} or synthesis.api_key_env")
        listed = f"; it serves {self.served}" if self.served else ""
        return (f"server at {self.url} answered HTTP {reply.status} for synthesis.llm={self.cfg.llm!r} "
                f"({reply.detail(120)}){listed}; check synthesis.llm and synthesis.base_url")

    def _delay(self, attempt: int, retry_after: float) -> float:
        backoff = self.cfg.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        return min(max(backoff, retry_after), MAX_DELAY_S)

    def _body(self, pair: WriterInput) -> dict[str, Any]:
        return {"model": self.cfg.llm, "messages": [{"role": "user", "content": self.prompt.format(pair)}],
                "max_tokens": self.cfg.max_new_tokens, "temperature": self.cfg.temperature,
                "top_p": self.cfg.top_p, "seed": int(np.random.SeedSequence(pair.seed).generate_state(1)[0])}

    def complete(self, pair: WriterInput, pool: _Connections | None = None) -> Generation:
        """One pair, with retries; raises RequestRejected when the server refuses the run's settings."""
        body, error, wait_s = self._body(pair), "", 0.0
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, wait_s))
            wait_s = 0.0
            try:
                reply = self._request("/chat/completions", body, self.cfg.timeout_s, pool)
                if reply.status == 200:
                    return Generation(text=clean_generation(_content(reply.body)))
            except _Transient as err:
                error = str(err)
                continue
            except (OSError, http.client.HTTPException) as err:
                error = f"{type(err).__name__}: {err}"
                continue
            if reply.status in FATAL:
                raise RequestRejected(self._refusal(reply))
            if reply.status not in RETRYABLE and reply.status < 500:  # this pair only: store the refusal
                return Generation(text="", error=f"HTTP {reply.status}: {reply.detail()}")
            error, wait_s = f"HTTP {reply.status}: {reply.detail(120)}", _retry_after(reply)
        return Generation(text="", error=f"{error} (after {self.cfg.retries + 1} attempts)", deferred=True)

    def write(self, batch: Sequence[WriterInput]) -> list[Generation]:
        """Every pair of `batch`, in order; on a refusal, raises BatchInterrupted with the finished ones."""
        if not batch:
            return []
        connections = _Connections()
        with ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(batch))) as pool:
            futures = [pool.submit(self.complete, pair, connections) for pair in batch]
            wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:  # a refusal holds for the pairs not started yet; those in flight finish
                future.cancel()
        connections.close()
        failures = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        if failures:
            raise BatchInterrupted([_result(f) for f in futures], failures[0])
        return [f.result() for f in futures]


def _result(future: Future) -> Generation | None:
    return None if future.cancelled() or future.exception() is not None else future.result()
