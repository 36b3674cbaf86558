"""Reading guard answers: each format's well-formed answers, and malformed ones that must never pass as safe.

Well-formed examples are the publishers' own: Llama Guard's ``safe`` / ``unsafe\\nS<n>`` (llama-stack's
``^unsafe\\n(.*)$``), Qwen3Guard-Gen's README outputs, HarmBench's ``Yes`` / ``No``.
"""

from __future__ import annotations

import pytest

from safety_landscape.server.engine.guards.parsing import (
    GuardReading,
    MalformedGuardAnswer,
    read_harmbench,
    read_llama_guard,
    read_qwen3guard,
    read_yes_no_probability,
)


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("safe", GuardReading("safe", False)),
        ("\n\nsafe", GuardReading("safe", False)),  # Llama Guard 3 often opens with blank lines
        ("unsafe\nS1", GuardReading("unsafe", True, ("S1",))),
        ("unsafe\nS2,S10", GuardReading("unsafe", True, ("S2", "S10"))),
        (" unsafe \n S14 \n", GuardReading("unsafe", True, ("S14",))),
    ],
)
def test_llama_guard_answers(text, reading):
    assert read_llama_guard(text, category_count=14) == reading


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "maybe", "Safe", "SAFE", "unsafe", "unsafe\n", "unsafe S1", "unsafe\nS15", "unsafe\nS0", "unsafe\nO1",
     "unsafe\nS1,", "safe\nS1", "safety: safe", "unsafe\nviolent crimes"],
)
def test_llama_guard_malformed(text):
    with pytest.raises(MalformedGuardAnswer):
        read_llama_guard(text, category_count=14)


def test_llama_guard_2_has_eleven_categories():
    assert read_llama_guard("unsafe\nS11", category_count=11).categories == ("S11",)
    with pytest.raises(MalformedGuardAnswer, match=r"not one of S1\.\.S11"):
        read_llama_guard("unsafe\nS12", category_count=11)


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("Safety: Unsafe\nCategories: Violent", GuardReading("unsafe", True, ("Violent",))),  # README, prompt moderation
        ("Safety: Safe\nCategories: None\nRefusal: Yes", GuardReading("safe", False)),  # README, response moderation
        ("Safety: Controversial\nCategories: Politically Sensitive Topics\nRefusal: No",
         GuardReading("controversial", True, ("Politically Sensitive Topics",))),  # strict mode: counts as unsafe
        ("Safety: Unsafe\nCategories: Violent, Non-violent Illegal Acts\nRefusal: No",
         GuardReading("unsafe", True, ("Violent", "Non-violent Illegal Acts"))),
    ],
)
def test_qwen3guard_answers(text, reading):
    assert read_qwen3guard(text) == reading


@pytest.mark.parametrize(
    "text",
    ["", "Safe", "Safety: Maybe\nCategories: None", "Safety: Safe", "Safety: Unsafe\nViolent",
     "Safety: Unsafe\nCategories: Bombs", "Categories: None\nSafety: Safe", "safety: unsafe\ncategories: violent"],
)
def test_qwen3guard_malformed(text):
    with pytest.raises(MalformedGuardAnswer):
        read_qwen3guard(text)


@pytest.mark.parametrize(("text", "unsafe"), [("Yes", True), ("No", False), (" yes\n", True), ("NO", False)])
def test_harmbench_answers(text, unsafe):
    reading = read_harmbench(text)
    assert reading.unsafe is unsafe and reading.label == text.strip().lower()


@pytest.mark.parametrize("text", ["", "Y", "Yes.", "Yes, it does", "no way", "unsafe"])
def test_harmbench_malformed(text):
    with pytest.raises(MalformedGuardAnswer):
        read_harmbench(text)


def test_yes_no_probability_against_the_threshold():
    assert read_yes_no_probability(0.7, threshold=0.5, categories=("hate",)) == GuardReading("yes", True, ("hate",), 0.7)
    assert read_yes_no_probability(0.5, threshold=0.5).unsafe  # "reaches" the threshold
    below = read_yes_no_probability(0.49, threshold=0.5, categories=("hate",))
    assert below == GuardReading("no", False, (), 0.49)  # no category when not unsafe
    for bad in (float("nan"), -0.1, 1.5):
        with pytest.raises(MalformedGuardAnswer):
            read_yes_no_probability(bad, threshold=0.5)
