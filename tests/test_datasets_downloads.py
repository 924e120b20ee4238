"""data.download: torchvision fetches what it can, into our layout; the rest, and offline machines, fail
in seconds naming URL and layout. Never touches the internet: servers are local or unreachable."""
from __future__ import annotations

import inspect
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from pcclip.dataset_layouts import LAYOUTS
from pcclip.datasets import DATASETS, DatasetNotFound, downloads
from pcclip.evaluation import tasks
from pcclip.profiles import load_profile

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def recorder(monkeypatch):
    """torchvision's CIFAR-10 replaced by a recorder that unpacks an empty folder where it would."""
    calls = []

    def fake_cifar10(root, download=False):
        calls.append((root, download))
        (Path(root) / "cifar-10-batches-py").mkdir(parents=True)

    monkeypatch.setitem(downloads.TORCHVISION, "cifar10", fake_cifar10)
    monkeypatch.setitem(LAYOUTS, "cifar10", replace(LAYOUTS["cifar10"], server="http://server"))
    return calls


def test_torchvision_dataset_is_fetched_into_our_layout(recorder, monkeypatch, tmp_path):
    monkeypatch.setattr(downloads, "unreachable", lambda url: None)
    downloads.fetch_dataset("cifar10", tmp_path)
    assert recorder == [(str(tmp_path), True)]
    downloads.fetch_dataset("cifar10", tmp_path)  # present now: not fetched again
    assert len(recorder) == 1


def test_offline_fetch_fails_in_seconds_naming_url_and_layout(recorder, monkeypatch, tmp_path):
    monkeypatch.setitem(LAYOUTS, "cifar10", replace(LAYOUTS["cifar10"], server=UNREACHABLE))
    t0 = time.perf_counter()
    with pytest.raises(DatasetNotFound, match=f"(?s)CIFAR-10 .*no answer from {UNREACHABLE}.*"
                                              r"cifar-10-batches-py/\{data_batch_1.*kriz/cifar.html"):
        downloads.fetch_dataset("cifar10", tmp_path)
    assert time.perf_counter() - t0 < 5 and recorder == []


@pytest.mark.parametrize("name", sorted(set(DATASETS) - set(downloads.TORCHVISION)))
def test_hand_fetched_datasets_name_url_and_layout(name, tmp_path):
    spec = DATASETS[name]
    with pytest.raises(DatasetNotFound) as err:
        downloads.fetch_dataset(name, tmp_path)
    message = str(err.value)
    assert "cannot be downloaded automatically" in message and spec.url in message and spec.layout in message
    assert set(downloads.TORCHVISION) == {"cifar10", "cifar100", "flowers102", "food101", "eurosat", "dtd",
                                          "oxford_pet"}


@pytest.mark.parametrize("download", [False, True])
def test_evaluation_fetches_only_when_the_profile_says_so(download, monkeypatch, tmp_path):
    fetched = []
    monkeypatch.setattr(tasks, "fetch_dataset", lambda name, root: fetched.append((name, root)))
    monkeypatch.setattr(tasks, "load_dataset", lambda name, root, split, transform, scheme, split_seed:
                        (name, split, transform))
    profile = load_profile("paper", {"data_root": str(tmp_path), "data.download": download})
    base = SimpleNamespace(preprocess="preprocess")
    assert tasks._load(profile, "dtd", "val", base) == ("dtd", "val", "preprocess")
    assert fetched == ([("dtd", str(tmp_path))] if download else [])


def test_download_servers_are_torchvision_s_own():
    """The preflight probes LAYOUTS[name].server without importing torchvision: it must be the server
    torchvision's download reads from, and set exactly for the datasets torchvision fetches."""
    tv = downloads.TORCHVISION
    assert {n for n, layout in LAYOUTS.items() if layout.server} == set(tv)
    assert LAYOUTS["cifar10"].server == tv["cifar10"].url and LAYOUTS["cifar100"].server == tv["cifar100"].url
    assert LAYOUTS["flowers102"].server == tv["flowers102"]._download_url_prefix
    assert LAYOUTS["food101"].server == tv["food101"]._URL and LAYOUTS["dtd"].server == tv["dtd"]._URL
    assert LAYOUTS["oxford_pet"].server == tv["oxford_pet"]._RESOURCES[0][0]
    assert f'"{LAYOUTS["eurosat"].server}/' in inspect.getsource(tv["eurosat"].download)  # inline in torchvision
