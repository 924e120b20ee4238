"""What a finetuning run reads, as plain tensors and lists, and its one-file form for torchrun."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import torch_save
from .fingerprint import fingerprint


@dataclass
class TrainData:
    """What a finetuning run reads, as plain tensors and lists (no files).

    Pairs: image `idx1[i]` differs from image `idx2[i]` as `texts[i]` says. Captions
    (for the caption baseline and the optional caption-loss term): `caption_texts[j]`
    describes image `caption_idx[j]`. All indices point into the rows of `image_emb`. Hard negatives
    (finetune.hard_negatives): `negatives[i]` are false descriptions of pair i (the synthesis store's
    `negatives` field: its role swap, its negation), possibly none.
    """

    image_emb: torch.Tensor  # (n_images, d) float32, unnormalised, from the frozen image tower
    idx1: torch.Tensor  # (n_pairs,) int64
    idx2: torch.Tensor  # (n_pairs,) int64
    texts: list[str]
    caption_idx: torch.Tensor | None = None  # (n_captions,) int64
    caption_texts: list[str] | None = None
    negatives: list[list[str]] | None = None

    def __post_init__(self) -> None:
        self.image_emb = torch.as_tensor(self.image_emb, dtype=torch.float32).contiguous()
        self.idx1, self.idx2 = (torch.as_tensor(i, dtype=torch.long) for i in (self.idx1, self.idx2))
        if self.caption_idx is not None:
            self.caption_idx = torch.as_tensor(self.caption_idx, dtype=torch.long)
        n = len(self.image_emb)
        if not (len(self.idx1) == len(self.idx2) == len(self.texts)):
            raise ValueError(f"TrainData: idx1, idx2 and texts must have one entry per pair; got "
                             f"{len(self.idx1)}, {len(self.idx2)}, {len(self.texts)}")
        if (self.caption_idx is None) != (self.caption_texts is None) or (
                self.caption_idx is not None and len(self.caption_idx) != len(self.caption_texts)):
            raise ValueError("TrainData: caption_idx and caption_texts go together, one index per caption")
        if self.negatives is not None and (len(self.negatives) != len(self.texts) or not all(
                isinstance(n, list) and all(isinstance(t, str) for t in n) for n in self.negatives)):
            raise ValueError(f"TrainData.negatives must hold one list of strings per pair ({len(self.texts)}); got "
                             f"{len(self.negatives)} entries")
        for name in ("idx1", "idx2", "caption_idx"):
            idx = getattr(self, name)
            if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"TrainData.{name} holds indices outside [0, {n}) (the image embeddings): the "
                                 "pairs were built for another image set; rebuild them for this split")

    def key(self) -> str:
        """A content fingerprint: a checkpoint trained on other data is never reused. Negatives count only
        when present, so data without them keeps the key it had before they existed."""
        negatives = [] if self.negatives is None else ["\x1e".join("\x1f".join(n) for n in self.negatives)]
        return fingerprint([self.image_emb, self.idx1, self.idx2, self.caption_idx,
                            "\x1f".join(self.texts), "\x1f".join(self.caption_texts or []), *negatives])


def save_data(data: TrainData, path: Path) -> None:
    """One file with everything a run reads, for `python -m pcclip.distributed --data FILE`."""
    torch_save({k: getattr(data, k) for k in TrainData.__dataclass_fields__}, path)


def load_data(path: Path) -> TrainData:
    try:
        return TrainData(**torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, TypeError) as exc:
        raise ValueError(f"training data file {path} is not one written by pcclip.traindata.save_data "
                         f"({type(exc).__name__}: {exc})") from None
