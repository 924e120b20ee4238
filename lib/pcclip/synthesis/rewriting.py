"""The paper's second baseline's data: image captions rewritten by the LLM writer (finetune.rewritten_captions).

Every caption the difference writer sees (synthesis.captions_per_image per image) of every image the
difference pairs draw from is rewritten with data/prompts/rewrite_caption_v1.txt, one request each, and
stored like the difference data (`store.DifferenceStore`): one JSON line per caption in
results/<profile>/data/rewritten_captions.jsonl, resumable, with a sidecar naming the settings that wrote it.
Notebook 02 trains the caption baseline's objective on them as the "rewritten_ft" run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..paths import RunPaths
from ..profiles import SynthesisConfig
from .pairs import PairPlan
from .batches import write_batch
from .registry import make_writer
from .sources import ImageSource
from .store import DifferenceStore, load_records
from .writer import Generation, TextRequest, Writer

REWRITE_PROMPT = "rewrite_caption_v1"
EMPTY = "empty"  # a rejection: the writer answered nothing usable


def rewritten_path(paths: RunPaths) -> Path:
    return paths.data / "rewritten_captions.jsonl"


def caption_requests(plan: PairPlan, source: ImageSource, seed: int) -> list[tuple[int, TextRequest]]:
    """(image row, request) for every caption of the images the pairs use, in row order; a request's id
    is '<image id>-c<caption number>', stable across reruns."""
    rows = np.unique(np.concatenate([plan.idx1, plan.idx2])).tolist()
    return [(r, TextRequest(f"{int(source.image_ids[r])}-c{k}", (("caption", c),), (seed, r, k)))
            for r in rows for k, c in enumerate(source.captions[r])]


def _record(k: int, row: int, request: TextRequest, gen: Generation, writer: Writer) -> dict[str, Any]:
    text = gen.text.strip()
    return {"pair_id": request.request_id, "index": k, "idx1": row, "caption": request.prompt_slots()["caption"],
            "text": text, "accepted": bool(text) and not gen.error, "reason": gen.error or ("" if text else EMPTY),
            "writer": writer.name, "model": writer.model, "prompt_version": writer.prompt_version}


def rewrite_captions(cfg: SynthesisConfig, path: Path, meta: dict[str, Any], plan: PairPlan,
                     source: ImageSource) -> int:
    """Write (or resume) the rewritten captions of `plan`'s images into `path`; returns how many requests are
    still missing (deferred by the writer after transient errors: a rerun retries them)."""
    if cfg.writer == "template":
        raise ValueError("finetune.rewritten_captions needs an LLM to rewrite captions: set synthesis.writer to "
                         "'openai' or 'hf' with synthesis.llm, or finetune.rewritten_captions=false")
    todo = caption_requests(plan, source, cfg.seed)
    with DifferenceStore(path, {**meta, "prompt": REWRITE_PROMPT}) as store:
        pending = [(k, row, req) for k, (row, req) in enumerate(todo) if req.request_id not in store.finished]
        writer = make_writer(cfg, REWRITE_PROMPT, ("caption",)) if pending else None
        for start in range(0, len(pending), cfg.batch_size):
            chunk = pending[start:start + cfg.batch_size]
            write_batch(writer, [req for _, _, req in chunk], store,
                        lambda i, gen: store.append(_record(chunk[i][0], chunk[i][1], chunk[i][2], gen, writer)),
                        noun="caption")
        return sum(req.request_id not in store.finished for _, req in todo)


def load_rewritten(path: Path) -> tuple[np.ndarray, list[str]]:
    """(image rows, rewritten captions) of the accepted records, in request order."""
    if not path.is_file():
        raise FileNotFoundError(f"rewritten captions {path} not found: with finetune.rewritten_captions=true, "
                                "rerun notebooks/01_data_synthesis.ipynb, which writes them")
    kept = [r for r in load_records(path) if r["accepted"]]
    if not kept:
        raise ValueError(f"{path} holds no accepted rewritten caption: rerun notebook 01 (its records' 'reason' "
                         "says why each was rejected)")
    return np.array([r["idx1"] for r in kept], dtype=np.int64), [r["text"] for r in kept]
