"""Comparative prompting (the paper's formula): known differences between classes refine the
zero-shot class vectors.

For a comparative ((i, j), text), where `text` says how class i looks different from class j,
PC-CLIP puts text(comparative) near t_i - t_j, so t_i - text(comparative) is another estimate
of class j. Each class averages its estimates m_j and gets w_j = normalize(alpha t_j + (1 - alpha) m_j);
classes without a comparative keep t_j, and alpha = 1 is plain zero-shot.

The sweep encodes every text once and reuses cached image embeddings: the logits of w_j(alpha)
are (alpha S_t + (1 - alpha) S_m) / |alpha t_j + (1 - alpha) m_j| with S_t, S_m computed once, so
each extra alpha costs an (n, C) elementwise operation instead of re-encoding the images. The
paper fixes alpha; `compare_models` also reports each model's alpha chosen on a validation split.

Beyond the paper: t_i - text subtracts a unit vector from a unit vector, although classes sit much
closer together than that, so m_j overshoots class j. The variants scale the text by s in
t_i - s * text: "scaled" takes s = `difference_scale` (the median distance between the class
vectors, no labels), "val_scaled" chooses s on a grid around it together with alpha on a validation
split (`select_alpha_scale`); `compare_variants` reports them beside the paper's formula (s = 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..embeddings import normalize
from ..models import ClipBundle
from .zeroshot import check_labels, class_texts, classifier_from_embeddings, confusion_matrix, logits, predict

# The variants that are the paper's formula itself (fixed alpha; alpha tuned on val): `compare_models`
# reports them already, as the comparative_* and tuned_* columns.
PAPER_VARIANTS = ("paper", "paper_tuned")


@dataclass(frozen=True)
class Comparative:
    """How class `first` (i) looks different from class `second` (j); j receives t_i - text."""

    first: int
    second: int
    text: str


def comparative_targets(class_emb: torch.Tensor, comp_emb: torch.Tensor, comparatives: list[Comparative],
                        scale: float = 1.0) -> torch.Tensor:
    """(C, d) m_j: the mean of t_i - scale * text over the comparatives that point at class j; t_j if none.
    scale = 1 is the paper's formula."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"the comparative scale must be a positive number, got {scale}")
    n_classes = class_emb.shape[0]
    if len(comparatives) != comp_emb.shape[0]:
        raise ValueError(f"{len(comparatives)} comparatives but {comp_emb.shape[0]} comparative embeddings")
    bad = [c for c in comparatives if not (0 <= c.first < n_classes and 0 <= c.second < n_classes)
           or c.first == c.second]
    if bad:
        raise ValueError(f"comparatives {bad} must join two different classes in [0, {n_classes})")
    sums = torch.zeros_like(class_emb)
    counts = torch.zeros(n_classes)
    for c, emb in zip(comparatives, comp_emb):
        sums[c.second] += class_emb[c.first] - scale * emb
        counts[c.second] += 1
    has = counts > 0
    return torch.where(has[:, None], sums / counts.clamp(min=1)[:, None], class_emb)


def difference_scale(class_emb: torch.Tensor) -> float:
    """The median norm of the pairwise differences of the class vectors: how far apart classes typically
    sit, from the class prompts alone (no labels), so the length a comparative text should have."""
    if class_emb.shape[0] < 2:
        raise ValueError(f"a difference scale needs at least 2 class vectors, got {class_emb.shape[0]}")
    scale = float(np.median(torch.pdist(class_emb.double()).numpy()))
    if scale == 0:
        raise ValueError("the class vectors coincide (median pairwise distance 0): their prompts embed alike, so "
                         "they give no scale for the comparatives; use the paper's formula (scale 1)")
    return scale


def _blended_norms(class_emb: torch.Tensor, targets: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """(A, C) |alpha t_j + (1 - alpha) m_j| for every alpha at once."""
    bad = [float(a) for a in alphas if not 0.0 <= float(a) <= 1.0]
    if bad:
        raise ValueError(f"alpha must lie in [0, 1], got {bad}")
    norms = (alphas[:, None, None] * class_emb + (1.0 - alphas[:, None, None]) * targets).norm(dim=2)
    zero = torch.nonzero(norms == 0)
    if len(zero):
        a, c = zero[0].tolist()
        raise ValueError(f"comparative blend at alpha={float(alphas[a])} is the zero vector for class {c}: a "
                         "comparative text embeds exactly like its class prompt; use a larger alpha")
    return norms


def comparative_classifier(class_emb: torch.Tensor, comp_emb: torch.Tensor, comparatives: list[Comparative],
                           alpha: float, scale: float = 1.0) -> torch.Tensor:
    """(C, d) w_j = normalize(alpha t_j + (1 - alpha) m_j) from normalised class and comparative embeddings."""
    targets = comparative_targets(class_emb, comp_emb, comparatives, scale)
    _blended_norms(class_emb, targets, torch.tensor([float(alpha)]))  # checks alpha and vanishing blends
    return normalize(alpha * class_emb + (1.0 - alpha) * targets)


def comparative_classes(comparatives: list[Comparative]) -> np.ndarray:
    """Sorted indices of the classes that appear in any comparative (the comparative subset)."""
    return np.array(sorted({c.first for c in comparatives} | {c.second for c in comparatives}), dtype=np.int64)


def _sweep_metrics(preds: np.ndarray, labels: np.ndarray, n_classes: int, prefix: str) -> dict[str, np.ndarray]:
    """acc1, mean_per_class and worst_class of every row of (A, n) predictions at once
    (classes without images are left out, as in `classification_metrics`)."""
    labels = check_labels(labels, n_classes)
    hits = (preds == labels).astype(np.float64)
    onehot = np.eye(n_classes)[labels]
    counts = onehot.sum(axis=0)
    present = counts > 0
    per_class = (hits @ onehot)[:, present] / counts[present]
    return {f"{prefix}acc1": hits.mean(axis=1), f"{prefix}mean_per_class": per_class.mean(axis=1),
            f"{prefix}worst_class": per_class.min(axis=1)}


def alpha_sweep(image_emb: torch.Tensor, labels: np.ndarray, class_emb: torch.Tensor, comp_emb: torch.Tensor,
                comparatives: list[Comparative], alphas: list[float], chunk: int = 2**24,
                subset: bool = True, scale: float = 1.0) -> pd.DataFrame:
    """Per alpha: acc1, mean_per_class, worst_class on all classes and, with `subset`, (subset_*) on
    the images of the comparative classes, classified among those classes only. Ties go to the lower
    class index. `scale` multiplies the comparative texts (`comparative_targets`).

    All alphas are scored together from the two logit matrices, `chunk` logits at a time."""
    labels = np.asarray(labels)
    targets = comparative_targets(class_emb, comp_emb, comparatives, scale)
    s_t, s_m = logits(image_emb, torch.cat([class_emb, targets])).split(class_emb.shape[0], dim=1)
    classes = comparative_classes(comparatives)
    if len(classes) < 2:
        raise ValueError("the comparatives join fewer than 2 classes: no comparative subset to evaluate")
    in_subset = np.isin(labels, classes)
    if subset and not in_subset.any():
        raise ValueError(f"none of the {len(labels)} images belongs to a comparative class {classes.tolist()}: "
                         "no comparative subset to evaluate (pass subset=False for all-class metrics only)")
    remap = np.full(class_emb.shape[0], -1)
    remap[classes] = np.arange(len(classes))
    weights = torch.tensor([float(a) for a in alphas])
    norms = _blended_norms(class_emb, targets, weights)
    preds, sub_preds = [], []
    rows, cols = torch.as_tensor(in_subset), torch.as_tensor(classes)
    step = max(1, chunk // s_t.numel())
    for k in range(0, len(weights), step):
        a = weights[k:k + step, None, None]
        scores = (a * s_t + (1.0 - a) * s_m) / norms[k:k + step, None, :]
        preds.append(scores.argmax(dim=2).numpy())
        if subset:
            sub_preds.append(scores[:, rows][:, :, cols].argmax(dim=2).numpy())
    out = {"alpha": np.asarray(alphas, dtype=np.float64),
           **_sweep_metrics(np.concatenate(preds), labels, class_emb.shape[0], "")}
    if subset:
        out.update(_sweep_metrics(np.concatenate(sub_preds), remap[labels[in_subset]], len(classes), "subset_"))
    return pd.DataFrame(out)


def encode_prompts(bundle: ClipBundle, classnames: list[str], templates: list[str],
                   comparatives: list[Comparative]) -> tuple[torch.Tensor, torch.Tensor]:
    """(zero-shot class weights, normalised comparative embeddings) from one pass of the text tower."""
    prompts = class_texts(classnames, templates)
    emb = bundle.encode_text(prompts + [c.text for c in comparatives])
    return classifier_from_embeddings(emb[:len(prompts)], len(classnames)), normalize(emb[len(prompts):])


def comparative_sweep(bundle: ClipBundle, image_emb: torch.Tensor, labels: np.ndarray, classnames: list[str],
                      templates: list[str], comparatives: list[Comparative], alphas: list[float]) -> pd.DataFrame:
    """`alpha_sweep` for one model: class prompts and comparatives are encoded once for all alphas."""
    class_emb, comp_emb = encode_prompts(bundle, classnames, templates, comparatives)
    return alpha_sweep(image_emb, labels, class_emb, comp_emb, comparatives, alphas)


def alpha_grid(steps: int, extra: tuple[float, ...] = ()) -> list[float]:
    """`steps` evenly spaced alphas on [0, 1] plus `extra` ones, rounded so 0.8 is exactly 0.8."""
    if steps < 2:
        raise ValueError(f"an alpha sweep needs at least 2 points, got alpha_steps={steps}")
    return sorted({round(float(a), 6) for a in np.linspace(0.0, 1.0, steps)} | {round(a, 6) for a in extra})


REPORTED = ("acc1", "worst_class", "subset_acc1", "subset_worst_class")  # per alpha, in the summary


def select_alpha(curve: pd.DataFrame, metric: str = "acc1") -> float:
    """The alpha with the best `metric` on a sweep; ties go to the largest alpha, the one nearest
    zero-shot, so a flat curve keeps the zero-shot classifier."""
    if curve.empty or curve[metric].isna().all():
        raise ValueError(f"no {metric} on the alpha sweep to select an alpha from: the sweep is empty")
    best = curve[metric].max()
    return float(curve.loc[curve[metric] == best, "alpha"].max())


def _grid(alphas: list[float], alpha: float) -> list[float]:
    """The sweep's alphas plus the fixed one and zero-shot (1.0), rounded as `alpha_grid` rounds."""
    return sorted({round(float(a), 6) for a in (*alphas, alpha, 1.0)})


def _val_alpha(val: tuple[torch.Tensor, np.ndarray], class_emb: torch.Tensor, comp_emb: torch.Tensor,
               comparatives: list[Comparative], grid: list[float]) -> float:
    """The paper formula's alpha of `grid` with the best acc1 on the validation images."""
    return select_alpha(alpha_sweep(*val, class_emb, comp_emb, comparatives, grid, subset=False))


def _summary(curve: pd.DataFrame, alpha: float, tuned: float | None) -> dict[str, float]:
    """Zero-shot (alpha = 1), comparative (alpha) and, when given, tuned (alpha chosen on a validation
    split) columns side by side from one sweep, each with its gain over zero-shot."""
    at = curve.set_index("alpha")
    out = {"alpha": float(alpha), **{f"zero_shot_{m}": float(at.loc[1.0, m]) for m in REPORTED}}
    for name, prefix, value in (("comparative", "", alpha), ("tuned", "tuned_", tuned)):
        if value is None:
            continue
        if prefix:
            out[f"{prefix}alpha"] = float(value)
        out.update({f"{name}_{m}": float(at.loc[round(value, 6), m]) for m in REPORTED})
        out.update({f"{prefix}gain_{m}": out[f"{name}_{m}"] - out[f"zero_shot_{m}"] for m in ("acc1", "subset_acc1")})
    return out


def compare_models(models: dict[str, ClipBundle], image_emb: torch.Tensor, labels: np.ndarray,
                   classnames: list[str], templates: list[str], comparatives: list[Comparative],
                   alphas: list[float], alpha: float,
                   val: tuple[torch.Tensor, np.ndarray] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Zero-shot vs comparative prompting for every model, from one encoding of its texts.

    The paper fixes alpha (`alpha`); with `val` (image embeddings, labels of a split disjoint from
    the test images) each model also gets the alpha of the grid that is best on val (`select_alpha`
    on acc1), reported as the tuned_* columns. Reading the best alpha off the test curve instead
    would tune on test.

    Returns (summary: one row per model, curves: one row per (model, alpha) on the test images,
    confusions: model -> (zero-shot, comparative) confusion matrices at `alpha`).
    """
    grid = _grid(alphas, alpha)
    summary, curves, confusions = [], [], {}
    for name, bundle in models.items():
        class_emb, comp_emb = encode_prompts(bundle, classnames, templates, comparatives)
        curve = alpha_sweep(image_emb, labels, class_emb, comp_emb, comparatives, grid)
        tuned = None if val is None else _val_alpha(val, class_emb, comp_emb, comparatives, grid)
        curves.append(curve.assign(model=name))
        summary.append({"model": name, **_summary(curve, alpha, tuned)})
        weights = {"zero_shot": class_emb, "comparative": comparative_classifier(class_emb, comp_emb, comparatives,
                                                                                 alpha)}
        confusions[name] = tuple(confusion_matrix(predict(image_emb, w)[:, 0].numpy(), labels, len(classnames))
                                 for w in weights.values())
    return pd.DataFrame(summary), pd.concat(curves, ignore_index=True), confusions


SCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # val_scaled's scales, in units of `difference_scale`


def select_alpha_scale(val_emb: torch.Tensor, val_labels: np.ndarray, class_emb: torch.Tensor,
                       comp_emb: torch.Tensor, comparatives: list[Comparative], alphas: list[float],
                       factors: tuple[float, ...] = SCALE_FACTORS) -> tuple[float, float]:
    """(alpha, scale) with the best acc1 on the validation images over `alphas` x difference_scale * `factors`.
    Ties go to the largest alpha (nearest zero-shot), then to the factor nearest 1 (the label-free scale)."""
    bad = [f for f in factors if not (math.isfinite(f) and f > 0)]
    if bad or not factors:
        raise ValueError(f"scale factors must be a non-empty list of positive numbers, got {list(factors)}")
    unit = difference_scale(class_emb)
    curves = pd.concat([alpha_sweep(val_emb, val_labels, class_emb, comp_emb, comparatives, alphas, subset=False,
                                    scale=unit * f).assign(factor=f) for f in factors], ignore_index=True)
    best = curves[curves.acc1 == curves.acc1.max()]
    best = best.assign(far=np.abs(np.log(best.factor))).sort_values(["alpha", "far"], ascending=[False, True])
    return float(best.alpha.iloc[0]), unit * float(best.factor.iloc[0])


def _variant_row(image_emb: torch.Tensor, labels: np.ndarray, class_emb: torch.Tensor, comp_emb: torch.Tensor,
                 comparatives: list[Comparative], alpha: float, scale: float) -> dict[str, float]:
    """REPORTED metrics at (alpha, scale) on the test images and their gains over zero-shot."""
    at = alpha_sweep(image_emb, labels, class_emb, comp_emb, comparatives, sorted({alpha, 1.0}),
                     scale=scale).set_index("alpha")
    row = {"alpha": alpha, "scale": scale, **{m: float(at.loc[alpha, m]) for m in REPORTED}}
    return {**row, **{f"gain_{m}": row[m] - float(at.loc[1.0, m]) for m in ("acc1", "subset_acc1")}}


def comparative_variants(image_emb: torch.Tensor, labels: np.ndarray, class_emb: torch.Tensor,
                         comp_emb: torch.Tensor, comparatives: list[Comparative], alphas: list[float], alpha: float,
                         val: tuple[torch.Tensor, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per variant (variant, alpha, scale, REPORTED metrics, gains over zero-shot) on the test images:
    "paper" (scale 1 at `alpha`), "scaled" (`difference_scale` at `alpha`, no labels) and, with `val`,
    "paper_tuned" (alpha chosen on val) and "val_scaled" (alpha and scale chosen on val,
    `select_alpha_scale`). Val only chooses; every number is scored on the test images."""
    grid = _grid(alphas, alpha)
    settings = {PAPER_VARIANTS[0]: (alpha, 1.0), "scaled": (alpha, difference_scale(class_emb))}
    if val is not None:
        settings[PAPER_VARIANTS[1]] = (_val_alpha(val, class_emb, comp_emb, comparatives, grid), 1.0)
        settings["val_scaled"] = select_alpha_scale(*val, class_emb, comp_emb, comparatives, grid)
    return pd.DataFrame([{"variant": name, **_variant_row(image_emb, labels, class_emb, comp_emb, comparatives, a, s)}
                         for name, (a, s) in settings.items()])


def compare_variants(models: dict[str, ClipBundle], image_emb: torch.Tensor, labels: np.ndarray,
                     classnames: list[str], templates: list[str], comparatives: list[Comparative],
                     alphas: list[float], alpha: float,
                     val: tuple[torch.Tensor, np.ndarray] | None = None) -> pd.DataFrame:
    """`comparative_variants` for every model (a `model` column), beside `compare_models`' paper columns."""
    parts = []
    for name, bundle in models.items():
        class_emb, comp_emb = encode_prompts(bundle, classnames, templates, comparatives)
        parts.append(comparative_variants(image_emb, labels, class_emb, comp_emb, comparatives, alphas, alpha, val)
                     .assign(model=name))
    table = pd.concat(parts, ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]]
