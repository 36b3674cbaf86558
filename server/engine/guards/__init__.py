"""Classifier judges: guard models that say whether an answer is harmful, in each guard's own format.

``formats`` (the formats and telling which one a checkpoint is), ``prompts`` (the prompts written
here, byte for byte as their publishers write them), ``parsing`` (reading a guard's answer) and
``judge`` (running the guard model on (prompt, completion) pairs).
"""

from .formats import AUTO, FORMAT_NAMES, FORMATS, GuardFormat, detect_format, resolve_format
from .judge import ClassifierJudge, GuardInput, GuardVerdict
from .parsing import GuardReading, MalformedGuardAnswer

__all__ = [
    "AUTO",
    "FORMATS",
    "FORMAT_NAMES",
    "ClassifierJudge",
    "GuardFormat",
    "GuardInput",
    "GuardReading",
    "GuardVerdict",
    "MalformedGuardAnswer",
    "detect_format",
    "resolve_format",
]
