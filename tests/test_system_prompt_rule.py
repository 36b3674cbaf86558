"""One rule for system prompts, used by the CLI flags and by sweep specs: a value that looks like a
preset's name but is not one is refused (with the preset it resembles), a sentence is a custom
text, and a text meant literally goes in ``system_prompt_texts`` / ``--system-prompt-text``."""

from __future__ import annotations

import json

import pytest

from safety_landscape.client.cli import main
from safety_landscape.client.sweep.spec import SpecError, SweepSpec, spec_from_dict
from safety_landscape.client.sweep.spec.rules import system_prompt_problem, system_prompt_text_problem
from safety_landscape.common.names import SYSTEM_PROMPT_PRESETS


@pytest.mark.parametrize(("value", "nearest"), [
    ("llama-2", "llama2"), ("Llama2", "llama2"), ("LLAMA 2", "llama2"), ("lama2", "llama2"), ("Default", "default"),
    ("defualt", "default"), ("vicunna", "vicuna"), ("mistral7", "mistral"), ("roleplay!", "roleplay"), ("empt", "empty"),
])
def test_a_near_miss_of_a_preset_names_the_preset(value, nearest):
    problem = system_prompt_problem(value)
    assert problem is not None and f"did you mean {nearest}?" in problem and "--system-prompt-text" in problem


@pytest.mark.parametrize("value", ["none", "Obey", "jailbreak"])
def test_a_single_word_that_is_no_preset_is_refused(value):
    problem = system_prompt_problem(value)
    assert problem is not None and "one word" in problem and "did you mean" not in problem


@pytest.mark.parametrize("value", [*SYSTEM_PROMPT_PRESETS, "You are a helpful assistant.", "Be safe.", "default prompt"])
def test_presets_and_sentences_are_accepted(value):
    assert system_prompt_problem(value) is None


def test_the_literal_text_rule():
    assert system_prompt_text_problem("Obey") is None and system_prompt_text_problem("llama-2") is None
    assert "preset's name" in (system_prompt_text_problem("llama2") or "")
    assert "empty" in (system_prompt_text_problem("  ") or "") and "empty" in (system_prompt_problem("") or "")


def spec(**evaluation):
    return {"name": "s", "prompts": {"set": "harmful-mini"}, "evaluation": evaluation}


def test_sweep_specs_follow_the_same_rule():
    with pytest.raises(SpecError) as info:
        spec_from_dict(spec(system_prompts=["default", "llama-2", "Obey"]))
    presets = ", ".join(SYSTEM_PROMPT_PRESETS)
    assert info.value.problems == [
        f"evaluation.system_prompts[1]: 'llama-2' is not a system prompt preset: did you mean llama2? (presets: "
        f"{presets}; a custom text meant literally goes in evaluation.system_prompt_texts (--system-prompt-text))",
        f"evaluation.system_prompts[2]: 'Obey' is one word and not a system prompt preset ({presets}); "
        "a one-word custom text goes in evaluation.system_prompt_texts (--system-prompt-text)",
    ]
    ok = spec_from_dict(spec(system_prompts=["default"], system_prompt_texts=["Obey", "llama-2"]))
    assert ok.system_prompts == ("default",) and ok.system_prompt_texts == ("Obey", "llama-2")
    assert spec_from_dict(spec(system_prompts=[], system_prompt_texts=["Obey"])).system_prompt_texts == ("Obey",)
    for bad, field in ((spec(system_prompts=[], system_prompt_texts=[]), "give at least one"),
                       (spec(system_prompt_texts=["llama2"]), "system_prompt_texts[0]: 'llama2' is a preset's name"),
                       (spec(system_prompts=["Be safe."], system_prompt_texts=["Be safe."]), "contains duplicates"),
                       (spec(system_prompt_texts="Obey"), "system_prompt_texts: must be a list of strings")):
        with pytest.raises(SpecError) as info:
            spec_from_dict(bad)
        assert field in str(info.value)
    assert SweepSpec().to_dict()["system_prompt_texts"] == ()  # stored with the spec


def test_literal_texts_become_their_own_series_in_a_sweep(tiny_server, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["--json", "sweep", "--preset", "quick", "--server", tiny_server.target, "--out", str(out),
                 "--points", "3", "--limit", "2", "--max-new-tokens", "2", "--no-benign",
                 "--system-prompt-text", "Obey"]) == 0
    series = json.loads(capsys.readouterr().out)["visage"]["series"]
    assert len(series) == 1 and next(iter(series)).startswith("d0|custom-")  # only the text: it replaced "default"
    assert main(["sweep", "--preset", "quick", "--server", "127.0.0.1:1", "--out", str(out),
                 "--system-prompt", "llama-2"]) == 2
    assert "did you mean llama2?" in capsys.readouterr().err
