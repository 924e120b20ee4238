"""One batch of writer requests into a store: the step both synthesis stores share (the difference pairs of
`runner`, the rewritten captions of `rewriting`).

What finished is stored before anything is raised, so a crash or an interrupt loses only unfinished
requests; a batch in which every request failed the same way means the backend or a setting is wrong, not
the requests, so it stops the run instead of recording one rejection per request.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .store import DifferenceStore
from .writer import BatchInterrupted, Generation, Writer, WriterUnavailable


def write_batch(writer: Writer, requests: Sequence, store: DifferenceStore, keep: Callable[[int, Generation], None],
                noun: str = "pair") -> list[Generation]:
    """Write `requests`; `keep(i, generation)` stores each finished one in request order (deferred ones are
    skipped, for a rerun to retry) and the generations are returned."""
    try:
        gens = list(writer.write(requests))
    except BatchInterrupted as stop:  # store what finished, then stop
        _keep_finished(stop.finished, keep)
        raise stop.cause from None
    safe = f"the {len(store.finished)} finished {noun}s are safe in {store.path}"
    if len(gens) > 1 and all(g.deferred for g in gens):
        raise WriterUnavailable(f"writer {writer.name!r} failed on every {noun} of a batch ({gens[0].error}); "
                                f"{safe}: check that the backend is up and serves synthesis.llm={writer.model!r}, "
                                "then rerun to continue")
    if len(gens) > 1 and all(g.error and not g.deferred for g in gens):  # a setting, not the requests
        raise WriterUnavailable(f"the server refused every {noun} of a batch ({gens[0].error}); nothing of this "
                                f"batch was stored and {safe}: check synthesis.llm, max_new_tokens and the prompt "
                                "against the server's limits, then rerun")
    _keep_finished(gens, keep)
    return gens


def _keep_finished(gens: Sequence[Generation | None], keep: Callable[[int, Generation], None]) -> None:
    for i, gen in enumerate(gens):
        if gen is not None and not gen.deferred:
            keep(i, gen)
