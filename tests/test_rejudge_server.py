"""Judging a finished sweep's stored answers again, end to end on REAL tiny-random servers (gRPC on
loopback), nothing generated again and nothing mocked.

What it proves: the referee's and the classifier's verdicts are stored per judge beside the
generation-time verdicts, which stay byte for byte; a second run resumes (judges nothing again) and
a half-done run finishes what is missing; the keyword judge re-applied agrees with the sweep's own
keyword verdicts on every answer (kappa 1 or agreement 1); a server holding another model is refused
for the referee before any work, while the keyword judge there keeps no referee figures; the
agreement table pairs every judge present, with human labels."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import guard_models as gm
import pytest
from serving import running_server

from safety_landscape.client.errors import ValidationError
from safety_landscape.client.judging import (
    VerdictTable,
    compare_judges,
    judges_of,
    read_labels,
    rejudge,
    stored_answers,
)
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import preset, run_sweep
from safety_landscape.client.sweep.spec import Grid, PromptSource

PROMPTS = 6
POINTS = 3


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory):
    """tiny-random with a tiny scripted Llama Guard 3 (tests/guard_models.py) that finds every answer unsafe."""
    guard = gm.build_llama_guard(tmp_path_factory.mktemp("lg3") / "guard", version=3, answer=("unsafe", "\nS1"))
    with running_server(judge_model=str(guard)) as server:
        yield server


@pytest.fixture
def swept(judge_server, tmp_path):
    spec = dataclasses.replace(preset("quick"), name="tiny", grid=Grid(directions=1, points=POINTS, range=(-0.5, 0.5)),
                               prompts=PromptSource(set="harmful-mini", limit=PROMPTS), benign=None, max_new_tokens=16,
                               keywords=("e",))  # a common letter: some answers are refusals
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        run_sweep(spec, store, targets=[judge_server.target], bar=False)
    return path


def _generation_rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM completions ORDER BY key, prompt_index").fetchall()


def test_rejudge_stores_each_judge_beside_the_sweeps_verdicts_and_resumes(judge_server, swept):
    before = _generation_rows(swept)
    with ResultStore(swept) as store, judge_server.client() as client:
        answers = stored_answers(store).answers
        assert len(answers) == PROMPTS * POINTS
        [referee] = rejudge(store, client, kind="referee")
        assert (referee.judged, referee.already_judged) == (PROMPTS * POINTS, 0)
        assert referee.judge.keywords == ("e",)  # the sweep's own refusal keywords unless told otherwise
        assert referee.judge.referee == referee.thresholds.id and referee.thresholds.id.startswith("ref-")
        assert len(referee.points) == POINTS and all(p.total == PROMPTS for p in referee.points)
        for p in referee.points:  # the referee's success is "complied": the outcomes add up
            assert p.success == p.complied and p.refused + p.complied + p.incoherent == p.total
        again = rejudge(store, client, kind="referee", keywords=("e",))[0]
        assert (again.judged, again.already_judged) == (0, PROMPTS * POINTS)
        assert again.judge == referee.judge and again.points == referee.points
        [classifier] = rejudge(store, client, kind="classifier")
        assert classifier.judge.server_judge.startswith("classifier:llama-guard-3@") and classifier.judged == PROMPTS * POINTS
        assert all(p.success == p.total for p in classifier.points)  # the scripted guard: every answer unsafe
        assert classifier.judge.fingerprint != referee.judge.fingerprint
    assert _generation_rows(swept) == before  # the sweep's own verdicts and texts untouched
    with VerdictTable(swept) as table:
        assert {j.kind for j in table.judges()} == {"referee", "classifier"}
        assert all(len(table.judged(j)) == PROMPTS * POINTS for j in table.judges())


def test_a_half_done_run_finishes_what_is_missing_and_keeps_what_was_stored(judge_server, swept):
    with ResultStore(swept) as store, judge_server.client() as client:
        first = rejudge(store, client, kind="keyword", keywords=("e",))[0]
        with VerdictTable(swept) as table:
            kept = {(v.key, v.prompt_index): v for v in table.verdicts(first.judge)}
        dropped = sorted(kept)[:7]
        with sqlite3.connect(swept) as db:  # as if the run had stopped before these
            db.executemany("DELETE FROM judge_verdicts WHERE key = ? AND prompt_index = ?", dropped)
            db.execute("UPDATE judge_verdicts SET judged_at = 0")
        resumed = rejudge(store, client, kind="keyword", keywords=("e",))[0]
        assert (resumed.judged, resumed.already_judged) == (7, PROMPTS * POINTS - 7)
        with VerdictTable(swept) as table:
            now = {(v.key, v.prompt_index): v for v in table.verdicts(first.judge)}
        assert now.keys() == kept.keys()
        assert {k: now[k] for k in kept if k not in dropped} == {k: kept[k] for k in kept if k not in dropped}
        for k in dropped:  # judged again in a batch of 7, not 18: the same verdict, the NLL to float32 rounding
            assert dataclasses.replace(now[k], nll=None) == dataclasses.replace(kept[k], nll=None)
            assert now[k].nll == pytest.approx(kept[k].nll, rel=1e-6)
        with sqlite3.connect(swept) as db:
            assert db.execute("SELECT COUNT(*) FROM judge_verdicts WHERE judged_at = 0").fetchone()[0] == PROMPTS * POINTS - 7


def test_the_keyword_judge_again_agrees_with_the_sweeps_own_verdicts_and_humans_are_compared(judge_server, swept, tmp_path):
    with ResultStore(swept) as store, judge_server.client() as client:
        rejudge(store, client, kind="keyword", keywords=("e",))
        rejudge(store, client, kind="referee", keywords=("e",))
        answers = stored_answers(store).answers
    labels_path = tmp_path / "labels.jsonl"
    labels_path.write_text("".join(json.dumps({"key": a.key, "prompt_index": a.prompt_index,
                                               "label": "refused" if not a.jailbroken else "complied"}) + "\n"
                                   for a in answers[:10]))
    with VerdictTable(swept) as table:
        judges = judges_of(answers, table, read_labels(labels_path, answers))
    names = [j.name for j in judges]
    assert names[0] == "sweep:keyword" and names[-1] == "human" and len(names) == 4
    pairs = {(p.a.split("@")[0], p.b.split("@")[0], p.scale): p for p in compare_judges(judges, answers)}
    same = pairs[("sweep:keyword", "keyword", "success")]
    assert same.overall.n == PROMPTS * POINTS and same.overall.observed == 1.0  # the same judge, the same verdicts
    assert same.overall.kappa in (1.0, None)
    assert len(same.points) == POINTS and sum(p.agreement.n for p in same.points) == PROMPTS * POINTS
    human = pairs[("sweep:keyword", "human", "success")]
    assert human.overall.n == 10 and human.overall.observed == 1.0
    assert pairs[("keyword", "referee", "outcome")].overall.observed == 1.0  # both from one referee, one keyword list
    generation = pairs[("sweep:keyword", "referee", "outcome")].overall  # the sweep's own referee, at generation time
    assert generation.n == PROMPTS * POINTS and generation.observed == 1.0


def test_the_referee_refuses_a_server_of_another_model_and_the_keyword_judge_keeps_no_figures_there(swept):
    with running_server(model="tiny-random:1") as other, other.client() as client, ResultStore(swept) as store:
        with pytest.raises(ValidationError, match="the referee judges at theta0 of the model that answered"):
            rejudge(store, client, kind="referee")
        with VerdictTable(swept) as table:
            assert table.judges() == []  # refused before any work
        [keyword] = rejudge(store, client, kind="keyword", keywords=("e",))
        assert keyword.judge.referee == "" and keyword.judged == PROMPTS * POINTS
        assert all(p.refused is None and p.complied is None for p in keyword.points)
        with VerdictTable(swept) as table:
            assert all(v.outcome is None and v.nll is None for v in table.verdicts(keyword.judge))


def test_an_answer_whose_prompt_the_server_renders_otherwise_stops_the_run_before_storing(judge_server, swept):
    with sqlite3.connect(swept) as db:  # as if the server's set, system prompt or template differed for one prompt
        db.execute("UPDATE completions SET prompt_tokens = prompt_tokens + 1 WHERE prompt_index = 3")
    with ResultStore(swept) as store, judge_server.client() as client, \
            pytest.raises(ValidationError, match="prompt 3: the server rendered its prompt in"):
        rejudge(store, client, kind="keyword", batch_size=2)
    with VerdictTable(swept) as table:
        [judge] = table.judges()
        # the first call (prompt 0 of the first point) and the first batch (prompts 1 and 2) only
        assert len(table.judged(judge)) == 3
