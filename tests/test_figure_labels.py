"""Series, system prompts and models in a reader's words (what figures and tables show)."""

from __future__ import annotations

from safety_landscape.client.figure_labels import (
    direction_name,
    model_name,
    name_series,
    name_spec_series,
    system_names,
    system_prompt_name,
)
from safety_landscape.client.records import system_label


def test_directions_models_and_system_prompts():
    assert [direction_name(d) for d in ("d0", "d2", "plane", "interp")] == [
        "direction 1", "direction 3", "random plane", "interpolation"]
    assert direction_name("interp", target="chat") == "toward chat"
    assert [model_name(m) for m in ("tiny-random:1", "/models/aligned", "runs/attack-10/", "Org/SmolLM2-135M")] == [
        "tiny-random:1", "aligned", "attack-10", "SmolLM2-135M"]
    text = "You are a careful assistant who never helps with harm."
    label = system_label(text)
    assert system_names(["default", text]) == {"default": "default", label: '"You are a careful assistant…"'}
    assert system_prompt_name("custom-1a2b3c4d") == "custom prompt 1a2b3c4d"


def test_a_shared_system_prompt_moves_to_the_title():
    one = name_series(["d0|default", "d1|default"])
    assert one.names == {"d0|default": "direction 1", "d1|default": "direction 2"} and one.shared_system == "default"
    assert one.title("m: ASR (%)") == "m: ASR (%) · system prompt: default"
    text = "Be safe."
    two = name_series(["d0|default", f"d0|{system_label(text)}"], systems=system_names(["default", text]))
    assert two.shared_system is None and two.title("t") == "t"
    assert list(two.names.values()) == ["direction 1, default", 'direction 1, "Be safe."']
    assert name_series(["d0", "d1"]).names == {"d0": "direction 1", "d1": "direction 2"}  # capability series


def test_a_sweeps_series_named_from_its_spec_stand_alone_as_headings():
    text = "Be safe."
    spec = {"system_prompts": ["default"], "system_prompt_texts": [text], "grid": {"points": 5}}
    both = name_spec_series(["d0|default", f"d1|{system_label(text)}"], spec)
    assert both.full("d0|default") == "direction 1, default" and both.full(f"d1|{system_label(text)}") == 'direction 2, "Be safe."'
    one = name_spec_series(["d0|default"], {"system_prompts": ["default"]})
    assert one.names == {"d0|default": "direction 1"} and one.full("d0|default") == "direction 1, default"
    interp = name_spec_series(["interp|default"], {"grid": {"target": "attack-10"}})
    assert interp.full("interp|default") == "toward attack-10, default"
