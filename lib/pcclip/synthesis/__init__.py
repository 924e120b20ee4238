"""Difference data synthesis: pairs of captioned images -> descriptions of how the first
differs from the second, filtered and stored as JSONL for finetuning (paper step 2)."""
from .runner import differences_path, plan_pairs, synthesize
from .store import DifferencePairs, load_accepted, load_records

__all__ = ["DifferencePairs", "differences_path", "load_accepted", "load_records", "plan_pairs", "synthesize"]
