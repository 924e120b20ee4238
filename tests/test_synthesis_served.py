"""The 'openai' writer against a server no one here wrote: `transformers serve` on 127.0.0.1.

Two tiny Llamas (2 layers, width 64) are built in a temporary folder with a 400-token BPE
tokenizer trained on DiffWorld captions and a plain chat template, and served offline. The
server names a model by what `from_pretrained` loads, so `synthesis.llm` is the folder path.
- `stops`: samples, and every word token ends a reply, so replies finish ('stop') after a
  few tokens. They are gibberish: each pair must be stored, rejected by the filter with a reason.
- `rambles`: greedy, and its end-of-text token can never win, so every reply runs to
  `max_tokens` and comes back with finish_reason 'length': truncated, never stored.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import load_records, synthesize
from pcclip.synthesis.filtering import REASONS
from pcclip.synthesis.sources import image_source
from pcclip.synthesis.writer import WriterUnavailable

transformers = pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

pytestmark = pytest.mark.slow  # the server takes 5-10 s to start

CHAT = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}")
SPECIAL = ["<unk>", "<s>", "</s>"]
START_S = 180.0  # the first start imports torch and fastapi on a loaded machine


def _tokenizer(captions: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(captions, trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL,
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")
    fast.chat_template = CHAT
    return fast


def _save_llama(folder: Path, tokenizer, stops: bool) -> str:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eos = tokenizer.convert_tokens_to_ids("</s>")
    words = [i for t, i in tokenizer.get_vocab().items() if tokenizer.decode([i]).strip().isalpha()]
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if stops:
        model.generation_config = GenerationConfig(do_sample=True, eos_token_id=[eos, *words], pad_token_id=eos)
    else:
        with torch.no_grad():  # a zero logit loses to the largest of 399 random ones: never the end
            model.lm_head.weight[eos] = 0.0
        model.generation_config = GenerationConfig(do_sample=False, eos_token_id=eos, pad_token_id=eos)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    source = image_source(load_profile("smoke"))
    tokenizer = _tokenizer([c for captions in source.captions[:300] for c in captions])
    return {kind: _save_llama(tmp_path_factory.mktemp(kind), tokenizer, kind == "stops")
            for kind in ("stops", "rambles")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def completions(self) -> int:
        """Chat completions the server has answered so far (from its access log)."""
        return self.log.read_text(errors="replace").count("POST /v1/chat/completions")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`transformers serve` offline on a free port; stopped at the end whatever happens."""
    home, port = tmp_path_factory.mktemp("hf_home"), _free_port()
    log = home / "serve.log"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "OMP_NUM_THREADS": "1",
                        "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    cli = Path(sys.executable).with_name("transformers")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(proc, port, log)
        yield Served(f"http://127.0.0.1:{port}/v1", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _wait_healthy(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"transformers serve did not answer within {START_S:.0f} s:\n{log.read_text()[-2000:]}")


def _profile(url: str, llm: str, **more):
    return load_profile("smoke", {"synthesis.writer": "openai", "synthesis.base_url": url, "synthesis.llm": llm,
                                  "synthesis.n_pairs": 8, "synthesis.batch_size": 4, "synthesis.concurrency": 2,
                                  "synthesis.retries": 1, "synthesis.backoff_s": 0.01, "synthesis.timeout_s": 60.0,
                                  **more})


def test_every_pair_gets_one_record_with_a_reason_and_a_rerun_asks_nothing(server, models) -> None:
    profile, paths = _profile(server.url, models["stops"]), run_paths("smoke")
    path = synthesize(profile, paths, progress=False)
    records = load_records(path)
    assert [r["index"] for r in records] == list(range(8))  # one each, no duplicates (load_records checks)
    for r in records:  # random weights: the filter rejects each reply, naming a text rule, not a writer error
        assert r["text"] and r["error"] == "" and r["model"] == models["stops"]
        assert r["accepted"] or r["reason"] in REASONS, r
    asked = server.completions()
    assert asked == 8  # no retries: every reply was a finished completion
    synthesize(profile, paths, progress=False)
    assert server.completions() == asked


def test_a_reply_cut_at_max_tokens_is_truncated_not_stored(server, models) -> None:
    profile, paths = _profile(server.url, models["rambles"], **{"synthesis.max_new_tokens": 4}), run_paths("smoke")
    before = server.completions()
    with pytest.raises(WriterUnavailable, match=r"failed on every pair of a batch \(truncated reply"):
        synthesize(profile, paths, progress=False)
    path = paths.data / "differences.jsonl"
    assert not path.exists() or load_records(path) == []
    assert server.completions() - before == 4 * 2  # the first batch, each pair tried retries + 1 times


def test_a_model_the_server_cannot_load_stops_the_run_naming_it(server, tmp_path) -> None:
    missing = str(tmp_path / "no-such-model")  # transformers serve answers 500 (vLLM would answer 404)
    profile, paths = _profile(server.url, missing), run_paths("smoke")
    with pytest.raises(WriterUnavailable, match=rf"HTTP 500.*synthesis.llm='{missing}'"):
        synthesize(profile, paths, progress=False)
    path = paths.data / "differences.jsonl"
    assert not path.exists() or load_records(path) == []
