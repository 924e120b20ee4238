"""Secrets never reach what a run writes: manifest, metrics config, notebook parameters."""
from __future__ import annotations

import json

from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.redact import REDACTED, SECRETS_ENV, redact, restore, secrets_for_children
from pcclip.results import metric_rows, write_rows


def test_secret_keys_and_credentials_are_redacted_other_values_kept():
    config = {"api_key": "abc", "hf_token": "hf_x", "client_secret": "s", "db.password": "pw", "authToken": "t",
              "max_new_tokens": 96, "n_tokens": "96", "keyed": True, "empty_key": "",
              "base_url": "http://user:pa55@host:8000/v1", "plain_url": "http://localhost:8000/v1",
              "nested": {"OPENAI_API_KEY": "sk-live", "items": ["sk-proj-abcdefghijkl", "fine"]}}
    out = redact(config)
    assert out == {"api_key": REDACTED, "hf_token": REDACTED, "client_secret": REDACTED, "db.password": REDACTED,
                   "authToken": REDACTED, "max_new_tokens": 96, "n_tokens": "96", "keyed": True, "empty_key": "",
                   "base_url": f"http://{REDACTED}@host:8000/v1", "plain_url": "http://localhost:8000/v1",
                   "nested": {"OPENAI_API_KEY": REDACTED, "items": [REDACTED, "fine"]}}
    assert config["api_key"] == "abc"  # a copy; the input is untouched


def test_env_name_fields_keep_names_and_redact_keys_typed_there_by_mistake():
    keep = ["OPENAI_API_KEY", "HF_TOKEN", "MYKEY", ""]
    drop = ["sk-abc123def456", "AKIAIOSFODNN7EXAMPLE", "0123456789abcdef0123456789abcdef", "lower_case_key"]
    assert [redact({"synthesis.api_key_env": v})["synthesis.api_key_env"] for v in keep] == keep
    assert {redact({"api_key_env": v})["api_key_env"] for v in drop} == {REDACTED}


def test_metrics_config_is_redacted(tmp_path):
    profile = load_profile("smoke", {"synthesis.base_url": "https://bob:hunter2@llm.example/v1",
                                     "synthesis.api_key_env": "sk-abcdef1234567890"})
    paths = run_paths("smoke")
    paths.metrics.mkdir(parents=True)
    path = write_rows(paths, "x", metric_rows({"acc": 0.5}, ["acc"], task="t"), profile)
    text = path.read_text()
    assert "hunter2" not in text and "sk-abcdef" not in text
    synthesis = json.loads(text)["config"]["synthesis"]
    assert synthesis["base_url"] == f"https://{REDACTED}@llm.example/v1" and synthesis["api_key_env"] == REDACTED
    assert synthesis["max_new_tokens"] == 96 and json.loads(text)["rows"][0]["value"] == 0.5


def test_child_processes_get_the_real_values_back(monkeypatch):
    monkeypatch.delenv(SECRETS_ENV, raising=False)
    real = {"synthesis.base_url": "http://u:p@h/v1", "eval.seeds": "3"}
    with secrets_for_children(real) as shown:
        assert shown == {"synthesis.base_url": f"http://{REDACTED}@h/v1", "eval.seeds": "3"}
        assert restore(shown) == real
        assert load_profile("smoke", shown).synthesis.base_url == "http://u:p@h/v1"
    assert restore(shown) == shown  # outside a pipeline nothing is substituted
