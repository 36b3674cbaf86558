"""The result store's completions, claims and damage handling, on real SQLite files.

Completions round-trip (each distinct text stored once, compressed); a store written by the first
schema (no completion tables) opens, keeps its rows, reads its verdicts back and resumes; claims
split work between owners and expire; a damaged or foreign file is a StoreError naming the file,
and the CLI answers it with exit 2 and that message, not a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from safety_landscape.client.errors import StoreError
from safety_landscape.client.export import COMPLETION_COLUMNS, export
from safety_landscape.client.records import Completion, PointRecord
from safety_landscape.client.store import ResultStore, point_key

# The schema as the first store version wrote it (before completions and claims).
FIRST_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE points (key TEXT PRIMARY KEY, sweep TEXT NOT NULL, series TEXT NOT NULL, metric TEXT NOT NULL,
    a REAL NOT NULL, b REAL, value REAL NOT NULL, total INTEGER NOT NULL, record TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX points_sweep ON points (sweep, metric, series, a, b);
CREATE TABLE sweep_meta (sweep TEXT PRIMARY KEY, meta TEXT NOT NULL);
INSERT INTO schema_version VALUES (1);
"""


def record(a: float, jailbroken: list[bool], sweep: str = "s") -> PointRecord:
    key = point_key(sweep=sweep, a=a)
    verdicts = [[i, jb, "" if jb else "I cannot"] for i, jb in enumerate(jailbroken)]
    return PointRecord(key=key, sweep=sweep, series="d0|default", coords=(a,), metric="asr",
                       value=100.0 * sum(jailbroken) / len(jailbroken), total=len(jailbroken),
                       detail={"jailbroken": sum(jailbroken), "verdicts": verdicts}, created_at=1.0)


def completions(jailbroken: list[bool], texts: list[str | None]) -> list[Completion]:
    return [Completion(i, jb, "" if jb else "I cannot", 12, 5, "length" if jb else "keyword", text, f"prompt {i}")
            for i, (jb, text) in enumerate(zip(jailbroken, texts, strict=True))]


def test_completions_round_trip_and_identical_texts_are_stored_once(tmp_path):
    verdicts = [True, False, True]
    with ResultStore(tmp_path / "r.sqlite") as store:
        first = record(0.0, verdicts)
        kept = completions(verdicts, ["Sure, here is", "I cannot help with that", "Sure, here is"])
        assert store.put(first, kept)
        assert store.completions(first.key) == kept
        # a second point answering the same: its rows are stored, its texts are not stored again
        second = record(0.1, verdicts)
        assert store.put(second, completions(verdicts, ["Sure, here is", "I cannot help with that", None]))
        assert store.completions(second.key)[2].text is None  # not kept: None, not ""
        stats = store.text_stats()
        assert stats == {"completions": 6, "texts": 2 + 3, "compressed_bytes": stats["compressed_bytes"]}
        # a duplicate put keeps the first record and its completions
        assert not store.put(first, completions(verdicts, ["other", "other", "other"]))
        assert store.completions(first.key) == kept
        rows = list(_export_rows(store, tmp_path))
    assert len(rows) == 6 and set(rows[0]) == set(COMPLETION_COLUMNS)
    assert [r["completion"] for r in rows[:3]] == ["Sure, here is", "I cannot help with that", "Sure, here is"]
    assert rows[1]["matched_keyword"] == "I cannot" and rows[1]["finish_reason"] == "keyword" and rows[0]["prompt"] == "prompt 0"


def _export_rows(store, tmp_path):
    path = export(store, tmp_path / "c.jsonl", fmt="jsonl", completions=True)
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def test_a_first_schema_store_opens_keeps_its_rows_and_resumes(tmp_path):
    path = tmp_path / "old.sqlite"
    old = record(0.0, [True, False])
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_SCHEMA)
        db.execute("INSERT INTO points VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                   (old.key, old.sweep, old.series, old.metric, 0.0, old.value, old.total,
                    json.dumps(old.to_dict()), 1.0))
        db.execute("INSERT INTO sweep_meta VALUES ('s', ?)", (json.dumps({"spec": {"kind": "1d-random"}}),))
    with ResultStore(path) as store:
        assert store.get(old.key) == old and store.get_meta("s") == {"spec": {"kind": "1d-random"}}
        # its verdicts read back as completions without text
        assert store.completions(old.key) == [Completion(0, True), Completion(1, False, "I cannot")]
        new = record(0.5, [False, False])
        assert store.put(new, completions([False, False], ["no", "no"]))  # resumes with completions
        assert store.keys() == {old.key, new.key}
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"texts", "completions", "claims"} <= tables
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]  # old clients still read it


def test_claims_split_work_between_owners_and_expire(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        keys = ["k1", "k2"]
        assert store.claim(keys, "alice", ttl=60) == "mine"
        assert store.claim(["k2"], "bob", ttl=60) == "held"
        assert store.claim(keys, "alice", ttl=60) == "mine"  # one's own claim: renewed
        assert store.claim(["k3", "k1"], "bob", ttl=60) == "held"  # all or none: k3 is not taken either
        assert "k3" not in store.claims()
        store.put(PointRecord(key="k1", sweep="s", series="d0", coords=(0.0,), metric="asr", value=0, total=1))
        assert "k1" not in store.claims()  # storing a point releases its claim
        assert store.claim(["k1"], "bob", ttl=60) == "done"
        # a holder that stops renewing loses its claims when they expire
        assert store.claim(["k4"], "carol", ttl=0.2) == "mine"
        time.sleep(0.3)
        assert store.claim(["k4"], "bob", ttl=60) == "mine" and store.claims()["k4"][0] == "bob"
        assert store.renew_claims("bob", ttl=60) == 1
        store.release_claims("alice")
        assert set(store.claims()) == {"k4"}


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\x07" * 4000])
def test_a_damaged_store_is_a_clear_error_naming_the_file(tmp_path, content):
    path = tmp_path / "results.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError) as err:
        ResultStore(path)
    message = str(err.value)
    assert str(path) in message and "mv " in message and "re-run" in message


def test_the_cli_answers_a_damaged_store_with_exit_2_and_no_traceback(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"\x00garbage" * 512)
    for command in (["export", str(out), "--completions", "--format", "csv"], ["rescore", str(out)]):
        done = subprocess.run([sys.executable, "-m", "safety_landscape.client.cli", *command],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and str(out / "results.sqlite") in done.stderr
        assert "not a readable results store" in done.stderr and done.stdout == ""


def test_export_to_stdout(tmp_path, capsys):
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.put(record(0.0, [True]), completions([True], ["Sure"]))
        assert export(store, "-", fmt="csv", completions=True) == "-"
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(",") == list(COMPLETION_COLUMNS) and out[1].endswith(",prompt 0,Sure" + "," * 7)  # no referee verdicts: empty
    assert not (tmp_path / "-").exists()


def test_a_live_client_keeps_its_claims_past_their_ttl_and_releases_them_on_exit(tmp_path):
    from safety_landscape.client.sweep.claims import Claims

    with ResultStore(tmp_path / "r.sqlite") as store:
        with Claims(store, ttl=0.6) as mine:
            assert mine.take(["k"]) == "mine"
            time.sleep(1.5)  # more than twice the ttl: the heartbeat renewed it
            assert store.claim(["k"], "other", ttl=60) == "held"
        assert store.claims() == {}  # released on exit
        assert store.claim(["k"], "other", ttl=60) == "mine"
