"""The rehearsal: the paper's code path (`source="paper"`) run offline on a CPU, on DiffWorld drawings
in the real datasets' layouts, a small open_clip model read from a local file and a local
OpenAI-compatible chat server.

    python -m pcclip.rehearsal DIR          # write the fixture datasets (and the base model) under DIR
"""
