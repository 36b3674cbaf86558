"""Pieces that both sides share and neither owns: plain Python, no torch, no grpc.

``names`` holds the name tables of the v1 contract's choices (chat formats, normalisations,
tensor selections, random streams, system-prompt presets, judges) as plain strings;
``prompt_files`` reads prompt files (AdvBench/HarmBench/JailbreakBench CSV, JSONL, text) with
its own error type, which each side maps to its own errors.
"""

__all__: list[str] = []

