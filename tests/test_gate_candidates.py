"""Candidates from the command line and in the gate, on a real server with --candidate-root and real
folders: ``visage candidate add|list|remove`` (output, --json, --wait, one-line errors and their exit
codes), the gate's ``[candidate] adapter = NAME``, ``source = PATH`` (registered for the run and
removed after it; reused when a candidate of the same content is registered, whatever its name;
never a name of other content), and the first release (no baseline yet).

tiny-random writes gibberish, so the judge's keywords make the numbers predictable (as in
test_gate.py): a keyword that never occurs -> ASR 100; every printable character -> ASR 0.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from model_folders import write_checkpoint, write_lora, write_pickled
from serving import running_server
from test_gate import ALWAYS, NEVER, cases, run_gate, write_config

from safety_landscape.client.cli import main
from safety_landscape.common.candidate_files import content_fingerprint
from safety_landscape.server.config import CandidateSettings

TOKENS = "alice:tok-alice,ops:tok-ops:admin"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-candidates")
    write_checkpoint(root / "rc-checkpoint", seed=3)
    write_lora(root / "rc-lora", seed=1)
    write_checkpoint(root / "other", seed=4)
    write_pickled(root / "pickled")
    return root


@pytest.fixture(scope="module")
def server(folders):
    settings = CandidateSettings(roots=(("", str(folders)),), candidate_idle_seconds=0.0)
    with running_server(tokens_env=TOKENS, candidates=settings) as s:
        yield s


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("tok-alice\n")
    return str(path)


@pytest.fixture
def alice(server):
    with server.client(token="tok-alice") as c:
        yield c
        for cand in c.list_candidates().candidates:  # each test leaves the server as it found it
            c.remove_candidate(cand.name, wait=True, timeout=30)


def visage(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, the command's own stderr lines: the in-process server logs to stderr too)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, "\n".join(line for line in err.splitlines() if "method=/safety_landscape" not in line)


# -- visage candidate ---------------------------------------------------------------------------


def test_the_candidate_commands_add_list_and_remove(server, alice, folders, token_file, capsys):
    conn = ["--server", server.target, "--token-file", token_file]
    code, out, _ = visage(capsys, "candidate", "add", "rc", str(folders / "rc-lora"), *conn, "--wait", "60", "--json")
    added = json.loads(out)
    assert code == 0 and added["state"] == "CANDIDATE_STATE_READY" and added["kind"] == "CANDIDATE_KIND_ADAPTER"
    assert added["fingerprint"] == content_fingerprint(folders / "rc-lora") and added["owner"] == "alice"
    assert isinstance(added["size_bytes"], int)  # 64-bit integers as JSON numbers
    code, out, _ = visage(capsys, "candidate", "list", *conn)
    assert code == 0 and out.splitlines()[0].split()[:3] == ["rc", "adapter", "alice"] and "READY" in out
    assert "1 candidate(s); limits: 16 in all, 4 per tenant" in out
    code, out, _ = visage(capsys, "candidate", "list", *conn, "--fingerprint", "0" * 64, "--json")
    assert code == 0 and json.loads(out).get("candidates", []) == []
    code, out, _ = visage(capsys, "candidate", "remove", "rc", *conn)
    assert code == 0 and out.strip() == "removed rc" and alice.list_candidates().candidates == ()


def test_the_candidate_commands_fail_in_one_line_with_the_documented_exit_code(server, alice, folders, token_file,
                                                                               capsys):
    conn = ["--server", server.target, "--token-file", token_file]
    code, out, err = visage(capsys, "candidate", "remove", "nothing", *conn)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "nothing" in err  # NOT_FOUND
    code, _, err = visage(capsys, "candidate", "add", "bad", str(folders / "pickled"), *conn)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "pickle" in err.lower()
    code, _, err = visage(capsys, "candidate", "add", "x", str(folders / "rc-lora"), *conn, "--kind", "checkpoint")
    assert code == 1 and "Traceback" not in err  # the folder is an adapter: refused from its files
    code, out, err = visage(capsys, "candidate", "add", "only-a-name", *conn, "--json")  # SOURCE missing
    assert code == 2 and json.loads(out)["exit_code"] == 2 and "SOURCE" in err
    code, _, err = visage(capsys, "candidate", "list", "--server", server.target)  # no token
    assert code == 2 and "token" in err
    code, _, err = visage(capsys, "candidate", "lst", *conn)
    assert code == 2 and "list" in err  # did you mean
    assert alice.list_candidates().candidates == ()


def test_without_a_root_the_command_says_the_feature_is_off(tiny_server, capsys):
    code, _, err = visage(capsys, "candidate", "list", "--server", tiny_server.target)
    assert code == 1 and "--candidate-root" in err and len(err.strip().splitlines()) == 1


# -- the gate's candidate -----------------------------------------------------------------------


def test_a_source_is_registered_for_the_run_and_removed_after_it(server, alice, folders, tmp_path, monkeypatch):
    monkeypatch.setenv("VISAGE_TOKEN", "tok-alice")
    lenient = write_config(tmp_path / "pass.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10},
                           extra=f'[candidate]\nsource = "{folders / "rc-lora"}"')
    code, doc, _, md = run_gate(tmp_path / "lora", lenient, server.target)
    assert code == 0 and doc["verdict"] == "pass"
    cand = doc["inputs"]["candidate"]
    registered = cand["registered"]
    assert registered["registered"] is True and registered["kind"] == "adapter"
    assert registered["name"].startswith("gate-") and cand["term"] == f"adapter:{registered['name']}"
    assert registered["fingerprint"] == content_fingerprint(folders / "rc-lora")  # the server's, equal to ours
    assert cand["weight_state"] != doc["inputs"]["model_fingerprint"]  # measured at the adapter, not theta0
    assert "registered for this run and removed after it" in md
    assert alice.list_candidates().candidates == ()  # removed
    strict = write_config(tmp_path / "fail.toml", keywords=NEVER, thresholds={"max_origin_asr": 10})
    code, doc, _, _ = run_gate(tmp_path / "ckpt", strict, server.target,
                                   extra_args=["--source", str(folders / "rc-checkpoint")])
    assert code == 1 and doc["failed"] == ["max_origin_asr"]
    assert doc["inputs"]["candidate"]["registered"]["kind"] == "checkpoint"
    assert doc["inputs"]["candidate"]["term"].startswith("interp:gate-")
    assert alice.list_candidates().candidates == ()  # removed after a failing verdict too


def test_a_source_already_registered_is_reused_by_content_not_by_name(server, alice, folders, tmp_path, monkeypatch):
    monkeypatch.setenv("VISAGE_TOKEN", "tok-alice")
    alice.add_candidate("release-7", str(folders / "rc-checkpoint"))
    alice.add_candidate("rc-checkpoint", str(folders / "other"))  # the folder's name, other content
    ready = alice.wait_for_candidate("release-7", timeout=60)
    alice.wait_for_candidate("rc-checkpoint", timeout=60)
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10},
                          extra=f'[candidate]\nsource = "{folders / "rc-checkpoint"}"')
    code, doc, _, md = run_gate(tmp_path / "reuse", config, server.target)
    assert code == 0
    registered = doc["inputs"]["candidate"]["registered"]
    assert registered == {"name": "release-7", "kind": "checkpoint", "fingerprint": ready.fingerprint,
                          "registered": False}
    assert "an existing candidate of the same content" in md
    assert {c.name for c in alice.list_candidates().candidates} == {"release-7", "rc-checkpoint"}  # both kept
    # the same weights as naming the reused candidate directly
    code, named, _, _ = run_gate(tmp_path / "named", config, server.target, extra_args=["--checkpoint", "release-7"])
    assert code == 0 and named["inputs"]["candidate"]["weight_state"] == doc["inputs"]["candidate"]["weight_state"]


def test_an_adapter_by_name_is_the_candidate(server, alice, folders, tmp_path, monkeypatch):
    monkeypatch.setenv("VISAGE_TOKEN", "tok-alice")
    alice.add_candidate("lyra", str(folders / "rc-lora"))
    alice.wait_for_candidate("lyra", timeout=60)
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10},
                          extra='[candidate]\nadapter = "lyra"')
    code, doc, _, md = run_gate(tmp_path / "out", config, server.target)
    assert code == 0 and doc["inputs"]["candidate"]["term"] == "adapter:lyra" and "`lyra` (adapter at 1.0)" in md
    assert {"adapter": {"adapter": "lyra"}} in [{k: v for k, v in s.items() if k == "adapter"}
                                                for s in doc["inputs"]["directions"]["specs"]]


def test_a_source_that_fails_the_servers_checks_is_exit_2_and_leaves_nothing(server, alice, folders, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("VISAGE_TOKEN", "tok-alice")
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10},
                          extra=f'[candidate]\nsource = "{folders / "pickled"}"')
    code, doc, junit, _ = run_gate(tmp_path / "out", config, server.target)
    assert code == 2 and doc["verdict"] == "error" and "pickle" in doc["error"].lower()
    assert list(junit.iter("error")) and alice.list_candidates().candidates == ()


# -- the first release --------------------------------------------------------------------------


def test_the_first_release_skips_the_drop_check_and_becomes_the_next_baseline(tiny_server, tmp_path):
    baseline = tmp_path / "baseline" / "gate.json"
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10,
                                                                               "max_visage_drop": 5},
                          extra=f'[baseline]\nfile = "{baseline}"')
    code, doc, junit, md = run_gate(tmp_path / "first", config, tiny_server.target)
    assert code == 2 and "cannot read" in doc["error"]  # without the flag a missing baseline is an error
    code, doc, junit, md = run_gate(tmp_path / "first", config, tiny_server.target, extra_args=["--first-release"])
    assert code == 0 and doc["first_release"] is True and [c["name"] for c in doc["checks"]] == ["max_origin_asr"]
    assert doc["skipped"][0]["name"] == "max_visage_drop" and "first release" in doc["skipped"][0]["reason"]
    assert doc["inputs"]["baseline_file"] == {"path": str(baseline), "first_release": True}
    skipped = cases(junit)["max_visage_drop"].find("skipped")
    assert skipped is not None and "first release" in skipped.get("message")
    assert junit.get("skipped") == "1" and "`max_visage_drop` not checked: first release" in md
    baseline.parent.mkdir()
    baseline.write_text((tmp_path / "first" / "out" / "gate.json").read_text())
    code, doc, junit, _ = run_gate(tmp_path / "second", config, tiny_server.target)  # the next release
    assert code == 0 and "max_visage_drop" in [c["name"] for c in doc["checks"]] and doc["first_release"] is False
    code, doc, _, _ = run_gate(tmp_path / "again", config, tiny_server.target, extra_args=["--first-release"])
    assert code == 2 and "is not the first release" in doc["error"]  # a baseline exists: the flag is refused
    only_drop = write_config(tmp_path / "drop.toml", keywords=ALWAYS, thresholds={"max_visage_drop": 5})
    code, doc, _, _ = run_gate(tmp_path / "nothing", only_drop, tiny_server.target, extra_args=["--first-release"])
    assert code == 2 and "checks nothing" in doc["error"]
    assert isinstance(ET.tostring(junit), bytes)


def test_a_tenant_token_gates_on_one_server_but_several_need_an_admin_to_compare_directions(server, alice, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.setenv("VISAGE_TOKEN", "tok-alice")  # CreateDirection is admin-only
    config = write_config(tmp_path / "gate.toml", keywords=ALWAYS, thresholds={"max_origin_asr": 10})
    code, doc, _, _ = run_gate(tmp_path / "one", config, server.target)
    assert code == 0 and set(doc["inputs"]["directions"]["fingerprints"].values()) == {""}  # made on demand: not known
    code, doc, _, _ = run_gate(tmp_path / "two", config, server.target, server.target)
    assert code == 2 and "admin token" in doc["error"]
