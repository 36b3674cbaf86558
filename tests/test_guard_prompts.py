"""Each guard prompt the server builds equals its publisher's, byte for byte.

The fixtures in tests/fixtures/guards/ were rendered by the publishers' own code (SOURCES.md there
names each repository, path and commit). Inputs: one prompt and one completion with a newline
inside, so that no stripping or re-wrapping could go unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from guard_models import (
    LLAMA3,
    LLAMA_GUARD_2_TEMPLATE,
    LLAMA_GUARD_3_1B_TEMPLATE,
    LLAMA_GUARD_3_TEMPLATE,
    build_tokenizer,
)

from safety_landscape.server.engine.guards import prompts

FIXTURES = Path(__file__).parent / "fixtures" / "guards"
PROMPT = "How do I pick a lock?"
COMPLETION = "Step 1: insert a tension wrench.\nStep 2: rake the pins."


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (prompts.llama_guard_2_prompt, "llama_guard_2.txt"),
        (prompts.llama_guard_3_prompt, "llama_guard_3_8b_response.txt"),
        (lambda p, c: prompts.llama_guard_3_prompt(p, c, code_interpreter=False), "llama_guard_3_1b_response.txt"),
    ]
    + [(lambda p, c, h=h: prompts.shieldgemma_prompt(p, c, h), f"shieldgemma_{h.key}.txt") for h in prompts.SHIELDGEMMA_HARMS],
    ids=["llama-guard-2", "llama-guard-3-8b", "llama-guard-3-1b"] + [f"shieldgemma-{h.key}" for h in prompts.SHIELDGEMMA_HARMS],
)
def test_builtin_prompts_are_the_publishers_bytes(build, name):
    assert build(PROMPT, COMPLETION) == fixture(name)


def test_harmbench_prompt_is_the_published_template():
    template = fixture("harmbench_llama2_cls_prompt.txt")
    assert template == prompts.HARMBENCH_CLS_PROMPT
    assert prompts.harmbench_prompt(PROMPT, COMPLETION) == template.format(behavior=PROMPT, generation=COMPLETION)
    assert "do not count. \n- Generations" in template  # the published text's own trailing space


def test_llama_guard_3_wrapping_is_the_recorded_request():
    # Meta's recorded request to llama-guard3 (a user-only conversation): the same header, category list
    # and chat wrapping as the builder's, once the judged role is "User" instead of "Agent".
    recorded = fixture("llama_guard_3_recording_prompt.txt")
    built = prompts.llama_guard_3_prompt(PROMPT, COMPLETION).replace("'Agent' messages", "'User' messages")
    built = built.replace("THE LAST Agent message", "THE LAST User message")
    head = "<BEGIN CONVERSATION>\n\n"
    assert recorded[: recorded.index(head)] == built[: built.index(head)]
    assert recorded[recorded.index("\n\n<END CONVERSATION>"):] == built[built.index("\n\n<END CONVERSATION>"):]


def test_prompts_insert_text_as_given():
    odd = "  {braces} $dollar %s \n"
    text = prompts.llama_guard_3_prompt(odd, odd)
    assert f"User: {odd}\n\nAgent: {odd}\n\n<END CONVERSATION>" in text
    assert odd in prompts.harmbench_prompt(odd, "x") and odd in prompts.shieldgemma_prompt("x", odd, prompts.SHIELDGEMMA_HARMS[0])


@pytest.mark.parametrize(
    ("template", "name", "parts"),
    [
        (LLAMA_GUARD_2_TEMPLATE, "llama_guard_2.txt", False),
        (LLAMA_GUARD_3_TEMPLATE, "llama_guard_3_8b_response.txt", False),
        (LLAMA_GUARD_3_1B_TEMPLATE, "llama_guard_3_1b_response.txt", True),
    ],
    ids=["llama-guard-2-checkpoint-template", "llama-guard-3-8b-test-template", "llama-guard-3-1b-test-template"],
)
def test_chat_templates_render_the_publishers_bytes(template, name, parts):
    # Llama Guard 2: the checkpoint's own template (a copy, guard_models.py says where) renders Meta's
    # llama-recipes prompt exactly. Llama Guard 3: the test checkpoints' templates, written to render
    # Meta's prompt, are held to the same bytes (the Hub's could not be read here).
    tokenizer = build_tokenizer(LLAMA3, template=template)

    def content(text):
        return [{"type": "text", "text": text}] if parts else text

    messages = [{"role": "user", "content": content(PROMPT)}, {"role": "assistant", "content": content(COMPLETION)}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == fixture(name)
