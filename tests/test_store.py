"""The result store on real SQLite files: round trips, idempotence, resume, exports, threads."""

from __future__ import annotations

import copy
import csv
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from safety_landscape.client.export import export
from safety_landscape.client.records import PointRecord
from safety_landscape.client.store import CSV_COLUMNS, ResultStore, point_key, provenance

PARTS = {
    "model": "sha256:abc",
    "directions": [{"seed": 123, "norm": "layer", "index": 0}],
    "coefficients": [0.1],
    "prompt_set": "sha256:def",
    "system_prompt": "default",
    "chat_format": "llama2",
    "generation": {"max_new_tokens": 512, "greedy": True},
    "judge": {"kind": "keyword", "version": 1},
}


def make(sweep="s1", series="d0|default", coords=(0.1,), metric="asr", value=12.5, **extra):
    key = point_key(sweep=sweep, series=series, coords=list(coords), metric=metric, **extra)
    return PointRecord(
        key=key, sweep=sweep, series=series, coords=coords, metric=metric, value=value,
        total=80, detail={"verdicts": [True, False], "weight_state": "ws:1"},
        provenance={"seed": 123}, created_at=1700000000.5,
    )


def test_record_dict_round_trip():
    r = make(coords=(0.1, -0.25))
    assert PointRecord.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.a == 0.1 and r.b == -0.25 and make().b is None
    assert len({r, PointRecord.from_dict(r.to_dict())}) == 1
    with pytest.raises(ValueError, match="metric 'loss'"):
        make(metric="loss")
    with pytest.raises(ValueError, match=r"lacks field.*value"):
        PointRecord.from_dict({k: v for k, v in r.to_dict().items() if k != "value"})


def test_put_get_round_trip(tmp_path):
    path = tmp_path / "nested" / "dir" / "results.sqlite"
    with ResultStore(path) as store:
        r = make()
        assert store.get(r.key) is None
        assert store.put(r) is True
        assert store.get(r.key) == r
        assert r.key in store and len(store) == 1
        assert store.keys() == {r.key}
    assert path.exists()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_duplicate_put_keeps_the_first(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        first = make(value=10.0)
        second = PointRecord.from_dict({**first.to_dict(), "value": 99.0})
        assert store.put(first) is True
        assert store.put(second) is False
        assert store.get(first.key).value == 10.0
        assert len(store) == 1


def test_reopen_resumes(tmp_path):
    path = tmp_path / "r.sqlite"
    store = ResultStore(path)
    written = [make(coords=(a / 20,)) for a in range(-10, 11)]
    for r in written[:11]:
        store.put(r)
    store.put_meta("s1", {"spec": {"grid": 21}, "provenance": {"seed": 123}})
    store.close()  # a crash would lose nothing either: each put committed
    with ResultStore(path) as store:
        assert store.keys() == {r.key for r in written[:11]}
        todo = [r for r in written if r.key not in store]
        assert len(todo) == 10
        for r in todo:
            store.put(r)
        assert [r.coords for r in store.records("s1")] == [r.coords for r in written]
        assert store.get_meta("s1") == {"spec": {"grid": 21}, "provenance": {"seed": 123}}
        assert store.get_meta("nope") is None


def test_records_filter_and_order(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        recs = [
            make(series="d1|default", coords=(0.5,)),
            make(series="d0|default", coords=(0.05,)),
            make(series="d0|default", coords=(-0.5,)),
            make(series="d0|default", coords=(0.05,), metric="refusal"),
            make(sweep="s2", series="plane|default", coords=(0.0, 0.1)),
            make(sweep="s2", series="plane|default", coords=(0.0, -0.1)),
        ]
        for r in recs:
            store.put(r)
        got = store.records("s1", "asr")
        assert [(r.series, r.coords) for r in got] == [
            ("d0|default", (-0.5,)), ("d0|default", (0.05,)), ("d1|default", (0.5,))]
        assert [r.metric for r in store.records("s1", "refusal")] == ["refusal"]
        assert [r.coords for r in store.records("s2")] == [(0.0, -0.1), (0.0, 0.1)]
        assert len(store.records()) == 6
        store.put_meta("s3", {"only": "meta"})
        assert store.sweeps() == ["s1", "s2", "s3"]


def test_export_json_and_csv(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.put(make(coords=(0.1,), value=12.5))
        store.put(make(sweep="s2", series="plane|default", coords=(0.1, -0.3), value=100.0))
        store.put_meta("s2", {"grid": [21, 21]})
        j = Path(export(store, tmp_path / "out" / "all.json", fmt="json"))
        doc = json.loads(j.read_text())
        assert doc["schema_version"] == 1 and doc["sweeps"] == {"s1": None, "s2": {"grid": [21, 21]}}
        assert {PointRecord.from_dict(p) for p in doc["points"]} == set(store.records())
        only = json.loads(Path(export(store, tmp_path / "s2.json", fmt="json", sweep="s2")).read_text())
        assert [p["sweep"] for p in only["points"]] == ["s2"] and list(only["sweeps"]) == ["s2"]

        c = Path(export(store, tmp_path / "all.csv", fmt="csv"))
        with c.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert tuple(rows[0].keys()) == CSV_COLUMNS
        by_sweep = {r["sweep"]: r for r in rows}
        assert by_sweep["s1"]["a"] == "0.1" and by_sweep["s1"]["b"] == ""
        assert float(by_sweep["s2"]["b"]) == -0.3 and float(by_sweep["s2"]["value"]) == 100.0
        assert by_sweep["s1"]["total"] == "80" and by_sweep["s1"]["metric"] == "asr"
        assert by_sweep["s1"]["key"] == store.records("s1")[0].key
        assert float(by_sweep["s1"]["created_at"]) == 1700000000.5
        c2 = Path(export(store, tmp_path / "s1.csv", fmt="csv", sweep="s1"))
        assert len(c2.read_text().splitlines()) == 2


def test_concurrent_puts(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        results: list[bool] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            for i in range(25):
                # Every thread also writes the shared point 0: exactly one put of it may win.
                r = make(series=f"d{t}", coords=(i / 100,)) if i else make(series="shared")
                ok = store.put(r)
                with lock:
                    results.append(ok)
                assert store.get(r.key) is not None

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(store) == 8 * 24 + 1
        assert results.count(True) == 8 * 24 + 1 and results.count(False) == 7
    with ResultStore(path) as store:
        assert len(store.records()) == 193


def test_point_key_stability_and_sensitivity():
    key = point_key(**PARTS)
    assert len(key) == 64 and key == point_key(**copy.deepcopy(PARTS))
    # Pinned (= sha256 of {"coefficients":[0.1,-0.05]}): stored results depend on it.
    assert point_key(a=0.1) == point_key(**{"a": 0.1})
    assert point_key(coefficients=[0.1, -0.05]) == \
        "75e990ca3aef710b90203f905e84cefca509493a6760af790c55ca35daff897f"
    # Dict ordering, at the top and nested, does not matter.
    reordered = dict(reversed(list(PARTS.items())))
    reordered["generation"] = {"greedy": True, "max_new_tokens": 512}
    assert point_key(**reordered) == key
    # Changing any one part (or one nested value) changes the key.
    changes = {
        "model": "sha256:abd",
        "directions": [{"seed": 124, "norm": "layer", "index": 0}],
        "coefficients": [0.1 + 1e-12],
        "prompt_set": "sha256:deg",
        "system_prompt": "empty",
        "chat_format": "template",
        "generation": {"max_new_tokens": 256, "greedy": True},
        "judge": {"kind": "keyword", "version": 2},
    }
    seen = {key}
    for name, value in changes.items():
        k = point_key(**{**PARTS, name: value})
        assert k not in seen, name
        seen.add(k)
    assert point_key(**{k: v for k, v in PARTS.items() if k != "judge"}) not in seen
    assert point_key(**PARTS, extra=None) not in seen
    # 1.0 and 1 are different JSON; tuples and lists are the same array.
    assert point_key(c=1.0) != point_key(c=1)
    assert point_key(c=(0.1, 0.2)) == point_key(c=[0.1, 0.2])
    with pytest.raises(ValueError, match="non-finite"):
        point_key(c=float("nan"))
    with pytest.raises(ValueError, match="sets have no order"):
        point_key(c={1, 2})


def test_point_key_float_repr():
    import hashlib

    expected = hashlib.sha256(b'{"a":0.1,"b":[1.0,2]}').hexdigest()
    assert point_key(b=[1.0, 2], a=0.1) == expected


def test_provenance(tmp_path, monkeypatch):
    info = provenance({"seed": 123, "python": "overridden"})
    assert info["seed"] == 123 and info["python"] == "overridden"
    assert "grpcio" in info["packages"] and "protobuf" in info["packages"]
    assert info["hostname"] and info["time"] > 0 and info["platform"]
    assert isinstance(info["git_revision"], str)
    json.dumps(info)
    monkeypatch.chdir(tmp_path)  # not a git repository: revision is "" and nothing is raised
    assert provenance()["git_revision"] == ""


def test_to_pandas_gives_one_row_per_point_with_the_series_split(tmp_path):
    import math

    from safety_landscape.client.store import PANDAS_COLUMNS

    with ResultStore(tmp_path / "r.sqlite") as store:
        store.put(make(coords=(0.0,), value=10.0))
        store.put(make(coords=(0.5,), value=90.0, series="d1|custom-1a2b3c4d"))
        store.put(make(sweep="s2", coords=(0.1, -0.2), series="plane|default", metric="refusal"))
        store.put(make(coords=(0.0,), metric="perplexity", value=12.0, series="d0"))
        frame = store.to_pandas()
        only = store.to_pandas("s2")
    assert list(frame.columns) == list(PANDAS_COLUMNS) and len(frame) == 4
    row = frame.set_index("series").loc["d1|custom-1a2b3c4d"]
    assert (row["direction"], row["system_prompt"], row["a"], row["value"], row["total"]) == (
        "d1", "custom-1a2b3c4d", 0.5, 90.0, 80)
    assert row["weight_state"] == "ws:1" and math.isnan(row["b"])
    assert frame.set_index("series")["system_prompt"].isna()["d0"]  # capability: no system prompt
    assert list(only["b"]) == [-0.2] and list(only["metric"]) == ["refusal"]
    assert frame.groupby("metric")["value"].mean()["asr"] == 50.0


def test_to_pandas_without_pandas_says_how_to_get_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with ResultStore(tmp_path / "r.sqlite") as store, pytest.raises(ImportError, match="pip install pandas"):
        store.to_pandas()
