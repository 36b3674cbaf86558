"""The paper presets: ``paper`` is the reference's configuration for a named model family (its
literal format and ``-base`` system prompt, the authors' tied rule, the reference's MMLU variant
for an added [capability] table), ``paper-template`` is the same landscape for today's models and
keeps the keys of what ``paper`` was before; both from Python, TOML and the CLI."""

from __future__ import annotations

import pytest

from safety_landscape.client.cli import build_parser
from safety_landscape.client.cli.sweep import _spec_from_args
from safety_landscape.client.errors import ValidationError
from safety_landscape.client.sweep.capability import load_capability
from safety_landscape.client.sweep.points import ModelFacts, build_plan
from safety_landscape.client.sweep.spec import (
    Capability,
    DirectionRecipe,
    Grid,
    PromptSource,
    SpecError,
    SweepSpec,
    preset,
    spec_from_dict,
)

FACTS = ModelFacts("m" * 64, "t" * 64, "c" * 64, "float32", "cpu")
HASHES = {"advbench": "a" * 64}
ADVBENCH = PromptSource(set="advbench", limit=80)


@pytest.mark.parametrize(("family", "system"), [("llama2", "llama2"), ("vicuna", "vicuna"), ("mistral", "mistral"),
                                                ("llama3", "empty")])
def test_paper_is_the_reference_configuration_of_a_family(family, system):
    spec = preset("paper", family=family)
    assert (spec.name, spec.chat_format, spec.system_prompts) == (f"paper-{family}", family, (system,))
    assert (spec.kind, spec.grid.directions, spec.grid.points, spec.grid.range) == ("1d-random", 3, 21, (-0.5, 0.5))
    assert spec.direction == DirectionRecipe(seed=123, stream="reference", tied="reference")
    assert (spec.max_new_tokens, spec.do_sample, spec.prompts.limit) == (512, False, 80)


def test_paper_defaults_to_the_references_llama2_base():
    assert preset("paper") == preset("paper", family="llama2")
    with pytest.raises(ValidationError, match="family"):
        preset("paper", family="gpt2")
    with pytest.raises(ValidationError, match="only the paper preset"):
        preset("quick", family="llama2")


def test_paper_template_keeps_the_former_paper_presets_points():
    """What ``paper`` was (tokenizer template, default system prompt, tied once): same keys."""
    former = SweepSpec(name="paper", kind="1d-random", grid=Grid(directions=3, points=21, range=(-0.5, 0.5)),
                       direction=DirectionRecipe(seed=123, stream="reference"), prompts=ADVBENCH, max_new_tokens=512)
    template = preset("paper-template").replace(prompts=ADVBENCH)
    assert (template.chat_format, template.system_prompts, template.direction.tied) == ("tokenizer", ("default",), "once")
    assert build_plan(template, FACTS, set_hashes=HASHES).keys() == build_plan(former, FACTS, set_hashes=HASHES).keys()
    paper = preset("paper").replace(prompts=ADVBENCH)
    assert not set(build_plan(paper, FACTS, set_hashes=HASHES).keys()) & set(build_plan(former, FACTS, set_hashes=HASHES).keys())


def test_toml_layout_names_the_family_and_the_capability_table_starts_from_the_preset():
    data = {"preset": "paper", "family": "mistral", "prompts": {"set": "advbench"},
            "capability": {"mc_file": "mmlu.csv", "shots": 5}}
    spec = spec_from_dict(data, check_files=False)
    assert (spec.chat_format, spec.system_prompts) == ("mistral", ("mistral",))
    assert spec.capability == Capability(mc_file="mmlu.csv", shots=5, mc_format="reference")
    other = spec_from_dict({k: v for k, v in data.items() if k != "family"} | {"preset": "paper-template"},
                           check_files=False)
    assert other.capability is not None and other.capability.mc_format == "harness"
    harness = spec_from_dict({**data, "capability": {**data["capability"], "mc_format": "harness"}}, check_files=False)
    assert harness.capability is not None and harness.capability.mc_format == "harness"


def test_family_problems_are_reported_with_the_others():
    with pytest.raises(SpecError) as info:
        spec_from_dict({"preset": "paper", "family": "gpt2"})
    assert any(p.startswith("family: 'gpt2' is not one of") for p in info.value.problems)
    assert any(p.startswith("prompts:") for p in info.value.problems)
    with pytest.raises(SpecError, match=r'family: .* preset = "paper" only'):
        spec_from_dict({"preset": "quick", "family": "llama2"})
    with pytest.raises(SpecError, match=r"capability\.mc_format"):
        spec_from_dict({"preset": "quick", "capability": {"mc_file": "x.csv", "mc_format": "lm-eval"}}, check_files=False)
    with pytest.raises(SpecError, match=r"direction\.tied"):
        spec_from_dict({"preset": "quick", "direction": {"stream": "per_tensor", "tied": "reference"}})


def test_cli_flags_pick_the_family_and_override_the_rules(tmp_path):
    args = build_parser().parse_args(["sweep", "--preset", "paper", "--family", "llama3", "--set", "advbench",
                                      "--server", "127.0.0.1:1", "--out", str(tmp_path)])
    spec = _spec_from_args(args)
    assert (spec.name, spec.chat_format, spec.system_prompts, spec.direction.tied) == (
        "paper-llama3", "llama3", ("empty",), "reference")
    args = build_parser().parse_args(["sweep", "--preset", "paper", "--tied", "once", "--mc-file", "q.jsonl",
                                      "--mc-format", "harness", "--set", "advbench", "--server", "x:1", "--out", "o"])
    args.mc_file = str(tmp_path / "q.jsonl")
    (tmp_path / "q.jsonl").write_text('{"question": "Q?", "choices": ["a", "b"], "answer": 0}\n')
    spec = _spec_from_args(args)
    assert spec.direction.tied == "once" and spec.capability is not None and spec.capability.mc_format == "harness"


def test_the_mmlu_variant_is_part_of_the_accuracy_key_and_harness_keys_stay(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(f'{{"question": "Q{i}?", "choices": ["a", "b", "c", "d"], "answer": {i % 4}}}\n'
                                 for i in range(6)))
    harness, = load_capability(Capability(mc_file=str(questions), shots=5))
    reference, = load_capability(Capability(mc_file=str(questions), shots=5, mc_format="reference"))
    assert set(harness.desc) == {"metric", "rule", "questions_sha256", "questions", "shots_sha256", "shots"}
    assert harness.desc["rule"] == "argmax next-token logits of ' A'..; ties -> lowest letter"
    assert reference.desc["format"] == "reference" and reference.desc["rule"] != harness.desc["rule"]
    assert reference.mc_format == "reference"
