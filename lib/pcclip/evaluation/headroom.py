"""How much any text-side classifier could gain: the reference points that explain a comparative-
prompting result.

Every zero-shot or comparative classifier is a set of class vectors scored against frozen image
embeddings, i.e. a linear classifier on them. So a linear probe fitted on labelled images of the
same tower bounds what re-weighting class vectors can reach, and the "oracle comparative" (the
exact image-space difference of the two class means, in place of the comparative's text
embedding) shows what the paper's formula does with a perfect comparative. If neither beats
zero-shot, the confusions sit in the image tower and no comparative text can remove them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..embeddings import normalize
from ..models import ClipBundle
from ..results import SHARED_MODEL
from .comparative import Comparative, alpha_sweep, comparative_classes, encode_prompts
from .zeroshot import check_labels, logits


def class_means(image_emb: torch.Tensor, labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """(C, d) mean of the normalised image embeddings of each class; a class without images fails."""
    labels = check_labels(np.asarray(labels), n_classes)
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no labelled images to average: use a larger fitting split")
    onehot = torch.from_numpy(np.eye(n_classes, dtype=np.float32)[labels])
    return (onehot.T @ normalize(image_emb.float())) / onehot.sum(0)[:, None]


def oracle_comparatives(image_emb: torch.Tensor, labels: np.ndarray, n_classes: int,
                        comparatives: list[Comparative]) -> torch.Tensor:
    """(K, d) normalize(mean_first - mean_second): what a perfect PC-CLIP would embed each comparative as."""
    means = class_means(image_emb, labels, n_classes)
    return normalize(torch.stack([means[c.first] - means[c.second] for c in comparatives]))


def linear_probe(image_emb: torch.Tensor, labels: np.ndarray, n_classes: int, l2: float = 1e-4,
                 scale: float = 10.0, iters: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights (C, d), bias (C,)) of multinomial logistic regression on the normalised embeddings,
    fitted with L-BFGS from zero (deterministic); logits = normalize(x) @ weights.T + bias. `scale`
    plays CLIP's logit scale during the fit so that `l2` acts on unit-scale class vectors."""
    labels = torch.as_tensor(check_labels(np.asarray(labels), n_classes))
    x = normalize(image_emb.float())
    w = torch.zeros(n_classes, x.shape[1], requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(scale * x @ w.T + b, labels) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return scale * w.detach(), b.detach()


def _accuracy(scores: torch.Tensor, labels: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    """(accuracy on all images, accuracy on the images of `classes` choosing among them only)."""
    full = float((scores.argmax(1).numpy() == labels).mean())
    keep = np.isin(labels, classes)
    sub = scores[torch.as_tensor(keep)][:, torch.as_tensor(classes)].argmax(1).numpy()
    return full, float((classes[sub] == labels[keep]).mean())


def headroom_table(models: dict[str, ClipBundle], fit_emb: torch.Tensor, fit_labels: np.ndarray,
                   image_emb: torch.Tensor, labels: np.ndarray, classnames: list[str], templates: list[str],
                   comparatives: list[Comparative], alpha: float) -> pd.DataFrame:
    """Rows (model, classifier, acc1, subset_acc1) on the test images: per model zero-shot, comparative
    prompting with the comparative texts and with oracle comparatives (both at `alpha`); then the
    model-independent references (model "any"): nearest class mean and the linear probe, both
    fitted on (fit_emb, fit_labels), labelled images that are not the test images."""
    labels = check_labels(np.asarray(labels), len(classnames))
    subset = comparative_classes(comparatives)
    oracle = oracle_comparatives(fit_emb, fit_labels, len(classnames), comparatives)
    rows = []
    for name, bundle in models.items():
        class_emb, comp_emb = encode_prompts(bundle, classnames, templates, comparatives)
        for kind, emb in (("comparative", comp_emb), ("oracle_comparative", oracle)):
            curve = alpha_sweep(image_emb, labels, class_emb, emb, comparatives, sorted({alpha, 1.0}))
            if kind == "comparative":
                zs = curve.loc[curve.alpha == 1.0].iloc[0]
                rows.append({"model": name, "classifier": "zero_shot", "acc1": zs.acc1, "subset_acc1": zs.subset_acc1})
            at = curve.loc[curve.alpha == alpha].iloc[0]
            rows.append({"model": name, "classifier": kind, "acc1": at.acc1, "subset_acc1": at.subset_acc1})
    means = normalize(class_means(fit_emb, fit_labels, len(classnames)))
    weights, bias = linear_probe(fit_emb, fit_labels, len(classnames))
    for kind, scores in (("class_means", logits(image_emb, means)),
                         ("linear_probe", logits(image_emb, weights) + bias)):
        acc1, sub = _accuracy(scores, labels, subset)
        rows.append({"model": SHARED_MODEL, "classifier": kind, "acc1": acc1, "subset_acc1": sub})
    return pd.DataFrame(rows)
