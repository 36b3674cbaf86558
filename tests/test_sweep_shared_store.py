"""Real ``visage sweep`` processes on one ``--out`` and one real tiny-random server (loopback port).

Two processes sweeping the same spec into the same store split the work (the server evaluates
every task once); a process killed with SIGKILL holds its claimed points only until its claims
expire, then another process takes them over; ``--json`` leaves stdout to the JSON document while
the client retries a server that is still loading (its warnings go to stderr).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving import make_config

from safety_landscape.server.app import create_server
from safety_landscape.server.bootstrap import build_engine_factory

SPEC = """name = "shared"
kind = "1d-random"
[grid]
directions = 3
points = {points}
range = [-0.5, 0.5]
[direction]
seed = 7
stream = "per_tensor"
[prompts]
set = "harmful-mini"
limit = 16
[generation]
max_new_tokens = 24
"""


def sweep_process(spec: Path, target: str, out: Path, *extra: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "safety_landscape.client.cli", "--json", "sweep", str(spec), "--server", target,
           "--out", str(out), "--no-benign", "--no-progress", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)


def finish(proc: subprocess.Popen, timeout: float = 300.0) -> dict:
    stdout, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stdout
    return json.loads(stdout)  # the whole of stdout is one JSON document


def store_rows(out: Path, sql: str) -> list[tuple]:
    path = out / "results.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def server():
    config = make_config()
    app = create_server(config)
    app.load(build_engine_factory(config))
    try:
        yield app, f"127.0.0.1:{app.port}"
    finally:
        app.drain(grace=1.0)


def evaluations(app) -> float:
    return app.metrics.points_evaluated_total._value.get()


def test_two_sweeps_on_one_store_split_the_work(server, tmp_path):
    app, target = server
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(points=13))
    out = tmp_path / "out"
    tasks = 3 * 12 + 1  # 13 points on each of 3 directions, one origin shared by all
    before = evaluations(app)
    first = sweep_process(spec, target, out, log=tmp_path / "first.err")
    wait_for(lambda: store_rows(out, "SELECT COUNT(*) FROM claims") not in ([], [(0,)]), what="the first to claim work")
    second = sweep_process(spec, target, out, log=tmp_path / "second.err")
    a, b = finish(first), finish(second)
    assert a["evaluated"] > 0 and b["evaluated"] > 0, (a, b)  # both worked ...
    assert a["evaluated"] + b["evaluated"] == tasks  # ... on different tasks
    assert evaluations(app) - before == tasks  # the server evaluated each task once
    assert store_rows(out, "SELECT COUNT(*) FROM points") == [(3 * 13,)]
    assert store_rows(out, "SELECT COUNT(*) FROM claims") == [(0,)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"] == {"planned": 39, "measured": 39}


def test_a_killed_sweep_holds_its_points_only_until_its_claims_expire(server, tmp_path):
    _, target = server
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(points=9))
    out = tmp_path / "out"
    victim = sweep_process(spec, target, out, "--claim-ttl", "3", log=tmp_path / "victim.err")
    wait_for(lambda: store_rows(out, "SELECT COUNT(*) FROM points") not in ([], [(0,)]), what="the first stored point")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    stored = store_rows(out, "SELECT COUNT(*) FROM points")[0][0]
    held = store_rows(out, f"SELECT COUNT(*) FROM claims WHERE expires > {time.time()}")[0][0]
    started = time.monotonic()
    survivor = sweep_process(spec, target, out, log=tmp_path / "survivor.err")
    result = finish(survivor)
    assert store_rows(out, "SELECT COUNT(*) FROM points") == [(27,)]  # everything measured in the end
    assert store_rows(out, "SELECT COUNT(*) FROM claims") == [(0,)]
    assert result["reused"] == stored and result["written"] == 27 - stored
    assert held > 0  # the killed process still held claims when it died: the survivor took them over ...
    assert time.monotonic() - started < 120  # ... once they expired (3 s), not never


def test_json_stdout_stays_one_document_while_the_server_is_still_loading(tmp_path):
    """The client retries GetInfo (UNAVAILABLE: still loading), logging each retry to stderr."""
    config = make_config()
    app = create_server(config)  # listening, not loaded yet: every call answers UNAVAILABLE
    try:
        spec = tmp_path / "spec.toml"
        spec.write_text(SPEC.format(points=3).replace("directions = 3", "directions = 1"))
        log = tmp_path / "sweep.err"
        proc = sweep_process(spec, f"127.0.0.1:{app.port}", tmp_path / "out", log=log)
        wait_for(lambda: "retrying" in log.read_text(), what="a retry warning")
        app.load(build_engine_factory(config))
        doc = finish(proc)
        assert doc["sweep"] == "shared" and doc["written"] == 3
        err = log.read_text()
        assert "retrying" in err and "still loading" in err
    finally:
        app.drain(grace=1.0)
        if os.path.exists(tmp_path / "out" / "results.sqlite"):
            assert store_rows(tmp_path / "out", "SELECT COUNT(*) FROM points") == [(3,)]
