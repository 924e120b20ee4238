"""Benchmark: an 11-point comparative-prompting alpha sweep against one zero-shot evaluation.

Targets (issue 5): with a warm embedding cache the sweep costs <= 1.2x one zero-shot evaluation
(both read the cached image embeddings and encode their prompts once), and it is >= 10x faster
than re-encoding the images for every alpha, as the authors' evaluation loop does.
Speed does not depend on the weights, so a seeded random diffclip-tiny stands in for a trained
model, on the DiffWorld test split at the diffworld profile's size.

    .venv/bin/python benchmarks/bench_comparative_sweep.py [--repeats 51]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pcclip.cache import array_source, embed_images
from pcclip.embeddings import normalize
from pcclip.evaluation.comparative import alpha_grid, comparative_classifier, comparative_sweep
from pcclip.evaluation.prompts import load_comparatives, load_templates
from pcclip.evaluation.zeroshot import (classification_metrics, confusion_matrix, predict, top_confusions,
                                        zero_shot_classifier)
from pcclip.models import load_clip
from pcclip.profiles import load_profile
from pcclip.world import SHAPES, build_split


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(repeats: int) -> None:
    torch.manual_seed(0)
    profile = load_profile("diffworld")
    bundle = load_clip(profile.model.model_name)
    split = build_split(profile.world, "test")
    labels, classes = split.records.shape, list(SHAPES)
    templates, comps = load_templates("diffworld"), load_comparatives("diffworld", classes)
    alphas = alpha_grid(11)
    source = array_source(bundle, split.images, split.key)
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))

    def cached() -> torch.Tensor:
        return embed_images(bundle, source, root, profile.cache, progress=False)

    def zero_shot() -> None:  # what notebook 04 reports per model: metrics and top confusions
        images, weights = cached(), zero_shot_classifier(bundle, classes, templates)
        classification_metrics(images, labels, weights, classes)
        top_confusions(confusion_matrix(predict(images, weights)[:, 0].numpy(), labels, len(classes)), classes)

    def sweep() -> None:
        comparative_sweep(bundle, cached(), labels, classes, templates, comps, alphas)

    def reencode_per_alpha() -> None:  # the authors' loop: images through the image tower for every alpha
        class_emb = zero_shot_classifier(bundle, classes, templates)
        comp_emb = normalize(bundle.encode_text([c.text for c in comps]))
        for alpha in alphas:
            with torch.inference_mode():
                images = bundle.model.encode_image(bundle.images_to_tensor(split.images)).float()
            classification_metrics(images, labels, comparative_classifier(class_emb, comp_emb, comps, alpha), classes)

    cached()  # warm the cache (and the code paths) before timing
    zero_shot(), sweep()
    zs, sw = [], []
    for _ in range(repeats):  # interleaved, so load from other processes hits both alike
        zs.append(timed(zero_shot))
        sw.append(timed(sweep))
    reencode = timed(reencode_per_alpha)
    t_zs, t_sw = statistics.median(zs), statistics.median(sw)
    print(f"images={len(labels)} classes={len(classes)} templates={len(templates)} comparatives={len(comps)} "
          f"alphas={len(alphas)} repeats={repeats} threads={torch.get_num_threads()}")
    print(f"zero-shot eval (warm cache):        {t_zs * 1e3:8.1f} ms (median)")
    print(f"11-point alpha sweep (warm cache):  {t_sw * 1e3:8.1f} ms (median)")
    print(f"re-encode images for every alpha:   {reencode * 1e3:8.1f} ms")
    print(f"sweep / zero-shot = {statistics.median(s / z for s, z in zip(sw, zs)):.2f}  (median of the per-repeat "
          "ratios; target <= 1.2)")
    print(f"re-encode / sweep = {reencode / t_sw:.1f}  (target >= 10)")
    at_one = comparative_sweep(bundle, cached(), labels, classes, templates, comps, [1.0]).acc1[0]
    plain = classification_metrics(cached(), labels, zero_shot_classifier(bundle, classes, templates), classes)
    print(f"alpha=1 sweep accuracy equals zero-shot accuracy: {bool(np.isclose(at_one, plain['acc1']))}")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51)
    main(parser.parse_args().repeats)
