"""Three models on one plane (the ``2d-interpolation`` kind): the origin model at (0, 0), target
A at (1, 0) and target B at (0, 1). Its points and rules, a real sweep on a tiny-random server
with two registered checkpoints (each point evaluated exactly at theta0 + a*(A - theta0) +
b*(B - theta0), built here independently of the plan), and its plot with both targets marked."""

from __future__ import annotations

import json

import pytest
from serving import running_server

from safety_landscape.client import client as C
from safety_landscape.client.plots import plot_plane
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import Grid, PromptSource, SweepSpec, run_sweep, validate, write_outputs
from safety_landscape.client.sweep.points import ModelFacts, build_plan
from safety_landscape.client.sweep.spec import SpecError
from safety_landscape.server.models.loading import load_model, resolve_model

FACTS = ModelFacts("m" * 64, "t" * 64, "c" * 64, "float32", "cpu")
KEYWORDS = ("BBB", "GG")


def plane_spec(**grid) -> SweepSpec:
    return SweepSpec(name="plane", kind="2d-interpolation", grid=Grid(target="a", target_b="b", **grid),
                     prompts=PromptSource(set="harmful-mini", limit=3), keywords=KEYWORDS, max_new_tokens=5)


def test_plan_walks_both_axes_toward_their_targets():
    spec = validate(plane_spec(steps=4, extra=1))
    plan = build_plan(spec, FACTS, set_hashes={"harmful-mini": "h" * 64})
    assert set(plan.directions) == {"interp", "interp_b"}
    assert plan.directions["interp"].interpolation.target == "a"
    assert plan.directions["interp_b"].interpolation.target == "b"
    axis = [-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25]  # linspace(-e/s, 1 + e/s, s + 2e + 1)
    assert len(plan.points) == len(axis) ** 2 and {p.series for p in plan.points} == {"plane|default"}
    assert sorted({p.coords[0] for p in plan.points}) == sorted({p.coords[1] for p in plan.points}) == axis
    sites = {p.coords: plan.sites[p.site].terms for p in plan.points}
    assert sites[(1.0, 0.0)] == (("interp", 1.0),) and sites[(0.0, 1.0)] == (("interp_b", 1.0),)
    assert sites[(0.0, 0.0)] == ()


def test_rules_need_two_different_targets():
    problems = {
        "grid.target_b: the 2d-interpolation kind needs": plane_spec().replace(grid=Grid(target="a")),
        "grid.target_b: 'a' is also grid.target": plane_spec().replace(grid=Grid(target="a", target_b="a")),
        "grid.target_b: only the 2d-interpolation kind": plane_spec().replace(kind="1d-interpolation"),
    }
    for message, spec in problems.items():
        with pytest.raises(SpecError) as info:
            validate(spec)
        assert any(p.startswith(message) for p in info.value.problems), (message, info.value.problems)


def test_plot_marks_the_origin_and_both_targets(tmp_path):
    a = b = [0.0, 0.5, 1.0]
    z = [[0.0, 10.0, 90.0], [5.0, 50.0, 100.0], [80.0, 100.0, 100.0]]
    paths = plot_plane(a, b, z, tmp_path / "plane", title="three models",
                       targets=((1.0, 0.0, "harmful-ft"), (0.0, 1.0, "safe-ft")))
    assert [p.name for p in paths] == ["plane.png", "plane.svg", "plane_surface.png", "plane_surface.svg"]
    svg = (tmp_path / "plane.svg").read_text()
    assert svg.count("harmful-ft") == 2 and svg.count("safe-ft") == 2  # on the contour and on the heatmap


@pytest.fixture(scope="module")
def two_targets(tmp_path_factory):
    root = tmp_path_factory.mktemp("plane-registry")
    for name, model in (("a", "tiny-random:1"), ("b", "tiny-random:2")):
        load_model(resolve_model(model), device="cpu", dtype="float32").model.save_pretrained(
            root / name, safe_serialization=True)
    (root / "registry.toml").write_text('[checkpoints]\na = "a"\nb = "b"\n')
    with running_server(registry=str(root / "registry.toml")) as server:
        yield server


def test_sweep_evaluates_each_point_on_the_plane_and_plots_it(two_targets, tmp_path):
    spec = validate(plane_spec(steps=1, extra=1))  # a, b in {-1, 0, 1, 2}
    with ResultStore(tmp_path / "s.sqlite") as store:
        result = run_sweep(spec, store, targets=[two_targets.target])
        records = {r.coords: r for r in store.records("plane")}
        paths = write_outputs(tmp_path / "out", store, "plane")
    assert result.evaluated == 16 and len(records) == 16
    with two_targets.client() as c:
        for (a, b) in [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (-1.0, 2.0)]:
            at = C.perturbation([(C.interpolation_direction("a"), a), (C.interpolation_direction("b"), b)])
            direct = c.evaluate(C.evaluation_settings(prompt_set="harmful-mini", limit=3, keywords=KEYWORDS,
                                                      max_new_tokens=5), at=at)
            assert records[(a, b)].value == pytest.approx(direct.asr), (a, b)
            assert records[(a, b)].detail["weight_state"] == direct.weight_state.fingerprint, (a, b)
    summary = json.loads(paths["summary"].read_text())
    assert summary["kind"] == "2d-interpolation" and summary["visage"]["series"]["plane|default"]["reference"] is None
    svg = (tmp_path / "out" / "plots" / "asr_2d_plane_default.svg").read_text()
    assert "toward a" in svg and "toward b" in svg
