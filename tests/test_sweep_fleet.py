"""Sweeps on real tiny-random servers: two servers = one, failover, resume, refusals.

The tiny model writes random characters, so the refusal keywords are chosen among its frequent
outputs ("BBB" near the origin, "GG" along negative a) to give landscapes that are not flat.
"""

from __future__ import annotations

import dataclasses
import signal

import pytest
from serving import ServerProcess, running_server

from safety_landscape.client.client import Client, generation
from safety_landscape.client.errors import FleetError
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import Fleet, Grid, PromptSource, SweepSpec, run_sweep, validate
from safety_landscape.v1 import landscape_pb2 as pb

KEYWORDS = ("BBB", "GG")


def spec_1d(**changes) -> SweepSpec:
    base = SweepSpec(name="one", kind="1d-random", grid=Grid(directions=2, points=5, range=(-0.5, 0.5)),
                     prompts=PromptSource(set="harmful-mini", limit=6), benign=PromptSource(set="benign-mini", limit=4),
                     keywords=KEYWORDS, max_new_tokens=8, points_per_call=2)
    return validate(base.replace(**changes))


def spec_2d(prompt_file: str) -> SweepSpec:
    return validate(SweepSpec(name="two", kind="2d-random", grid=Grid(points=3, range=(-0.5, 0.5)),
                              prompts=PromptSource(file=prompt_file, limit=5), keywords=KEYWORDS, max_new_tokens=8,
                              system_prompts=("default", "empty")))


def evaluated(server) -> float:
    return server.app.metrics.points_evaluated_total._value.get()


def settle(server) -> None:
    """Wait until the server's job queue has run everything sent before (one owner thread, FIFO)."""
    with server.client() as c:
        c.generate(["x"], settings=generation(1))


def results(store: ResultStore, sweep: str) -> dict[str, tuple]:
    return {r.key: (r.series, r.coords, r.metric, r.value, r.total, r.detail["weight_state"], r.detail["verdicts"])
            for r in store.records(sweep)}


@pytest.fixture(scope="module")
def two_servers():
    with running_server() as a, running_server() as b:
        yield a, b


@pytest.fixture(scope="module")
def reference(two_servers, tmp_path_factory):
    """The 1D and 2D sweeps on ONE server: what every other way of running them must reproduce."""
    tmp = tmp_path_factory.mktemp("ref")
    prompts = tmp / "prompts.txt"
    prompts.write_text("\n".join(f"Explain step {i} of something harmful." for i in range(8)) + "\n")
    with ResultStore(tmp / "ref.sqlite") as store:
        r1 = run_sweep(spec_1d(), store, targets=[two_servers[0].target])
        r2 = run_sweep(spec_2d(str(prompts)), store, targets=[two_servers[0].target])
        yield {"1d": results(store, "one"), "2d": results(store, "two"), "prompts": str(prompts), "plans": (r1.plan, r2.plan)}


def test_reference_sweeps_are_complete_and_not_flat(reference):
    one, two = reference["1d"], reference["2d"]
    assert len(one) == 2 * 5 * 2 and len(two) == 3 * 3 * 2
    assert len({v[3] for v in one.values() if v[2] == "asr"}) > 1, "the 1D ASR landscape is flat: pick other keywords"
    plan_1d = reference["plans"][0]
    assert len(plan_1d.tasks) == (2 * 4 + 1) * 2  # the shared origin is evaluated once per variant


def test_two_servers_give_the_same_results_as_one(two_servers, reference, tmp_path):
    a, b = two_servers
    before = evaluated(a), evaluated(b)
    with ResultStore(tmp_path / "two.sqlite") as store:
        r1 = run_sweep(spec_1d(), store, targets=[a.target, b.target])
        r2 = run_sweep(spec_2d(reference["prompts"]), store, targets=[a.target, b.target])
        assert results(store, "one") == reference["1d"]
        assert results(store, "two") == reference["2d"]
        servers_used = {r.detail["server"] for r in store.records()}
    assert servers_used == {a.target, b.target}  # both took work from the queue
    assert evaluated(a) + evaluated(b) - sum(before) == r1.evaluated + r2.evaluated == len(r1.plan.tasks) + len(r2.plan.tasks)
    assert (r1.reused, r2.reused) == (0, 0)


def test_a_server_killed_mid_sweep_moves_its_points_to_the_other(two_servers, reference, tmp_path):
    a = two_servers[0]
    with ServerProcess("--dtype", "float32", "--device", "cpu") as doomed:
        doomed.wait_serving()
        killed = []

        def kill_after_three(progress):
            if progress.done == 3 and not killed:
                killed.append(doomed.terminate(signal.SIGKILL))

        with ResultStore(tmp_path / "kill.sqlite") as store:
            result = run_sweep(spec_1d(), store, targets=[doomed.target, a.target], progress=kill_after_three)
            assert killed == [-signal.SIGKILL]
            assert results(store, "one") == reference["1d"]
            assert result.evaluated == len(result.plan.tasks)


def test_interrupted_sweep_resumes_with_only_the_missing_points(two_servers, reference, tmp_path):
    a, b = two_servers

    def interrupt_after_four(progress):
        if progress.done == 4:
            raise KeyboardInterrupt

    with ResultStore(tmp_path / "resume.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(spec_1d(), store, targets=[a.target, b.target], progress=interrupt_after_four)
        kept = store.keys()
        assert 4 <= len(kept) < 20
        settle(a), settle(b)  # calls cancelled by the interrupt have finished or gone
        before = evaluated(a) + evaluated(b)
        result = run_sweep(spec_1d(), store, targets=[a.target, b.target])
        assert evaluated(a) + evaluated(b) - before == result.evaluated == len(result.plan.missing(kept))
        assert result.evaluated < len(result.plan.tasks)
        assert result.reused == len(kept) and result.written == 20 - len(kept)
        assert results(store, "one") == reference["1d"]
        again = run_sweep(spec_1d(), store, targets=[a.target])  # nothing left to do
        assert (again.evaluated, again.written, again.reused) == (0, 0, 20)


def test_servers_holding_different_models_are_refused_before_any_work(two_servers, tmp_path):
    a = two_servers[0]
    with running_server(model="tiny-random:1") as other:
        before = evaluated(a)
        with ResultStore(tmp_path / "x.sqlite") as store:
            with pytest.raises(FleetError) as info:
                run_sweep(spec_1d(), store, targets=[a.target, other.target])
            assert len(store) == 0
        assert evaluated(a) == before and evaluated(other) == 0
    text = str(info.value)
    assert "model_fingerprint differs" in text and a.target in text and other.target in text


def test_direction_fingerprints_must_agree(two_servers, tmp_path):
    a, b = two_servers
    # Real agreement: a server that regenerates directions and one that caches them.
    with running_server(direction_storage="regenerate") as regen, Fleet([a.client(), regen.client()]) as fleet:
        fleet.agree()
        fps = fleet.check_directions({"d0": pb.DirectionSpec(random=pb.RandomDirectionSpec(seed=123, index=0)),
                                      "d1": pb.DirectionSpec(random=pb.RandomDirectionSpec(
                                          seed=123, stream=pb.RANDOM_STREAM_REFERENCE))})
        assert len(fps) == 2
    # A disagreement cannot be made for real here: this simulates a server with another torch
    # build by altering the fingerprint one Client reports.
    before = evaluated(a) + evaluated(b)
    fleet = Fleet([a.client(), b.client()])
    real = Client.create_direction

    def other_torch(self, spec):
        return dataclasses.replace(real(self, spec), fingerprint="0" * 64)  # replies are frozen

    fleet.clients[1].create_direction = other_torch.__get__(fleet.clients[1])
    with fleet, ResultStore(tmp_path / "y.sqlite") as store:
        with pytest.raises(FleetError) as info:
            run_sweep(spec_1d(), store, fleet=fleet)
        assert len(store) == 0
    assert "direction d0 fingerprint differs" in str(info.value) and b.target in str(info.value)
    assert evaluated(a) + evaluated(b) == before


def test_missing_prompt_set_is_refused_naming_the_server(two_servers, tmp_path):
    a, b = two_servers
    with ResultStore(tmp_path / "z.sqlite") as store, pytest.raises(FleetError, match="prompt set 'advbench' is missing"):
        run_sweep(spec_1d(prompts=PromptSource(set="advbench")), store, targets=[a.target, b.target])
