"""Candidates registered at run time, on a real server with real files: where they may come from
(roots, symlinks, ``..``), what is read (safetensors only, shapes, dtype, architecture), the limits,
who sees and uses what, loading off the worker, removal of a candidate in use, expiry, and the
feature off. The SIGHUP reload of the registry file is ``test_registry_reload.py``."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest
import torch
from model_folders import (
    write_checkpoint,
    write_lora,
    write_other_architecture,
    write_other_shapes,
    write_pickled,
    write_sparse,
)
from serving import running_server, wait_for, worker_held

from safety_landscape.client import client as C
from safety_landscape.client.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from safety_landscape.common.candidate_files import content_fingerprint
from safety_landscape.server.config import CandidateSettings
from safety_landscape.v1 import landscape_pb2 as pb

TOKENS = "alice:tok-alice,bob:tok-bob,ops:tok-ops:admin"
PROMPTS = ["Hello there", "Tell me a story"]
GREEDY = C.generation(6)
READY, LOADING = "ready", "loading"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """pub/: a root for every tenant; alice/: alice's own root; outside/: no root at all."""
    base = tmp_path_factory.mktemp("candidates")
    pub, alice, outside = base / "pub", base / "alice", base / "outside"
    write_checkpoint(pub / "second")
    write_lora(pub / "lora")
    write_other_shapes(pub / "wrong")
    write_other_architecture(pub / "gpt2")
    write_pickled(pub / "pickled")
    write_sparse(pub / "sparse")
    write_checkpoint(alice / "mine", seed=2)
    write_checkpoint(outside / "second")
    (pub / "escape").symlink_to(outside / "second", target_is_directory=True)  # a folder symlinked out
    (pub / "sneaky").mkdir()  # a real folder whose weights file is a symlink out of the root
    (pub / "sneaky" / "config.json").write_bytes((outside / "second" / "config.json").read_bytes())
    (pub / "sneaky" / "model.safetensors").symlink_to(outside / "second" / "model.safetensors")
    (pub / "fifo").mkdir()  # model.safetensors is a FIFO: opening it must not block
    (pub / "fifo" / "config.json").write_bytes((outside / "second" / "config.json").read_bytes())
    os.mkfifo(pub / "fifo" / "model.safetensors")
    return {"base": base, "pub": pub, "alice": alice, "outside": outside}


def settings(folders, **overrides) -> CandidateSettings:
    roots = (("", str(folders["pub"])), ("alice", str(folders["alice"])))
    return CandidateSettings(**{"roots": roots, "candidate_idle_seconds": 0.0, **overrides})


@pytest.fixture(scope="module")
def server(folders):
    with running_server(tokens_env=TOKENS, candidates=settings(folders)) as s:
        yield s


@pytest.fixture
def alice(server):
    with server.client(token="tok-alice") as c:
        yield c
        for cand in c.list_candidates().candidates:  # each test leaves the server as it found it
            if cand.owner == "alice":
                c.remove_candidate(cand.name, wait=True, timeout=30)


@pytest.fixture
def bob(server):
    with server.client(token="tok-bob") as c:
        yield c
        for cand in c.list_candidates().candidates:
            if cand.owner == "bob":
                c.remove_candidate(cand.name, wait=True, timeout=30)


@pytest.fixture
def ops(server):
    with server.client(token="tok-ops") as c:
        yield c
        for cand in c.list_candidates().candidates:
            if cand.operator:
                c.remove_candidate(cand.name, owner=cand.owner, wait=True, timeout=30)


def interp(name: str, coefficient: float = 1.0) -> pb.Perturbation:
    return C.perturbation([(C.interpolation_direction(name), coefficient)])


def texts(resp: pb.GenerateResponse) -> list[str]:
    return [c.text for c in resp.completions]


# -- the feature off ------------------------------------------------------------------------------


def test_without_a_root_every_candidate_call_says_the_feature_is_off(client):
    for call in (lambda: client.add_candidate("x", "/tmp"), client.list_candidates, lambda: client.remove_candidate("x")):
        with pytest.raises(FailedPreconditionError, match="--candidate-root"):
            call()


# -- where a source may come from ------------------------------------------------------------------


def test_a_source_must_resolve_under_a_root_the_caller_may_use(alice, bob, folders):
    pub, outside = folders["pub"], folders["outside"]
    refused = [
        str(outside / "second"),  # outside every root
        f"{pub}/../outside/second",  # .. leads out
        str(pub / "escape"),  # a folder symlinked out of the root
        str(outside / "does-not-exist"),  # outside, missing: the same answer as outside, present
        "/etc",
    ]
    for source in refused:
        with pytest.raises(PermissionDeniedError, match="not under a candidate root") as err:
            alice.add_candidate("x", source)
        assert str(outside) not in err.value.details.split("roots:")[1]  # lists only alice's own roots
    with pytest.raises(PermissionDeniedError, match="resolves outside"):  # one file symlinked out
        alice.add_candidate("x", str(pub / "sneaky"))
    with pytest.raises(PermissionDeniedError):  # alice's root is hers alone
        bob.add_candidate("x", str(folders["alice"] / "mine"))
    with pytest.raises(NotFoundError, match="not a folder"):  # missing, under a root she may use
        alice.add_candidate("x", str(pub / "nothing-here"))
    with pytest.raises(InvalidArgumentError, match="absolute path"):
        alice.add_candidate("x", "relative/../path/x")
    assert alice.add_candidate("mine", str(folders["alice"] / "mine")).state in (LOADING, READY)
    assert alice.list_candidates().candidates[0].owner == "alice"


def test_only_safetensors_of_the_served_architecture_and_shapes_are_accepted(alice, folders):
    pub = folders["pub"]
    cases = [
        ("pickled", "pickled weights only"),
        ("wrong", r"shape \(259, 32\)"),
        ("gpt2", "'gpt2' model"),
        ("fifo", "not a regular file"),
    ]
    for folder, message in cases:
        started = time.monotonic()
        with pytest.raises(FailedPreconditionError, match=message):
            alice.add_candidate(folder, str(pub / folder))
        assert time.monotonic() - started < 10  # refused from the headers, never waiting on the FIFO
    with pytest.raises(InvalidArgumentError, match=r"adapter_config\.json"):
        alice.add_candidate("lora", str(pub / "lora"), kind="checkpoint")
    assert alice.list_candidates().candidates == ()


def test_a_quantised_checkpoint_is_refused_by_its_dtype(alice, folders, tmp_path):
    from safetensors.torch import load_file, save_file

    pub = folders["pub"]
    quantised = pub / "int8"
    quantised.mkdir(exist_ok=True)
    (quantised / "config.json").write_bytes((pub / "second" / "config.json").read_bytes())
    state = load_file(str(pub / "second" / "model.safetensors"))
    save_file({k: v.to(dtype=torch.int8) for k, v in state.items()}, str(quantised / "model.safetensors"))
    with pytest.raises(FailedPreconditionError, match="int8"):
        alice.add_candidate("q", str(quantised))


# -- a checkpoint and an adapter, used like the registry's entries ------------------------------------


def test_a_checkpoint_candidate_loads_off_the_worker_and_is_an_interpolation_target(server, alice, folders):
    source = folders["pub"] / "second"
    with worker_held(server.app.host):  # the model's worker is busy: loading must not need it
        added = alice.add_candidate("cand", str(source))
        assert added.state in (LOADING, READY) and added.size_bytes == sum(
            f.stat().st_size for f in source.iterdir() if f.name in ("config.json", "model.safetensors"))
        ready = alice.wait_for_candidate("cand", timeout=60)
    assert ready.state == READY and ready.kind == "checkpoint" and ready.dtype == "float32"
    assert ready.fingerprint == content_fingerprint(source)  # a client can compute it from the same folder
    assert [c.name for c in alice.list_candidates(fingerprint=ready.fingerprint).candidates] == ["cand"]
    assert alice.list_candidates(fingerprint="0" * 64).candidates == ()
    at_target = alice.generate(PROMPTS, settings=GREEDY, at=interp("cand"))
    with running_server(model="tiny-random:1") as other, other.client() as c1:
        target = c1.generate(PROMPTS, settings=GREEDY)
    assert texts(at_target) == texts(target) != texts(alice.generate(PROMPTS, settings=GREEDY))


def test_an_adapter_candidate_is_an_adapter_term(server, alice, ops, folders):
    alice.add_candidate("lora", str(folders["pub"] / "lora"))
    ready = alice.wait_for_candidate("lora", timeout=60)
    assert ready.state == READY and ready.kind == "adapter" and ready.memory_bytes > 0
    merged = alice.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(C.adapter_direction("lora"), 1.0)]))
    assert texts(merged) != texts(alice.generate(PROMPTS, settings=GREEDY))
    with pytest.raises(InvalidArgumentError, match="is an adapter"):
        alice.generate(PROMPTS, settings=GREEDY, at=interp("lora"))
    # The weights are the adapter merged: the same bits as the operator's copy of the same files.
    ops.add_candidate("op-lora", str(folders["pub"] / "lora"))
    ops.wait_for_candidate("op-lora", timeout=60)
    mine = ops.set_coefficients(C.perturbation([(C.adapter_direction("op-lora"), 1.0)]), verify=True)
    direct = ops.generate(PROMPTS, settings=GREEDY, at=C.perturbation([(C.adapter_direction("op-lora"), 1.0)]))
    assert texts(direct) == texts(merged) and mine.weights_sha256
    ops.set_coefficients(C.perturbation())


# -- limits ---------------------------------------------------------------------------------------


def test_count_byte_and_memory_limits_name_their_setting(folders):
    pub = folders["pub"]
    with running_server(candidates=settings(folders, max_candidates=2)) as s, s.client() as c:
        with pytest.raises(ResourceExhaustedError, match="max_candidate_bytes_per_tenant") as err:
            c.add_candidate("sparse", str(pub / "sparse"))  # 2 TiB claimed, nothing read
        assert "2048.00 GiB" in err.value.details
        c.add_candidate("a", str(pub / "second"))
        c.add_candidate("b", str(pub / "lora"))
        with pytest.raises(ResourceExhaustedError, match=r"\(max_candidates\)"):
            c.add_candidate("c", str(pub / "second"))
        with pytest.raises(AlreadyExistsError):
            c.add_candidate("a", str(pub / "second"))
    limited = settings(folders, max_candidates_per_tenant=1, max_candidate_bytes=10**6)
    with running_server(tokens_env=TOKENS, candidates=limited) as s, s.client(token="tok-alice") as a, \
            s.client(token="tok-bob") as b:
        a.add_candidate("a", str(pub / "second"))
        with pytest.raises(ResourceExhaustedError, match="max_candidates_per_tenant"):
            a.add_candidate("b", str(pub / "lora"))
        b.add_candidate("a", str(pub / "second"))  # bob's own "a": alice's name is no clash for him
        with s.client(token="tok-ops") as o, pytest.raises(ResourceExhaustedError, match=r"\(max_candidate_bytes\)"):
            o.add_candidate("c", str(pub / "second"))  # 3 x 0.36 MB > 1 MB in all


def test_an_adapter_is_admitted_only_if_its_factors_fit_the_plans_free_host_memory(server, alice, folders):
    store = server.engine.sources.candidates
    room = store.room_bytes
    store.room_bytes = 1000  # as if the memory plan left 1000 bytes of host memory
    try:
        with pytest.raises(ResourceExhaustedError, match="memory_plan"):
            alice.add_candidate("lora", str(folders["pub"] / "lora"))
        alice.add_candidate("cand", str(folders["pub"] / "second"))  # a checkpoint holds no memory: a direction
    finally:
        store.room_bytes = room


# -- who sees, uses and removes what -----------------------------------------------------------------


def test_tenants_see_and_use_only_their_own_and_the_operators(alice, bob, ops, folders):
    pub = folders["pub"]
    alice.add_candidate("cand", str(pub / "second"))
    alice.wait_for_candidate("cand", timeout=60)
    assert [c.name for c in bob.list_candidates().candidates] == []
    with pytest.raises(NotFoundError) as theirs:
        bob.generate(PROMPTS, settings=GREEDY, at=interp("cand"))
    with pytest.raises(NotFoundError) as nobodys:
        bob.generate(PROMPTS, settings=GREEDY, at=interp("cane"))
    assert theirs.value.details.replace("'cand'", "'?'") == nobodys.value.details.replace("'cane'", "'?'")
    with pytest.raises(NotFoundError) as removal:
        bob.remove_candidate("cand", owner="alice")
    assert "no candidate named 'cand'" in removal.value.details
    with pytest.raises(NotFoundError):
        bob.remove_candidate("cand")
    bob.add_candidate("cand", str(pub / "lora"))  # the same name, his own: nothing says alice has one
    assert {(c.owner, c.name) for c in ops.list_candidates().candidates} == {("alice", "cand"), ("bob", "cand")}
    ops.add_candidate("shared", str(pub / "second"))
    ops.wait_for_candidate("shared", timeout=60)
    assert "shared" in [c.name for c in alice.list_candidates().candidates]
    at_shared = alice.generate(PROMPTS, settings=GREEDY, at=interp("shared"))
    at_own = alice.generate(PROMPTS, settings=GREEDY, at=interp("cand"))
    assert texts(at_shared) == texts(at_own)  # the same files
    assert at_shared.weight_state.fingerprint != at_own.weight_state.fingerprint  # but other owners: other ids
    with pytest.raises(PermissionDeniedError, match="operator's"):
        alice.remove_candidate("shared")
    with pytest.raises(AlreadyExistsError):
        alice.add_candidate("shared", str(pub / "second"))
    ops.remove_candidate("cand", owner="bob")
    assert [c.owner for c in bob.list_candidates().candidates if c.name == "cand"] == []


def test_a_candidate_in_use_is_never_removed_under_a_call(server, alice, folders):
    alice.add_candidate("cand", str(folders["pub"] / "second"))
    alice.wait_for_candidate("cand", timeout=60)
    results: dict[str, object] = {}
    with worker_held(server.app.host):
        call = threading.Thread(target=lambda: results.update(
            gen=alice.generate(PROMPTS, settings=GREEDY, at=interp("cand"))))
        call.start()  # queued behind the held worker, holding the candidate
        wait_for(lambda: server.app.host.queue_depth() == 1, what="the call to queue")
        assert alice.list_candidates().candidates[0].in_use == 1
        with pytest.raises(FailedPreconditionError, match="used by 1 call"):
            alice.remove_candidate("cand")
        remover = threading.Thread(target=lambda: results.update(removed=alice.remove_candidate("cand", wait=True)))
        remover.start()
        wait_for(lambda: alice.list_candidates().candidates[0].state == "removing", what="REMOVING")
        with pytest.raises(NotFoundError, match="being removed"):
            alice.generate(PROMPTS, settings=GREEDY, at=interp("cand"))
        assert "removed" not in results
    call.join(60)
    remover.join(60)
    assert texts(results["gen"])  # the call that held it ran, at the candidate's weights
    assert results["removed"] is True and alice.list_candidates().candidates == ()
    with pytest.raises(NotFoundError):
        alice.generate(PROMPTS, settings=GREEDY, at=interp("cand"))


def test_a_stream_of_points_holds_its_candidate_once_until_it_ends(server, alice, folders):
    alice.add_candidate("cand", str(folders["pub"] / "second"))
    alice.wait_for_candidate("cand", timeout=60)
    settings = C.evaluation_settings(prompts=["Tell me a story"], max_new_tokens=2)
    points = [interp("cand", 0.1 * i) for i in range(1, 6)]
    results: list[object] = []
    with worker_held(server.app.host):  # the stream's points wait; it holds the candidate already
        reader = threading.Thread(target=lambda: results.extend(alice.evaluate_points(settings, points)))
        reader.start()
        wait_for(lambda: alice.list_candidates().candidates[0].in_use == 1, what="the stream to hold it")
        with pytest.raises(FailedPreconditionError, match="used by 1 call"):  # once, not once per point
            alice.remove_candidate("cand")
    reader.join(60)
    assert len(results) == 5
    assert alice.list_candidates().candidates[0].in_use == 0
    assert alice.remove_candidate("cand")


def test_a_wait_that_outlasts_the_deadline_leaves_the_candidate_ready(server, alice, folders):
    alice.add_candidate("cand", str(folders["pub"] / "second"))
    alice.wait_for_candidate("cand", timeout=60)
    with worker_held(server.app.host):
        call = threading.Thread(target=lambda: alice.generate(PROMPTS, settings=GREEDY, at=interp("cand")))
        call.start()
        wait_for(lambda: server.app.host.queue_depth() == 1, what="the call to queue")
        with pytest.raises(Exception, match="DEADLINE_EXCEEDED"):
            alice.remove_candidate("cand", wait=True, timeout=1.0)
        # the server's wait ends at the same deadline as the caller's, a moment after the caller gives up
        wait_for(lambda: alice.list_candidates().candidates[0].state == READY, timeout=10, what="READY again")
    call.join(60)


def test_removing_a_candidate_forgets_its_directions(server, ops, folders):
    ops.add_candidate("shared", str(folders["pub"] / "second"))
    ops.wait_for_candidate("shared", timeout=60)
    held = ops.create_direction(C.interpolation_direction("shared"))
    assert held.id in {d.id for d in ops.list_directions().directions}
    ops.remove_candidate("shared")
    assert held.id not in {d.id for d in ops.list_directions().directions}


# -- expiry ----------------------------------------------------------------------------------------


def test_an_idle_candidate_expires_one_in_use_does_not(folders):
    with running_server(candidates=settings(folders, candidate_idle_seconds=1.0)) as s, s.client() as c:
        c.add_candidate("cand", str(folders["pub"] / "second"))
        assert c.wait_for_candidate("cand", timeout=60).expires_unix > time.time()
        with worker_held(s.app.host):
            call = threading.Thread(target=lambda: c.generate(PROMPTS, settings=GREEDY, at=interp("cand")))
            call.start()
            wait_for(lambda: s.app.host.queue_depth() == 1, what="the call to queue")
            time.sleep(2.0)  # past the idle time, but in use
            assert [x.name for x in c.list_candidates().candidates] == ["cand"]
        call.join(60)
        wait_for(lambda: c.list_candidates().candidates == (), timeout=30, what="the candidate to expire")


# -- a Hugging Face id from the server's cache ------------------------------------------------------


def _hub_cache(cache, folder, repo="org/tiny", commit="0123456789abcdef0123456789abcdef01234567"):
    """The layout `hf download` writes: blobs, a snapshot of symlinks to them, refs/main."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        blob = repo_dir / "blobs" / f"blob-{f.name}"
        blob.write_bytes(f.read_bytes())
        (snapshot / f.name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


def test_a_hub_id_is_read_from_the_cache_only_under_a_root(alice, folders, monkeypatch):
    inside = folders["pub"] / "hf-cache"
    snapshot = _hub_cache(inside, folders["pub"] / "second")
    monkeypatch.setenv("HF_HUB_CACHE", str(inside))
    alice.add_candidate("hub", "org/tiny@main")
    ready = alice.wait_for_candidate("hub", timeout=60)
    assert ready.state == READY and ready.fingerprint == content_fingerprint(snapshot)
    assert ready.fingerprint == content_fingerprint(folders["pub"] / "second")  # the same bytes, the same content
    with pytest.raises(NotFoundError, match="not in the local Hugging Face cache"):
        alice.add_candidate("nohub", "org/absent")
    outside = folders["outside"] / "hf-cache"
    _hub_cache(outside, folders["pub"] / "second")
    monkeypatch.setenv("HF_HUB_CACHE", str(outside))
    with pytest.raises(PermissionDeniedError):
        alice.add_candidate("hub2", "org/tiny")


# -- settings --------------------------------------------------------------------------------------


def test_roots_from_flags_and_the_environment_and_a_missing_root_refused_at_start(tmp_path):
    from safety_landscape.server.bootstrap import check_config
    from safety_landscape.server.config_parser import build_parser, config_from_args, parse_flags

    args = parse_flags(build_parser(), ["--candidate-root", str(tmp_path), "--candidate-root", f"team-a={tmp_path}"])
    assert config_from_args(args, environ={}).candidates.roots == (("", str(tmp_path)), ("team-a", str(tmp_path)))
    env = {"VISAGE_CANDIDATE_ROOTS": f"{tmp_path},team-b={tmp_path}", "VISAGE_MAX_CANDIDATES": "3"}
    config = config_from_args(parse_flags(build_parser(), []), environ=env)
    assert config.candidates.roots == (("", str(tmp_path)), ("team-b", str(tmp_path)))
    assert config.candidates.max_candidates == 3 and config.candidates.enabled
    with pytest.raises(SystemExit):
        parse_flags(build_parser(), ["--candidate-root", "=/x"])  # a tenant's root needs the tenant
    with pytest.raises(SystemExit):
        parse_flags(build_parser(), ["--candidate-ro", str(tmp_path)])  # no abbreviations
    missing = dataclasses.replace(config, candidates=CandidateSettings(roots=(("", str(tmp_path / "gone")),)))
    with pytest.raises(ValueError, match="not a folder"):
        check_config(missing)
