"""Peer cross-check: pcclip's zero-shot metrics equal clip_benchmark's on the same model, images, class names
and templates, to 1e-6.

clip_benchmark (`clip_benchmark.metrics.zeroshot_classification.evaluate`, pinned in the dev extra) builds the
classifier as we do (mean of the normalised template embeddings, renormalised), scores 100 x cosine (a positive
scale: the same ranking), counts top-k hits with `torch.topk` and takes mean per-class recall from sklearn's
`balanced_accuracy_score`. Where the two differ, and how this test meets it:
- templates: theirs are filled by `template.format(c=name)`, ours hold "{}"; "{}" -> "{c}" gives the same strings.
- precision: their default `amp=True` autocasts on the CPU too (bf16); our cache encodes fp32 there, so amp=False.
- acc5: theirs is NaN below 5 classes; ours counts min(5, C) guesses (1.0 by construction below 5). DiffWorld
  has 8 shapes, so both count 5.
- ties: ours go to the lower class index, theirs wherever argmax/topk put them; the logits here have none.
- NumPy: their `accuracy` calls float() on a 1-element array, which NumPy >= 2.4 refuses (open upstream:
  LAION-AI/CLIP_benchmark#147); inside their module only, float() takes that array's one value, as NumPy did.
- mean per-class recall: both average over the classes that have images; a class that is predicted but has no
  image is dropped by sklearn (with a warning) and never counted by us. The second case removes a class's images.
A random model sends every image to one class, which would make acc1 and mean per-class recall agree trivially;
the image features are centred through the projection bias so that predictions spread over the classes.
"""
from __future__ import annotations

import builtins
import dataclasses

import numpy as np
import pytest
import torch
from clip_benchmark.metrics import zeroshot_classification as clip_benchmark
from PIL import Image

from pcclip.cache import embed_split
from pcclip.evaluation.prompts import load_templates
from pcclip.evaluation.zeroshot import classification_metrics, predict, zero_shot_classifier
from pcclip.models import ClipBundle, load_clip, state_fingerprint
from pcclip.profiles import CacheConfig, WorldConfig
from pcclip.world import SHAPES, WorldSplit, build_split

CLASSES = list(SHAPES)
TEMPLATES = load_templates("diffworld")
PEER_TEMPLATES = [t.replace("{}", "{c}") for t in TEMPLATES]  # the same strings, in clip_benchmark's placeholder
SAME = {"acc1": "acc1", "acc5": "acc5", "mean_per_class": "mean_per_class_recall"}  # ours -> theirs


class ShapeImages(torch.utils.data.Dataset):
    """DiffWorld images as clip_benchmark reads a dataset: (preprocessed image, shape label) items and `classes`;
    `keep` selects the images (by index into the split)."""

    classes = CLASSES

    def __init__(self, split: WorldSplit, preprocess, keep: np.ndarray) -> None:
        self.split, self.preprocess, self.keep = split, preprocess, keep

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.keep[i])
        return self.preprocess(Image.fromarray(self.split.images[j])), int(self.split.records.shape[j])


@pytest.fixture(autouse=True)
def _scalar_float(monkeypatch: pytest.MonkeyPatch) -> None:
    """float() in clip_benchmark's module takes the value of a 1-element array (see the module docstring)."""
    def scalar(x=0.0):
        return builtins.float(x.item() if isinstance(x, np.ndarray) else x)
    monkeypatch.setattr(clip_benchmark, "float", scalar, raising=False)


@pytest.fixture(scope="module")
def split() -> WorldSplit:
    return build_split(WorldConfig(n_test=60), "test")


@pytest.fixture(scope="module")
def bundle(split) -> ClipBundle:
    """A seeded random diffclip-tiny whose image features are centred on these images (projection bias)."""
    torch.manual_seed(0)
    bundle = load_clip("diffclip-tiny")
    with torch.no_grad():
        mean = bundle.model.encode_image(bundle.images_to_tensor(split.images)).mean(0)
        bundle.model.visual.attnpool.c_proj.bias -= mean
    return dataclasses.replace(bundle, fingerprint=state_fingerprint(bundle.model_name, bundle.model.state_dict()))


@pytest.fixture(scope="module")
def image_emb(bundle, split, tmp_path_factory) -> torch.Tensor:
    """Our image embeddings, through the embedding cache as notebooks 03/04 read them."""
    return embed_split(bundle, split, tmp_path_factory.mktemp("cache"), CacheConfig(batch_size=32, shard_size=32),
                       progress=False)


def theirs(bundle: ClipBundle, split: WorldSplit, keep: np.ndarray) -> dict[str, float]:
    loader = torch.utils.data.DataLoader(ShapeImages(split, bundle.preprocess, keep), batch_size=16)
    return clip_benchmark.evaluate(bundle.model, loader, bundle.tokenizer, CLASSES, PEER_TEMPLATES, "cpu", amp=False)


def test_same_classifier(bundle):
    ours = zero_shot_classifier(bundle, CLASSES, TEMPLATES)
    their = clip_benchmark.zero_shot_classifier(bundle.model, bundle.tokenizer, CLASSES, PEER_TEMPLATES, "cpu",
                                                amp=False)
    torch.testing.assert_close(ours, their.T, atol=1e-6, rtol=0)


def test_same_metrics_on_every_image(bundle, split, image_emb):
    labels = split.records.shape
    classifier = zero_shot_classifier(bundle, CLASSES, TEMPLATES)
    ours = classification_metrics(image_emb, labels, classifier, CLASSES)
    top1 = predict(image_emb, classifier)[:, 0].numpy()
    assert len(np.unique(top1)) >= 4 and len(np.unique(labels)) == len(CLASSES)  # not a one-class model
    assert abs(ours["acc1"] - ours["mean_per_class"]) > 1e-3  # a swap of the two would fail
    their = theirs(bundle, split, np.arange(len(split)))
    for mine, peer in SAME.items():
        assert ours[mine] == pytest.approx(their[peer], abs=1e-6), mine


def test_same_metrics_with_a_class_left_out(bundle, split, image_emb):
    """The most predicted class loses its images but is still predicted for others: both leave it out of the
    mean per-class recall (sklearn warns that it was predicted without being a label)."""
    classifier = zero_shot_classifier(bundle, CLASSES, TEMPLATES)
    top1 = predict(image_emb, classifier)[:, 0].numpy()
    dropped = int(np.bincount(top1).argmax())
    keep = np.flatnonzero(split.records.shape != dropped)
    assert dropped in top1[keep]  # the case sklearn handles by dropping a column
    ours = classification_metrics(image_emb[keep], split.records.shape[keep], classifier, CLASSES)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        their = theirs(bundle, split, keep)
    for mine, peer in SAME.items():
        assert ours[mine] == pytest.approx(their[peer], abs=1e-6), mine
