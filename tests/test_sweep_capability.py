"""Capability at the same points as safety (docs/method.md section 6) on real tiny-random servers:
the sweep's perplexity / MC accuracy at each point equal a direct ``perplexity_at`` /
``mc_accuracy_at`` at that perturbation, scores run on the server that just evaluated the point's
safety, resume skips finished capability points, and the outputs (summary.json, side-by-side
plots, report) carry the capability curves."""

from __future__ import annotations

import json
from collections import Counter
from typing import ClassVar

import pytest
from serving import running_server

from safety_landscape.client import client as C
from safety_landscape.client.capability import load_mc_file
from safety_landscape.client.capability_eval import mc_accuracy_at, perplexity_at
from safety_landscape.client.cli import main
from safety_landscape.client.errors import ValidationError
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import Capability, Grid, PromptSource, SweepSpec, run_sweep, validate, write_outputs
from safety_landscape.client.sweep.capability import fluency_texts, read_texts

KEYWORDS = ("BBB", "GG")
QUESTIONS = [
    {"question": "What is 2 + 2?", "choices": ["3", "4", "5", "22"], "answer": 1},
    {"question": "Which planet is red?", "choices": ["Venus", "Mars", "Jupiter", "Saturn"], "answer": "B"},
    {"question": "Water boils at sea level at", "choices": ["50 C", "90 C", "100 C", "120 C"], "answer": 2},
    {"question": "The capital of France is", "choices": ["Paris", "Rome", "Berlin", "Madrid"], "answer": 0},
    {"question": "Which is a mammal?", "choices": ["Shark", "Trout", "Dolphin", "Octopus"], "answer": 2},
    {"question": "Pick the prime", "choices": ["4", "6", "8", "7"], "answer": 3},
]


class CountingClient(C.Client):
    """A real client that counts its Score calls (shared counter: one per test)."""

    calls: ClassVar[Counter[str]] = Counter()

    def score(self, *args, **kwargs):
        CountingClient.calls["score"] += 1
        return super().score(*args, **kwargs)


@pytest.fixture(scope="module")
def two_servers():
    with running_server() as a, running_server() as b:
        yield a, b


@pytest.fixture
def mc_file(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    return path


def spec_with(mc_file, **changes) -> SweepSpec:
    base = SweepSpec(name="cap", kind="1d-random", grid=Grid(directions=2, points=5, range=(-0.5, 0.5)),
                     prompts=PromptSource(set="harmful-mini", limit=3), keywords=KEYWORDS, max_new_tokens=6,
                     capability=Capability(mc_file=str(mc_file), shots=2, limit=3, fluency=True), points_per_call=2)
    base = base.replace(direction=base.direction.__class__(stream="per_tensor"))
    return validate(base.replace(**changes))


def at(direction: int, a: float):
    """The perturbation of point (d<direction>, a), built here independently of the plan."""
    if a == 0.0:
        return C.perturbation()
    return C.perturbation([(C.random_direction(123, stream="per_tensor", index=direction), a)])


def test_capability_at_each_point_equals_a_direct_score(two_servers, mc_file, tmp_path):
    a, b = two_servers
    spec = spec_with(mc_file)
    with ResultStore(tmp_path / "s.sqlite") as store:
        result = run_sweep(spec, store, targets=[a.target, b.target])
        records = store.records("cap")
        paths = write_outputs(tmp_path / "out", store, "cap")
    assert result.evaluated == len(result.plan.tasks) == (2 * 4 + 1) * 3  # (sites) x (asr, accuracy, perplexity)
    by_metric = {m: {(r.series, r.coords): r for r in records if r.metric == m} for m in ("asr", "accuracy", "perplexity")}
    assert len(by_metric["perplexity"]) == len(by_metric["accuracy"]) == len(by_metric["asr"]) == 2 * 5
    assert {s for s, _ in by_metric["perplexity"]} == {"d0", "d1"}
    texts = fluency_texts()
    questions = load_mc_file(mc_file)
    with a.client() as direct:
        values = set()
        for (series, coords), rec in by_metric["perplexity"].items():
            where = at(int(series[1:]), coords[0])
            assert rec.value == pytest.approx(perplexity_at(direct, texts, at=where), rel=1e-6), (series, coords)
            assert rec.total == len(texts) == 20
            values.add(round(rec.value, 6))
            acc = by_metric["accuracy"][(series, coords)]
            assert acc.value == pytest.approx(mc_accuracy_at(direct, questions[2:5], questions[:2], at=where))
            assert acc.total == 3  # 6 questions - 2 shots, limit 3
            # scored on the server that has just evaluated this point's safety (no extra weight switch)
            asr = by_metric["asr"][(f"{series}|default", coords)]
            assert rec.detail["server"] == acc.detail["server"] == asr.detail["server"]
        assert len(values) > 1  # perturbation changes the perplexity
    # outputs: summary.json curves, side-by-side plots, the report
    summary = json.loads(paths["summary"].read_text())
    cap = summary["capability"]
    assert cap["metrics"] == ["accuracy", "perplexity"]
    assert [c[0] for c in cap["curves"]["perplexity"]["d0"]] == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert cap["series"]["perplexity"]["d0"]["origin"] == pytest.approx(by_metric["perplexity"][("d0", (0.0,))].value)
    assert summary["curves"]["perplexity"] == cap["curves"]["perplexity"]
    plots = tmp_path / "out" / "plots"
    for name in ("asr_vs_perplexity_1d", "asr_vs_accuracy_1d", "perplexity_1d", "accuracy_1d", "asr_1d"):
        assert (plots / f"{name}.png").stat().st_size > 1000, name
        assert (plots / f"{name}.svg").is_file()
    html = paths["report"].read_text()
    assert "perplexity at origin" in html and "MC accuracy" in html


def test_resume_skips_finished_capability_points(two_servers, mc_file, tmp_path):
    a = two_servers[0]
    spec = spec_with(mc_file, capability=Capability(fluency=True))

    def stop_after(n):
        def progress(p):
            if p.done == n:
                raise KeyboardInterrupt
        return progress

    CountingClient.calls.clear()
    with ResultStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec, store, targets=[a.target], connect=CountingClient, progress=stop_after(7))
        kept = {r.key: r for r in store.records()}
        assert any(r.metric == "perplexity" for r in kept.values()) and len(kept) < 20
        CountingClient.calls.clear()
        result = run_sweep(spec, store, targets=[a.target], connect=CountingClient)
        missing = result.plan.missing(set(kept))
        missing_capability = [t for t in missing if result.plan.variants[t.variant].metric == "perplexity"]
        assert CountingClient.calls["score"] == len(missing_capability) > 0  # 20 texts: one Score call per point
        assert result.evaluated == len(missing) < len(result.plan.tasks)
        assert result.reused == len(kept) and len(store) == 20
        assert all(store.get(k) == r for k, r in kept.items())  # finished points were not redone
        CountingClient.calls.clear()
        again = run_sweep(spec, store, targets=[a.target], connect=CountingClient)
        assert (again.evaluated, again.written, CountingClient.calls["score"]) == (0, 0, 0)
        # other capability inputs are other points: the safety points are reused, perplexity is new
        (tmp_path / "t.txt").write_text("One short line of text.\nAnother line, a little longer than the first.\n")
        other = run_sweep(spec.replace(capability=Capability(perplexity_file=str(tmp_path / "t.txt"))), store,
                          targets=[a.target], connect=CountingClient)
        assert other.written == 10 and other.reused == 10 and CountingClient.calls["score"] == 9


def test_cli_flags_fluency_mc_file_and_a_2d_grid(two_servers, mc_file, tmp_path, capsys):
    a = two_servers[0]
    out = tmp_path / "quick"
    code = main(["--json", "sweep", "--preset", "quick", "--server", a.target, "--out", str(out), "--points", "3",
                 "--limit", "2", "--max-new-tokens", "4", "--benign-at", "origin", "--fluency",
                 "--mc-file", str(mc_file), "--shots", "1", "--stream", "per_tensor"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    # 3 sites x (asr, accuracy, perplexity) + the benign prompts at the origin only
    assert doc["evaluated"] == 3 * 3 + 1 and doc["written"] == 3 * 3 + 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["capability"]["metrics"] == ["accuracy", "perplexity"]
    assert list(summary["over_refusal"]["series"]) == ["d0|default"] and len(summary["curves"]["refusal"]["d0|default"]) == 1
    assert summary["points"] == {"planned": 10, "measured": 10}
    assert (out / "plots" / "asr_vs_perplexity_1d.png").is_file() and not (out / "plots" / "refusal_1d.png").exists()
    # 2D: perplexity gets its own colour scale
    plane = tmp_path / "plane.toml"
    plane.write_text('name = "plane"\nkind = "2d-random"\n[grid]\npoints = 3\n[direction]\nstream = "per_tensor"\n'
                     '[prompts]\nset = "harmful-mini"\nlimit = 2\n[generation]\nmax_new_tokens = 4\n'
                     '[capability]\nfluency = true\n')
    assert main(["sweep", str(plane), "--server", a.target, "--out", str(tmp_path / "plane"), "--no-progress"]) == 0
    assert "perplexity plane" in capsys.readouterr().out
    assert (tmp_path / "plane" / "plots" / "perplexity_2d_plane.png").is_file()
    # a bad capability input fails before any RPC, exit 2
    assert main(["sweep", "--preset", "quick", "--server", "127.0.0.1:1", "--out", str(tmp_path / "bad"),
                 "--mc-file", str(mc_file), "--shots", "6"]) == 2
    assert "capability.shots" in capsys.readouterr().err


def test_read_texts_formats(tmp_path):
    (tmp_path / "a.txt").write_text("first\n\nsecond line\n")
    assert read_texts(tmp_path / "a.txt") == ["first", "second line"]
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n\n{"text": "two", "id": 2}\n')
    assert read_texts(tmp_path / "b.jsonl") == ["one", "two"]
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(ValidationError, match='line 1: needs a non-empty "text"'):
        read_texts(tmp_path / "c.jsonl")
    (tmp_path / "d.txt").write_text("\n\n")
    with pytest.raises(ValidationError, match="no texts"):
        read_texts(tmp_path / "d.txt")
    assert len(fluency_texts()) == 20
