"""Zero-shot classification: class names x templates -> one normalised text vector per class.

Ties in the logits go to the lower class index everywhere (top-1 and top-k), so metrics are
deterministic; the top confusions and the worst class say where a model fails, not just how often.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..models import ClipBundle

SUMMARY_METRICS = ("acc1", "acc5", "mean_per_class", "worst_class")  # what tables and metric rows report
EXTENDED_TEMPLATE = "This is a photo of a {label}. {description}"  # the paper's extended descriptions


def class_texts(classnames: list[str], templates: list[str]) -> list[str]:
    """Every template filled with every class name, class-major (C * T strings)."""
    if not classnames or not templates:
        raise ValueError("zero-shot classification needs at least one class name and one template")
    return [t.format(c) if "{}" in t else t.format(c=c) for c in classnames for t in templates]


def classifier_from_embeddings(text_emb: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, d) from the (C * T, d) embeddings of `class_texts`: mean of the normalised templates, renormalised."""
    emb = F.normalize(text_emb.float(), dim=-1).view(n_classes, text_emb.shape[0] // n_classes, -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


def zero_shot_classifier(bundle: ClipBundle, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """(C, d) class weights: the mean of the normalised template embeddings, renormalised
    (the same recipe as open_clip.build_zero_shot_classifier)."""
    return classifier_from_embeddings(bundle.encode_text(class_texts(classnames, templates)), len(classnames))


def described_classifier(bundle: ClipBundle, classnames: list[str], descriptions: dict[str, str],
                         template: str = EXTENDED_TEMPLATE) -> torch.Tensor:
    """(C, d) weights from one prompt per class that adds a description of the class."""
    missing = [c for c in classnames if c not in descriptions]
    if missing:
        raise KeyError(f"no description for class(es) {missing}; the descriptions file must cover every class")
    texts = [template.format(label=c, description=descriptions[c]) for c in classnames]
    return F.normalize(bundle.encode_text(texts), dim=-1)


def logits(image_emb: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """(n, C) cosine similarities of the normalised images with the class weights."""
    if not torch.isfinite(image_emb).all():
        raise ValueError("image embeddings contain NaN or inf: rebuild the embedding cache")
    if not torch.isfinite(classifier).all():
        raise ValueError("classifier weights contain NaN or inf: check the text model or the prompts")
    return F.normalize(image_emb.float(), dim=-1) @ classifier.T


def predict(image_emb: torch.Tensor, classifier: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(n, k) top-k class indices by cosine similarity; ties go to the lower class index."""
    order = torch.sort(logits(image_emb, classifier), dim=1, descending=True, stable=True).indices
    return order[:, :min(k, classifier.shape[0])]


def check_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """`labels` as an array, after checking there are some, at least 2 classes and no label out of range."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("no labelled images to evaluate")
    if n_classes < 2:
        raise ValueError(f"classification needs at least 2 classes, got {n_classes}: accuracy would be trivially 1")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{labels.min()}, {labels.max()}]")
    return labels


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows are true classes, columns predictions."""
    labels = check_labels(labels, n_classes)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels, np.asarray(pred)), 1)
    return cm


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(C,) top-1 accuracy of each class; NaN for a class with no images."""
    labels = check_labels(labels, n_classes)
    hits = np.bincount(labels, weights=(np.asarray(pred) == labels).astype(np.float64), minlength=n_classes)
    counts = np.bincount(labels, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / counts, np.nan)


def classification_metrics(image_emb: torch.Tensor, labels: np.ndarray, classifier: torch.Tensor,
                           classnames: list[str]) -> dict[str, float | str]:
    """Flat dict: acc1, acc5, mean_per_class, worst_class (+ its name) and acc/<class> per class.

    acc5 uses min(5, C) guesses; classes without images are left out of the per-class figures.
    """
    if len(classnames) != classifier.shape[0]:
        raise ValueError(f"{len(classnames)} class names but the classifier has {classifier.shape[0]} rows")
    labels = check_labels(labels, len(classnames))
    top = predict(image_emb, classifier, k=5).numpy()
    per_class = per_class_accuracy(top[:, 0], labels, len(classnames))
    present = np.flatnonzero(~np.isnan(per_class))
    worst = present[np.argmin(per_class[present])]
    out: dict[str, float | str] = {
        "acc1": float((top[:, 0] == labels).mean()), "acc5": float((top == labels[:, None]).any(1).mean()),
        "mean_per_class": float(per_class[present].mean()), "worst_class": float(per_class[worst]),
        "worst_class_name": classnames[worst]}
    out.update({f"acc/{classnames[i]}": float(per_class[i]) for i in present})
    return out


def top_confusions(cm: np.ndarray, classnames: list[str], k: int = 3) -> pd.DataFrame:
    """The k largest off-diagonal cells: true class, predicted class, count and share of the true class.

    Equal counts are ordered by (true, predicted) index; cells with no errors are not listed.
    """
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classnames):
        raise ValueError(f"confusion matrix {cm.shape} must be square with {len(classnames)} classes")
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off.ravel(), kind="stable")[:k]
    rows = []
    for cell in flat:
        true, pred = divmod(int(cell), cm.shape[0])
        if off[true, pred] > 0:
            rows.append({"true": classnames[true], "predicted": classnames[pred], "count": int(off[true, pred]),
                         "rate": float(off[true, pred] / cm[true].sum())})
    return pd.DataFrame(rows, columns=["true", "predicted", "count", "rate"])


def zero_shot_table(models: dict[str, ClipBundle], image_emb: torch.Tensor, labels: np.ndarray,
                    classnames: list[str], templates: list[str],
                    descriptions: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """`classification_metrics` per model (one row each) and its top-1 predictions; with
    `descriptions`, the classifier is the extended one ("This is a photo of a {label}. {description}")."""
    rows, predictions = [], {}
    for name, bundle in models.items():
        weights = (described_classifier(bundle, classnames, descriptions) if descriptions is not None
                   else zero_shot_classifier(bundle, classnames, templates))
        rows.append({"model": name, **classification_metrics(image_emb, labels, weights, classnames)})
        predictions[name] = predict(image_emb, weights)[:, 0].numpy()
    return pd.DataFrame(rows), predictions
