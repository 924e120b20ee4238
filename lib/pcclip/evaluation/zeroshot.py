"""Zero-shot classification: class names x templates -> one normalised text vector per class."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..models import ClipBundle


def zero_shot_classifier(bundle: ClipBundle, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """(C, d) class weights: the mean of the normalised template embeddings, renormalised
    (the same recipe as open_clip.build_zero_shot_classifier)."""
    if not classnames or not templates:
        raise ValueError("zero-shot classification needs at least one class name and one template")
    texts = [t.format(c) if "{}" in t else t.format(c=c) for c in classnames for t in templates]
    emb = F.normalize(bundle.encode_text(texts), dim=-1).view(len(classnames), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def predict(image_emb: torch.Tensor, classifier: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(n, k) top-k class indices by cosine similarity."""
    if not torch.isfinite(image_emb).all():
        raise ValueError("image embeddings contain NaN or inf: rebuild the embedding cache")
    logits = F.normalize(image_emb.float(), dim=-1) @ classifier.T
    return logits.topk(min(k, classifier.shape[0]), dim=1).indices


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows are true classes, columns predictions."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(pred)), 1)
    return cm


def classification_metrics(image_emb: torch.Tensor, labels: np.ndarray, classifier: torch.Tensor,
                           classnames: list[str]) -> dict[str, float]:
    """Flat dict: acc1, acc5, mean_per_class, worst_class and acc/<class> for each class."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no labelled images to evaluate")
    top = predict(image_emb, classifier, k=5).numpy()
    hit1 = top[:, 0] == labels
    out = {"acc1": float(hit1.mean()), "acc5": float((top == labels[:, None]).any(1).mean())}
    per_class = {c: float(hit1[labels == i].mean()) for i, c in enumerate(classnames) if (labels == i).any()}
    out["mean_per_class"] = float(np.mean(list(per_class.values())))
    out["worst_class"] = float(min(per_class.values()))
    out.update({f"acc/{c}": v for c, v in per_class.items()})
    return out
