"""Keep secrets out of everything a run writes (manifest, metrics config, notebook parameters).

A value is replaced by REDACTED when its key names a secret (a word of the key, split at `.`,
`_`, `-` and camelCase, is or ends in key / token / secret / password / passwd / credential(s)),
or when it is a string that looks like a key (`sk-...`, `hf_...`); credentials in URLs
(`scheme://user:pass@host`) are cut to `scheme://REDACTED@host`. Numbers and booleans are never
secrets (`max_new_tokens` counts tokens). Keys ending in `_env` hold the NAME of an environment
variable (`api_key_env="OPENAI_API_KEY"`): kept when the value looks like one (upper case, digits
and `_`, with an `_` or at most 16 characters), redacted otherwise, since a key pasted there
instead of a name would leak.

The pipeline passes overrides to its notebooks redacted and the real values of the redacted ones
in $PCCLIP_SECRET_OVERRIDES, which `restore` puts back in the kernel.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from typing import Any, Iterator

REDACTED = "<redacted>"
SECRETS_ENV = "PCCLIP_SECRET_OVERRIDES"
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "credentials")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_KEY_LIKE = re.compile(r"^(sk|pk|rk|hf|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{8,}$")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def _value(key: str, value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return redact(value)
    if not isinstance(value, str) or not value:
        return value  # numbers, booleans, None and "" hold no secret
    if _KEY_LIKE.match(value):
        return REDACTED
    words = _words(key.rsplit(".", 1)[-1])
    if words[-1:] == ["env"]:
        return value if _ENV_NAME.match(value) and ("_" in value or len(value) <= 16) else REDACTED
    if any(w.endswith(_SECRET_WORDS) for w in words):
        return REDACTED
    return _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", value)


def redact(obj: Any) -> Any:
    """A copy of a JSON-like object (dicts, lists, scalars) with secrets replaced, as described above."""
    if isinstance(obj, dict):
        return {k: _value(str(k), v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_value("", v) for v in obj]
    return _value("", obj)


@contextlib.contextmanager
def secrets_for_children(overrides: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the overrides redacted; meanwhile the real values of the redacted ones are in
    $PCCLIP_SECRET_OVERRIDES for child processes (papermill kernels) to `restore`."""
    shown = redact(overrides)
    previous = os.environ.get(SECRETS_ENV)
    os.environ[SECRETS_ENV] = json.dumps({k: v for k, v in overrides.items() if shown[k] != v})
    try:
        yield shown
    finally:
        if previous is None:
            os.environ.pop(SECRETS_ENV, None)
        else:
            os.environ[SECRETS_ENV] = previous


def restore(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides with REDACTED values replaced from $PCCLIP_SECRET_OVERRIDES (set by the pipeline)."""
    secrets = json.loads(os.environ.get(SECRETS_ENV) or "{}")
    return {k: secrets[k] if k in secrets and isinstance(v, str) and REDACTED in v else v
            for k, v in overrides.items()}
