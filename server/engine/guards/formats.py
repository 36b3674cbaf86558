"""The guard formats a classifier judge can speak, and telling which one a checkpoint is.

A format says how a (prompt, completion) pair becomes the guard's input (the checkpoint's own
chat template, or a prompt written in ``prompts.py``), how the guard decides (generating an answer
that ``parsing.py`` reads, or the probability of "Yes"), and how long its answer may be.

Which prompt is used:
  - ``template="required"`` (Qwen3Guard-Gen): only the checkpoint's chat template; none: an error.
  - ``template="preferred"`` (Llama Guard 2 and 3): the checkpoint's template when it ships one,
    else the publisher's prompt written in ``prompts.py``.
  - ``template="ignored"`` (ShieldGemma, the HarmBench classifier): always the prompt in
    ``prompts.py``, as the publishers' own code builds it (Google's cookbook scores that text; the
    HarmBench classifier ships no template).

Detection (``--judge-format auto``) reads only the checkpoint's chat template and is decided by
text that one family's template contains and the others' do not (``markers``); no template, or a
template that matches no family (or two), is "cannot tell" and the server asks for
``--judge-format``. A named format whose family differs from the detected one is an error, never
a silent switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ...errors import FailedPrecondition, InvalidArgument, did_you_mean
from . import prompts
from .parsing import GuardReading, read_harmbench, read_llama_guard, read_qwen3guard

__all__ = ["AUTO", "FORMATS", "FORMAT_NAMES", "GuardFormat", "chat_template_text", "detect_format", "resolve_format"]

AUTO = "auto"


@dataclass(frozen=True)
class GuardFormat:
    """One guard format (docs/evaluation.md, "Classifier judges", says what "unsafe" means for each)."""

    name: str
    family: str  # formats of one family share a checkpoint template (llama-guard-3 and llama-guard-3-1b)
    title: str
    template: str  # "required" | "preferred" | "ignored" (module docstring)
    decision: str  # "generate": read the answer | "yes-no": P(Yes) against the threshold
    builtin: Callable[[str, str], str] | None = None  # the prompt written in prompts.py
    builtin_bos: bool = True  # tokenise the builtin prompt with the tokenizer's special tokens (BOS)
    read: Callable[[str], GuardReading] | None = None  # decision "generate"
    max_new_tokens: int = 0  # decision "generate": as the publishers' model cards (Llama Guard 100, Qwen3Guard 128,
    # HarmBench 1); a guard stops at its end-of-turn token long before, and a cut answer would read as malformed
    markers: tuple[str, ...] = ()  # all present in a chat template: this family


FORMATS: dict[str, GuardFormat] = {
    f.name: f
    for f in (
        GuardFormat(
            "llama-guard-2", "llama-guard-2", "Llama Guard 2", "preferred", "generate",
            builtin=prompts.llama_guard_2_prompt, read=partial(read_llama_guard, category_count=11), max_new_tokens=100,
            markers=("<BEGIN UNSAFE CONTENT CATEGORIES>", "[INST]", "S11: Sexual Content"),
        ),
        GuardFormat(
            "llama-guard-3", "llama-guard-3", "Llama Guard 3 (8B)", "preferred", "generate",
            builtin=prompts.llama_guard_3_prompt, builtin_bos=False, read=partial(read_llama_guard, category_count=14),
            max_new_tokens=100, markers=("<BEGIN UNSAFE CONTENT CATEGORIES>", "<|start_header_id|>", "Elections"),
        ),
        GuardFormat(
            "llama-guard-3-1b", "llama-guard-3", "Llama Guard 3 (1B)", "preferred", "generate",
            builtin=partial(prompts.llama_guard_3_prompt, code_interpreter=False), builtin_bos=False,
            read=partial(read_llama_guard, category_count=14), max_new_tokens=100,
        ),
        GuardFormat(
            "qwen3guard-gen", "qwen3guard-gen", "Qwen3Guard-Gen", "required", "generate",
            read=read_qwen3guard, max_new_tokens=128, markers=("Safety: Controversial",),
        ),
        GuardFormat("shieldgemma", "shieldgemma", "ShieldGemma", "ignored", "yes-no", markers=("policy expert",)),
        GuardFormat(
            "harmbench-llama2-cls", "harmbench-llama2-cls", "HarmBench classifier (Llama-2-13b-cls)", "ignored",
            "generate", builtin=prompts.harmbench_prompt, read=read_harmbench, max_new_tokens=1,
        ),
    )
}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
_FAMILY_OF_MARKERS = {f.family: f.name for f in FORMATS.values() if f.markers}  # family -> its detected format


def chat_template_text(tokenizer: Any) -> str:
    """The checkpoint's chat template ("" when it ships none); several named templates are joined."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return "\n".join(str(t) for t in template.values())
    return template or ""


def detect_format(tokenizer: Any) -> str | None:
    """The format whose markers the checkpoint's chat template contains; None when none or several match."""
    text = chat_template_text(tokenizer)
    if not text:
        return None
    found = [name for name in _FAMILY_OF_MARKERS.values() if all(m in text for m in FORMATS[name].markers)]
    return found[0] if len(found) == 1 else None


def resolve_format(requested: str, tokenizer: Any, checkpoint: str) -> GuardFormat:
    """The format to judge with: ``requested`` checked against the checkpoint, or detected for ``auto``."""
    names = ", ".join(FORMAT_NAMES)
    if requested != AUTO and requested not in FORMATS:
        raise InvalidArgument(f"--judge-format {requested!r} is not a guard format." + did_you_mean(requested, FORMATS))
    detected = detect_format(tokenizer)
    has_template = bool(chat_template_text(tokenizer))
    if requested == AUTO:
        if detected is None:
            why = "its chat template matches no known guard" if has_template else "it ships no chat template"
            raise FailedPrecondition(
                f"cannot tell the guard format of --judge-model {checkpoint}: {why}. Name it with --judge-format "
                f"(one of {names})"
            )
        requested = detected
    chosen = FORMATS[requested]
    if detected is not None and FORMATS[detected].family != chosen.family:
        raise FailedPrecondition(
            f"--judge-format {chosen.name} does not match --judge-model {checkpoint}: its chat template is "
            f"{FORMATS[detected].title}'s. Use --judge-format {detected} (or auto), or another checkpoint"
        )
    if chosen.template == "required" and not has_template:
        raise FailedPrecondition(
            f"{chosen.title} needs the chat template its checkpoints ship (tokenizer_config.json or "
            f"chat_template.jinja); --judge-model {checkpoint} has none"
        )
    return chosen
