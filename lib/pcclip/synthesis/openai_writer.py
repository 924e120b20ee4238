"""Writer 'openai': any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, ollama).

This is how generation scales past one GPU: point `synthesis.base_url` at a vLLM
deployment. Requests run in a bounded thread pool (`concurrency` in flight); 429, 5xx,
timeouts, dropped connections and malformed replies are retried with exponential
backoff. What is still failing afterwards is either deferred (transient: the pair stays
unwritten so a rerun retries it) or, for replies that never parse, recorded as a
rejection. A server that cannot be reached fails at construction, before any work.
Only the standard library is used.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from ..profiles import SynthesisConfig
from .writer import Generation, PairInput, Prompt, WriterUnavailable, clean_generation

MAX_DELAY_S = 60.0
_HELP = "README section 'Paper profile: difference data' shows how to start vLLM"


class RequestRejected(RuntimeError):
    """The server refused a request for a reason retrying cannot fix (bad model name, auth, bad request)."""


class _Malformed(Exception):
    """The reply was not a chat completion (not JSON, or no choices[0].message.content)."""


def _content(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Malformed(f"reply is not JSON: {raw[:80]!r}") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Malformed(f"reply has no choices[0].message.content: {str(data)[:120]}") from None
    if not isinstance(content, str):
        raise _Malformed(f"reply content is {type(content).__name__}, not text")
    return content


def _retry_after(err: urllib.error.HTTPError) -> float:
    try:
        return float(err.headers.get("Retry-After", 0))
    except (TypeError, ValueError):
        return 0.0


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
        self.key = os.environ.get(cfg.api_key_env, "")
        self._check_server()

    def _request(self, path: str, body: dict[str, Any] | None, timeout: float) -> bytes:
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers=headers,
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()

    def _check_server(self) -> None:
        """Fail now, with what to do, if the server is down or does not serve `llm`."""
        try:
            raw = self._request("/models", None, min(self.cfg.timeout_s, 10.0))
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                raise RequestRejected(f"server at {self.url} refused the API key (HTTP {err.code}); set "
                                      f"${self.cfg.api_key_env}") from None
            return  # some servers have no /models listing; the first completion will tell
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise WriterUnavailable(f"cannot reach the OpenAI-compatible server at {self.url} ({reason}); start "
                                    f"one (e.g. `vllm serve {self.cfg.llm} --port 8000`) or set "
                                    f"synthesis.base_url; {_HELP}") from None
        try:
            served = [m["id"] for m in json.loads(raw).get("data", [])]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
            return
        if served and self.cfg.llm not in served:
            raise RequestRejected(f"server at {self.url} serves {served}, not synthesis.llm={self.cfg.llm!r}")

    def _delay(self, attempt: int, retry_after: float) -> float:
        backoff = self.cfg.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
        return min(max(backoff, retry_after), MAX_DELAY_S)

    def _body(self, pair: PairInput) -> dict[str, Any]:
        return {"model": self.cfg.llm, "messages": [{"role": "user", "content": self.prompt.format(pair)}],
                "max_tokens": self.cfg.max_new_tokens, "temperature": self.cfg.temperature,
                "top_p": self.cfg.top_p, "seed": int(np.random.SeedSequence(pair.seed).generate_state(1)[0])}

    def complete(self, pair: PairInput) -> Generation:
        """One pair, with retries; raises RequestRejected on a non-retryable HTTP status."""
        body, error, malformed, wait = self._body(pair), "", False, 0.0
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, wait))
            wait = 0.0
            try:
                return Generation(text=clean_generation(_content(self._request("/chat/completions", body,
                                                                               self.cfg.timeout_s))))
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode("utf-8", "replace")
                if err.code != 429 and err.code < 500:
                    raise RequestRejected(f"server at {self.url} rejected a request with HTTP {err.code}: {detail}; "
                                          "check synthesis.llm and the prompt") from None
                error, malformed, wait = f"HTTP {err.code}: {detail[:120]}", False, _retry_after(err)
            except _Malformed as err:
                error, malformed = f"malformed reply: {err}", True
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                error, malformed = f"{type(err).__name__}: {getattr(err, 'reason', err)}", False
        tries = f"after {self.cfg.retries + 1} attempts"
        if malformed:  # the server answers, but not with a completion: record it rather than loop on it
            return Generation(text="", error=f"{error} ({tries})")
        return Generation(text="", error=f"{error} ({tries})", deferred=True)

    def write(self, batch: Sequence[PairInput]) -> list[Generation]:
        if not batch:
            return []
        with ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(batch))) as pool:
            return list(pool.map(self.complete, batch))
