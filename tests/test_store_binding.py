"""A store is bound to what it measures: no command can mix two models' points, and every row says
which model it was measured on. Two real servers hold different models (tiny-random and
tiny-random:1).

- ``visage sweep`` into a store whose sweep of that name measured the other model is refused before
  anything is evaluated or written (exit 2), with what to do (another ``--out`` or ``--name``); the
  store is unchanged. Under another ``--name`` the second model's sweep sits beside the first, and
  every export row (points and completions, CSV and JSON) and every DataFrame row carries its
  model's name and fingerprint, so ``to_pandas(sweep)`` gives one model's grid and no more.
- The gate, re-run on the other model into the same ``--out``, is refused in the same words
  (verdict error, exit 2).
- A store an earlier client mixed (the second model's points written into the first one's sweep,
  its metadata replaced) is read by ``visage compare`` (and every summary) through the sweep's
  planned keys: one model only; its export shows both models apart; a sweep of the first model into
  it is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from serving import running_server

from safety_landscape.client.cli import main
from safety_landscape.client.compare import load_run
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep.stored import load_sweep

SMALL = ["--points", "3", "--limit", "2", "--no-benign", "--max-new-tokens", "2", "--no-progress"]


@pytest.fixture(scope="module")
def servers():
    with running_server() as first, running_server(model="tiny-random:1") as second:
        yield first, second


def sweep(server, out: Path, *extra: str) -> int:
    return main(["sweep", "--preset", "quick", "--server", server.target, "--out", str(out), *SMALL, *extra])


def _fingerprint(server) -> str:
    with server.client() as c:
        return c.info().model_fingerprint


def test_a_sweep_of_another_model_into_the_same_sweep_is_refused_before_any_evaluation(servers, tmp_path, capsys):
    first, second = servers
    out = tmp_path / "run"
    assert sweep(first, out) == 0
    with ResultStore(out / "results.sqlite") as store:
        before, meta = sorted(store.keys()), store.get_meta("quick")
    capsys.readouterr()
    assert sweep(second, out, "--json") == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert "holds sweep 'quick' of tiny-random and the servers hold tiny-random:1" in error
    assert "nothing was evaluated" in error and "another --out" in error and "another --name" in error
    assert f"model {_fingerprint(first)[:16]} there, {_fingerprint(second)[:16]} on the server" in error
    with ResultStore(out / "results.sqlite") as store:
        assert sorted(store.keys()) == before and store.get_meta("quick") == meta  # nothing written

    # Under another name the second model's sweep sits beside the first one's, every row names its model.
    assert sweep(second, out, "--name", "quick-second") == 0
    capsys.readouterr()
    with ResultStore(out / "results.sqlite") as store:
        frame = store.to_pandas()
        one = store.to_pandas("quick")
    assert len(one) == 3 and set(one.model) == {"tiny-random"} and set(one.model_fingerprint) == {_fingerprint(first)}
    by_sweep = {s: set(g.model) for s, g in frame.groupby("sweep")}
    assert by_sweep == {"quick": {"tiny-random"}, "quick-second": {"tiny-random:1"}}
    assert frame.reproduce.str.contains("--expect-model " + _fingerprint(second)).sum() == 3
    for argv in (["export", str(out), "--format", "csv", "--output", "-"],
                 ["export", str(out), "--format", "csv", "--completions", "--output", "-"]):
        assert main(argv) == 0
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert {(r["sweep"], r["model"], r["model_fingerprint"]) for r in rows} == {
            ("quick", "tiny-random", _fingerprint(first)), ("quick-second", "tiny-random:1", _fingerprint(second))}
    assert main(["export", str(out), "--output", "-"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert {p["model"]["name"] for p in points} == {"tiny-random", "tiny-random:1"} and len(points) == 6


def test_the_gate_refuses_another_models_results_in_its_folder(servers, tmp_path, capsys):
    first, second = servers
    config = tmp_path / "gate.toml"
    config.write_text('name = "tiny"\n[sweep]\npoints = 3\n[prompts]\nlimit = 2\n[benign]\nlimit = 2\n'
                      '[evaluation]\nmax_new_tokens = 2\n[thresholds]\nmin_visage = 0\n')
    out = tmp_path / "gate"
    assert main(["gate", str(config), "--server", first.target, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["gate", str(config), "--server", second.target, "--out", str(out), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "error" and "of tiny-random and the servers hold tiny-random:1" in doc["error"]
    assert "another --out" in doc["error"]


def test_a_store_an_earlier_client_mixed_is_read_one_model_at_a_time(servers, tmp_path, capsys):
    first, second = servers
    assert sweep(first, tmp_path / "mixed") == 0
    assert sweep(second, tmp_path / "other") == 0
    # What an earlier client left: the second model's points in the first one's sweep, its metadata replaced.
    with ResultStore(tmp_path / "other" / "results.sqlite") as other, \
            ResultStore(tmp_path / "mixed" / "results.sqlite") as mixed:
        for record in other.records("quick"):
            mixed.put(dataclasses.replace(record, model=None, provenance={}))  # named by nothing but its sweep
        mixed.put_meta("quick", other.get_meta("quick") or {})
        assert len(mixed.records("quick")) == 6
        data = load_sweep(mixed)
        assert {r.key for s in data.records["asr"].values() for r in s.values()} == other.keys()  # the second's only
        rows = mixed.point_rows("quick")
    assert {r.model_fingerprint for r in rows} == {_fingerprint(first), _fingerprint(second)}  # told apart
    run = load_run(tmp_path / "mixed" / "results.sqlite")
    assert run.summary.model_name == "tiny-random:1" and len(run.summary.curves["asr"]["d0|default"]) == 3
    assert main(["compare", str(tmp_path / "mixed"), str(tmp_path / "other"), "--out", str(tmp_path / "cmp")]) == 0
    capsys.readouterr()
    assert sweep(first, tmp_path / "mixed") == 2
    assert "holds sweep 'quick' of tiny-random:1 and the servers hold tiny-random" in capsys.readouterr().err


def test_a_tokenizer_or_chat_template_of_its_own_is_another_measurement(tmp_path):
    """The binding compares every model fact in a point's key, not the weights alone."""
    from safety_landscape.client.errors import ValidationError
    from safety_landscape.client.sweep.points import ModelFacts
    from safety_landscape.client.sweep.runner import check_store_binding

    facts = ModelFacts("m" * 64, "t" * 64, "c" * 64, "float32", "cpu")
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.put_meta("s", {"spec": {"name": "s"}, "model": facts.as_dict(), "model_name": "mine", "points": []})
        check_store_binding(store, "s", facts, "mine")  # the same facts: a resume
        check_store_binding(store, "other", dataclasses.replace(facts, model_fingerprint="x" * 64), "yours")
        for field, word in (("tokenizer_fingerprint", "tokenizer"), ("chat_template_sha256", "chat template"),
                            ("dtype", "dtype")):
            with pytest.raises(ValidationError, match=f"{word} .* there, .* on the server"):
                check_store_binding(store, "s", dataclasses.replace(facts, **{field: "bfloat16" if field == "dtype"
                                                                               else "z" * 64}), "mine")
