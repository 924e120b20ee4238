"""The one content fingerprint behind checkpoint, cache and state names: canonical where a value can come back
in another form (key order, tuple read back from JSON as a list, numpy scalar, Path), distinct where the content
differs, and refused where there are no stable bytes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pcclip.fingerprint import DIGITS, fingerprint


def test_the_same_content_in_another_form_gets_the_same_name():
    recipe = {"lr": 1e-3, "seeds": (0, 1, 2), "root": Path("/data"), "steps": np.int64(1000)}
    read_back = {"steps": 1000, "root": "/data", "seeds": [0, 1, 2], "lr": 0.001}  # as from JSON, keys reordered
    assert fingerprint(recipe) == fingerprint(read_back)
    assert len(fingerprint(recipe)) == DIGITS and int(fingerprint(recipe), 16) >= 0


@pytest.mark.parametrize("a, b", [
    (1, "1"), (1, 1.5), (True, 1), (None, "null"), ([1, 2], [2, 1]), ({"a": 1}, {"a": 2}), (b"ab", "ab"),
    (torch.zeros(2), torch.zeros(3)), (torch.zeros(2), torch.zeros(2, dtype=torch.float64)),
    (np.zeros((2, 3)), np.zeros((3, 2))), (torch.zeros(2), np.zeros(2, dtype=np.float32)),
])
def test_other_content_gets_another_name(a, b):
    assert fingerprint(a) != fingerprint(b)


def test_tensors_hash_their_bytes_wherever_they_live():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert fingerprint(t) == fingerprint(t.T.contiguous().T.contiguous()) == fingerprint(t.clone().requires_grad_())
    assert fingerprint(t) != fingerprint(t.T.contiguous())  # the transpose: the same numbers, another shape


@pytest.mark.parametrize("bad, match", [
    (np.array([{"a": 1}], dtype=object), "arrays of Python objects have no stable bytes; pass a list instead"),
    ({"f": lambda x: x}, "cannot hash a function; pass JSON values, tensors or arrays"),
    ({1, 2}, "cannot hash a set"),
])
def test_what_has_no_stable_bytes_is_refused_by_type(bad, match):
    with pytest.raises(TypeError, match=match):
        fingerprint(bad)
