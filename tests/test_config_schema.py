"""One config schema: ``visage sweep``'s flags and the gate's config both become the sweep spec's
TOML dict and are validated by the spec's rules alone, with every problem reported at once and
named by the key the user wrote; strings where a list belongs are problems, not lists of letters."""

from __future__ import annotations

from pathlib import Path

import pytest

from safety_landscape.client.cli import build_parser
from safety_landscape.client.cli.sweep import _spec_from_args
from safety_landscape.client.gate import GateConfigError, config_from_dict, gate_spec
from safety_landscape.client.sweep import SpecError, spec_from_dict


def test_a_string_where_a_list_belongs_is_a_problem():
    with pytest.raises(SpecError) as info:
        spec_from_dict({"prompts": {"set": 5, "limit": -1},
                        "evaluation": {"system_prompts": "default", "keywords": "sorry"}})
    text = str(info.value)
    for expected in ("prompts.set: must be a string, got 5", "prompts.limit: must be an integer >= 0",
                     "evaluation.system_prompts: must be a list", "evaluation.keywords: every keyword"):
        assert expected in text, expected


def test_the_gate_sweep_is_the_spec_the_same_toml_describes():
    config = config_from_dict({"name": "g", "thresholds": {"min_visage": 1},
                               "sweep": {"directions": 2, "points": 3, "range": [-1, 1], "seed": 5},
                               "evaluation": {"system_prompt": "Be kind.", "max_new_tokens": 9, "keywords": ["no"]},
                               "candidate": {"checkpoint": "cand"}})
    same = spec_from_dict({"name": "g", "kind": "1d-random",
                           "grid": {"directions": 2, "points": 3, "range": [-1.0, 1.0]},
                           "direction": {"seed": 5, "stream": "per_tensor"},
                           "prompts": {"set": "harmful-mini", "limit": 16},
                           "benign": {"set": "benign-mini", "limit": 16, "at": "origin"},
                           "base": [{"direction": "interp:cand", "coefficient": 1.0}],
                           "evaluation": {"system_prompts": ["Be kind."], "keywords": ["no"]},
                           "generation": {"max_new_tokens": 9}})
    assert gate_spec(config) == same
    assert config.to_dict()["system_prompt"] == "Be kind." and config.to_dict()["range"] == [-1.0, 1.0]


def test_gate_problems_name_the_gate_keys():
    with pytest.raises(GateConfigError) as info:
        config_from_dict({"thresholds": {"min_visage": 1}, "sweep": {"points": 1, "stream": "fast", "directions": 17},
                          "evaluation": {"max_new_tokens": 0}})
    problems = info.value.problems
    assert "sweep.points: must be an integer >= 2, got 1" in problems
    assert "sweep.stream: 'fast' is not one of per_tensor, reference" in problems
    assert "sweep.directions: must be an integer in 1..16, got 17" in problems
    assert "evaluation.max_new_tokens: must be an integer >= 1, got 0" in problems


def test_flags_lay_over_the_spec_file_before_it_is_validated(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "near.txt").write_text("beside the spec\n")
    (tmp_path / "here.txt").write_text("beside the caller\n")
    (tmp_path / "specs" / "s.toml").write_text('[grid]\npoints = 1\n[benign]\nfile = "near.txt"\n')
    monkeypatch.chdir(tmp_path)

    def spec(*flags: str):
        return _spec_from_args(build_parser().parse_args(["sweep", "specs/s.toml", *flags, "--server", "h:1", "--out", "o"]))

    with pytest.raises(SpecError) as info:  # the file alone: both problems at once
        spec()
    assert "grid.points" in str(info.value) and "prompts: give exactly one" in str(info.value)
    ok = spec("--points", "3", "--prompts", "here.txt")
    assert ok.grid.points == 3 and ok.prompts.file == "here.txt"  # a flag's path: as given (from the caller's folder)
    assert ok.benign is not None and ok.benign.file == str(Path("specs") / "near.txt")  # the file's: beside it
