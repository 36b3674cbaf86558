"""Sweep specs, grids, point keys, DNS expansion and the progress bar (no server needed)."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from safety_landscape.client.errors import FleetError, ValidationError
from safety_landscape.client.sweep import (
    Grid,
    PromptSource,
    SpecError,
    SweepSpec,
    build_plan,
    load_spec,
    preset,
    spec_from_dict,
    validate,
)
from safety_landscape.client.sweep.fleet import expand_targets
from safety_landscape.client.sweep.points import ModelFacts, axis_values, interpolation_values, prompts_sha256
from safety_landscape.client.sweep.runner import ProgressBar
from safety_landscape.client.sweep.spec.schema import DEFAULT_STOP_AFTER

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "sweeps"
FACTS = ModelFacts("m" * 64, "t" * 64, "c" * 64, "float32", "cpu")
HASHES = {"harmful-mini": "h" * 64, "benign-mini": "b" * 64}


def test_presets_are_valid_and_follow_the_method():
    quick = validate(preset("quick"))
    assert (quick.grid.directions, quick.grid.points, quick.max_new_tokens) == (1, 7, 48)
    assert quick.prompts == PromptSource(set="harmful-mini", limit=16) and quick.benign.set == "benign-mini"
    paper = preset("paper")
    assert (paper.grid.directions, paper.grid.points, paper.grid.range) == (3, 21, (-0.5, 0.5))
    assert (paper.direction.seed, paper.direction.stream, paper.max_new_tokens, paper.prompts.limit) == (
        123, "reference", 512, 80)
    assert not paper.do_sample
    with pytest.raises(SpecError, match="prompts: give exactly one"):  # AdvBench must come from the user
        validate(paper)
    with pytest.raises(ValidationError, match="unknown preset"):
        preset("huge")


def test_validation_reports_every_problem_at_once_naming_fields():
    bad = SweepSpec(kind="1d-random", grid=Grid(directions=0, points=1, range=(0.5, -0.5)),
                    prompts=PromptSource(set="x", file="y", limit=-1),
                    chat_format="chatml", judge="vibes", max_new_tokens=0, system_prompts=())
    with pytest.raises(SpecError) as info:
        validate(bad)
    text = str(info.value)
    for name in ("grid.directions", "grid.points", "grid.range", "prompts:", "prompts.limit", "evaluation.chat_format",
                 "evaluation.judge", "generation.max_new_tokens", "evaluation.system_prompts"):
        assert name in text, name
    assert len(info.value.problems) >= 9
    assert isinstance(info.value, ValidationError)
    with pytest.raises(SpecError, match="kind: '3d' is not one of"):
        validate(SweepSpec(kind="3d", prompts=PromptSource(set="x")))


def test_toml_loading_unknown_keys_and_relative_files(tmp_path):
    (tmp_path / "p.txt").write_text("one\ntwo\n")
    (tmp_path / "s.toml").write_text('name = "s"\nkind = "2d-random"\n[grid]\npoints = 3\n[prompts]\nfile = "p.txt"\n'
                                     '[evaluation]\nsystem_prompts = ["default", "Be nice."]\n[generation]\nmax_new_tokens = 9\n')
    spec = load_spec(tmp_path / "s.toml")
    assert spec.prompts.file == str(tmp_path / "p.txt") and spec.system_prompts == ("default", "Be nice.")
    assert spec.max_new_tokens == 9 and spec.benign is None
    with pytest.raises(SpecError) as info:
        spec_from_dict({"grid": {"pionts": 3}, "evaluation": {"chat": "x"}, "colour": 1, "prompts": {"file": "nope.txt"}})
    text = str(info.value)
    assert "grid.pionts: unknown key" in text and "evaluation.chat: unknown key" in text and "colour: unknown key" in text
    assert "prompts.file: 'nope.txt' is not a readable file" in text
    assert spec_from_dict(spec.to_dict()) == spec  # the stored metadata reads back


def test_example_specs_load():
    names = sorted(p.name for p in EXAMPLES.glob("*.toml"))
    assert "quick.toml" in names and "paper.toml" in names
    for path in EXAMPLES.glob("*.toml"):
        load_spec(path)
    assert load_spec(EXAMPLES / "quick.toml") == validate(preset("quick"))


def test_grid_values():
    xs = axis_values(-0.5, 0.5, 21)
    assert xs[0] == -0.5 and xs[10] == 0.0 and xs[-1] == 0.5 and xs[1] == -0.45
    # docs/method.md section 2: a in linspace(-e/s, 1 + e/s, s + 2e + 1)
    assert interpolation_values(10, 2) == [-0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    assert interpolation_values(4, 0) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_plan_points_sites_and_keys():
    spec = validate(SweepSpec(grid=Grid(directions=3, points=5), prompts=PromptSource(set="harmful-mini"),
                              benign=PromptSource(set="benign-mini"), system_prompts=("default", "Be safe.")))
    plan = build_plan(spec, FACTS, set_hashes=HASHES)
    assert len(plan.points) == 3 * 5 * 2 * 2 and len({p.key for p in plan.points}) == len(plan.points)
    assert len(plan.sites) == 3 * 4 + 1  # the origin of every direction is one weight state
    assert len(plan.tasks) == len(plan.sites) * 4
    custom = "custom-" + __import__("hashlib").sha256(b"Be safe.").hexdigest()[:8]
    assert {p.series for p in plan.points} == {f"d{i}|{s}" for i in range(3) for s in ("default", custom)}
    origin = [t for t in plan.tasks if not plan.sites[t.site].terms]
    assert len(origin) == 4 and all(len(plan.tasks[t]) == 3 for t in origin)
    # Any change of what determines a result changes the keys; a rename does not.
    same = build_plan(spec.replace(name="other"), FACTS, set_hashes=HASHES)
    assert same.keys() == plan.keys()
    for changed in (spec.replace(max_new_tokens=7), spec.replace(keywords=("x",)), spec.replace(chat_format="none"),
                    spec.replace(direction=spec.direction.__class__(seed=1))):
        assert not set(build_plan(changed, FACTS, set_hashes=HASHES).keys()) & set(plan.keys())
    other_model = ModelFacts("n" * 64, *list(FACTS.as_dict().values())[1:])
    assert not set(build_plan(spec, other_model, set_hashes=HASHES).keys()) & set(plan.keys())


def test_plan_2d_and_interpolation_and_inline_prompts():
    two = validate(SweepSpec(kind="2d-random", grid=Grid(points=3), prompts=PromptSource(file="p", limit=2)), check_files=False)
    plan = build_plan(two, FACTS, inline={"p": ["a", "b", "c"]})
    assert [p.coords for p in plan.points][:3] == [(-0.5, -0.5), (0.0, -0.5), (0.5, -0.5)]
    assert set(plan.directions) == {"d0", "d1"} and plan.directions["d1"].random.index == 1
    assert list(plan.variants[0].settings.prompts.inline.prompts) == ["a", "b"]
    assert plan.variants[0].desc["prompts"]["sha256"] == prompts_sha256(["a", "b"])
    interp = validate(SweepSpec(kind="2d-interpolation-random", grid=Grid(points=3, target="chat", steps=2, extra=1),
                                prompts=PromptSource(set="harmful-mini")))
    plan = build_plan(interp, FACTS, set_hashes=HASHES)
    assert plan.directions["interp"].interpolation.target == "chat"
    assert sorted({p.coords[0] for p in plan.points}) == [-0.5, 0.0, 0.5, 1.0, 1.5]
    assert len(plan.points) == 5 * 3


def test_expand_targets_dns():
    def resolver(host, port, type=0):
        assert (host, port) == ("visage.ns.svc", 50051)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("10.0.0.2", "10.0.0.1", "10.0.0.2")] + [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::1", port, 0, 0))]

    assert expand_targets(["dns:///visage.ns.svc:50051"], resolver) == ["10.0.0.1:50051", "10.0.0.2:50051", "[fd00::1]:50051"]
    assert expand_targets(["a:1", "b:2"]) == ["a:1", "b:2"]
    assert "127.0.0.1:7" in expand_targets(["dns:///localhost:7"])  # the real resolver
    with pytest.raises(FleetError, match="listed twice"):
        expand_targets(["a:1", "a:1"])
    with pytest.raises(FleetError, match="dns:///NAME:PORT"):
        expand_targets(["dns:///nohost"])


def test_progress_bar_quiet_unless_terminal():
    quiet = io.StringIO()
    bar = ProgressBar(10, stream=quiet)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    bar = ProgressBar(10, stream=loud, enabled=True)
    bar.update(5, "host:1")
    assert "5/10" in loud.getvalue() and "50%" in loud.getvalue() and "ETA" in loud.getvalue()
    bar.close()
    assert loud.getvalue().endswith("\n")


def test_base_capability_and_benign_at_validation(tmp_path):
    from safety_landscape.client.sweep import BaseTerm, Capability

    ok = SweepSpec(prompts=PromptSource(set="x"))
    bad = ok.replace(kind="1d-interpolation", grid=Grid(target="chat"),
                     base=(BaseTerm("interp:chat"), BaseTerm("seed:abc"), BaseTerm("adapter:a", float("nan")),
                           BaseTerm("adapter:a")),
                     prompts=PromptSource(set="x", at="origin"), benign=PromptSource(set="y", at="sometimes"),
                     capability=Capability(perplexity_file="nope.txt", fluency=True, shots=-1))
    with pytest.raises(SpecError) as info:
        validate(bad)
    text = str(info.value)
    for expected in ("base[0].direction: 'interp:chat' is also the grid's interpolation axis",
                     "base[1].direction: 'seed:abc' is not interp:NAME", "base[2].coefficient",
                     "base[3].direction: 'adapter:a' is listed twice",
                     "prompts.at", "benign.at: 'sometimes'", "capability: give perplexity_file or fluency",
                     "capability.perplexity_file: 'nope.txt'", "capability.shots", "capability.shots/limit"):
        assert expected in text, expected
    with pytest.raises(SpecError, match="capability: give mc_file"):
        validate(ok.replace(capability=Capability()))
    # TOML: [[base]], [capability] (relative files), benign.at; the stored dict reads back
    (tmp_path / "q.csv").write_text("What is 1+1?,1,2,3,4,B\n")
    (tmp_path / "s.toml").write_text('[prompts]\nset = "harmful-mini"\n[benign]\nset = "benign-mini"\nat = "origin"\n'
                                     '[capability]\nmc_file = "q.csv"\nfluency = true\n'
                                     '[[base]]\ndirection = "interp:candidate"\ncoefficient = 1\n')
    spec = load_spec(tmp_path / "s.toml")
    assert spec.base == (BaseTerm("interp:candidate", 1.0),) and isinstance(spec.base[0].coefficient, float)
    assert spec.capability == Capability(mc_file=str(tmp_path / "q.csv"), fluency=True) and spec.benign.at == "origin"
    assert spec_from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError) as info:
        spec_from_dict({"prompts": {"set": "x"}, "base": [{"coefficient": 1.0}, {"direction": "seed:1", "scale": 2}],
                        "capability": {"fluency": True, "colour": 1}})
    text = str(info.value)
    assert "base[0].direction: missing" in text and "base[1].scale: unknown key" in text
    assert "capability.colour: unknown key" in text


def test_plan_base_terms_benign_at_origin_and_capability_keys(tmp_path):
    from safety_landscape.client.sweep import BaseTerm, Capability

    spec = validate(SweepSpec(grid=Grid(directions=2, points=4), prompts=PromptSource(set="harmful-mini"),
                              benign=PromptSource(set="benign-mini", at="origin"), capability=Capability(fluency=True)))
    plan = build_plan(spec, FACTS, set_hashes=HASHES)
    by_metric = {m: [p for p in plan.points if p.metric == m] for m in ("asr", "refusal", "perplexity")}
    assert len(by_metric["asr"]) == len(by_metric["perplexity"]) == 2 * 4
    assert {p.series for p in by_metric["perplexity"]} == {"d0", "d1"}  # capability: one series per direction
    # 4 points over [-0.5, 0.5] miss a = 0, yet the benign prompts run at the origin, once
    assert [(p.series, p.coords) for p in by_metric["refusal"]] == [("d0|default", (0.0,)), ("d1|default", (0.0,))]
    refusal_tasks = [t for t in plan.tasks if plan.variants[t.variant].metric == "refusal"]
    assert len(refusal_tasks) == 1 and plan.sites[refusal_tasks[0].site].terms == ()
    # capability tasks follow the safety ones of their site
    assert [v.metric for v in plan.variants] == ["asr", "refusal", "perplexity"]
    # the base term is in every site and key; without it the keys are the plain sweep's
    cand = build_plan(spec.replace(base=(BaseTerm("interp:candidate", 1.0),)), FACTS, set_hashes=HASHES)
    assert all(("interp:candidate", 1.0) in s.terms for s in cand.sites.values())
    assert cand.directions["interp:candidate"].interpolation.target == "candidate"
    assert not set(cand.keys()) & set(plan.keys())
    assert len(cand.points) == len(plan.points) and len(cand.sites) == len(plan.sites) == 2 * 4 + 1  # + the origin
    # capability keys hash the inputs' content, not their path
    (tmp_path / "a.txt").write_text("one text\nanother text\n")
    (tmp_path / "b.txt").write_text("one text\nanother text\n")
    (tmp_path / "c.txt").write_text("one text\na different text\n")
    keys = {}
    for name in ("a", "b", "c"):
        cap = Capability(perplexity_file=str(tmp_path / f"{name}.txt"))
        p = build_plan(spec.replace(capability=cap), FACTS, set_hashes=HASHES)
        keys[name] = [pt.key for pt in p.points if pt.metric == "perplexity"]
        assert [pt.key for pt in p.points if pt.metric == "asr"] == [pt.key for pt in by_metric["asr"]]
    assert keys["a"] == keys["b"] and not set(keys["a"]) & set(keys["c"])


def test_adaptive_grid_fields_are_validated_and_read_from_toml(tmp_path):
    spec = tmp_path / "a.toml"
    spec.write_text('preset = "quick"\n[grid]\nadaptive = true\nstop_after = 3\nedge_resolution = 0.01\n')
    grid = load_spec(spec).grid
    assert (grid.adaptive, grid.stop_after, grid.edge_resolution) == (True, 3, 0.01)
    assert preset("quick").grid.adaptive is False  # full grids unless asked
    bad = preset("quick").replace(grid=Grid(directions=1, points=7, adaptive="yes", stop_after=0, edge_resolution=-1))
    with pytest.raises(SpecError) as info:
        validate(bad)
    text = str(info.value)
    for name in ("grid.adaptive: must be true or false", "grid.stop_after: must be an integer >= 1",
                 "grid.edge_resolution: must be a number >= 0"):
        assert name in text, name
    plane = SweepSpec(kind="2d-random", prompts=PromptSource(set="x"), grid=Grid(adaptive=True, edge_resolution=0.1))
    with pytest.raises(SpecError, match="edges are refined on 1D grids only"):
        validate(plane)
    with pytest.raises(SpecError, match=r"only meaningful with grid\.adaptive = true"):
        validate(preset("quick").replace(grid=Grid(stop_after=4)))
    for recorded in (2, DEFAULT_STOP_AFTER):  # what a spec written out by this or an earlier client holds
        validate(preset("quick").replace(grid=Grid(stop_after=recorded)))


def test_the_default_stop_after_is_the_one_the_help_the_spec_layout_and_the_docs_give(capsys):
    from safety_landscape.client.cli import main
    from safety_landscape.client.sweep.spec import loading

    assert Grid().stop_after == DEFAULT_STOP_AFTER
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert f"at 100 % ASR (default {DEFAULT_STOP_AFTER})" in " ".join(capsys.readouterr().out.split())
    assert f"stop_after = {DEFAULT_STOP_AFTER} " in (loading.__doc__ or "")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "sweeps.md").read_text(encoding="utf-8")
    assert f"stop_after = {DEFAULT_STOP_AFTER} " in docs and f"k, default {DEFAULT_STOP_AFTER}" in docs
