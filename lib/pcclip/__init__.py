"""pcclip: PC-CLIP (finetuning CLIP to reason about pairwise differences), reimplemented and extended."""
__version__ = "0.1.0"
