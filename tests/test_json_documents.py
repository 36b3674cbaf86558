"""The typed documents (a sweep's metadata, summary.json) read every file this client writes and
write it back unchanged, keep the keys a later client adds, and refuse a value of the wrong type
by naming where it is, so a damaged document is an error, never a silently wrong number."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from safety_landscape.client.errors import StoreError
from safety_landscape.client.json_codec import ABSENT_IF_NONE, JsonCodec
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep.stored import load_sweep
from safety_landscape.client.sweep.summary_doc import SweepSummary
from safety_landscape.client.sweep_meta import PlannedPoint, SweepMeta

GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs"


@pytest.mark.parametrize("name", ["grid", "walk", "plane", "old"])
def test_every_summary_file_reads_back_and_writes_out_unchanged(name):
    doc = json.loads((GOLDEN / f"{name}.summary.json").read_text())
    summary = SweepSummary.from_json(doc)
    assert summary.to_json() == doc
    assert summary.visage.series and summary.kind == doc["kind"]


def test_every_stored_metadata_reads_back_and_writes_out_unchanged():
    sweeps = json.loads((GOLDEN / "all.points.json").read_text())["sweeps"]
    assert set(sweeps) == {"grid", "walk", "plane", "old"}  # a current run's metadata and an early client's
    for name, raw in sweeps.items():
        meta = SweepMeta.from_json(raw)
        assert meta.to_json() == raw, name
        assert meta.name == name and all(isinstance(p, PlannedPoint) for p in meta.points)
    old = SweepMeta.from_json(sweeps["old"])
    assert old.provenance is None and old.model is None and old.refined_points is None  # absent, not invented
    walk = SweepMeta.from_json(sweeps["walk"])
    assert walk.spec.grid.adaptive and walk.refined_points and walk.refined_points[0].coords == (0.15,)


def test_keys_a_later_client_adds_are_kept():
    raw = json.loads((GOLDEN / "all.points.json").read_text())["sweeps"]["grid"]
    later = {**raw, "outcomes": {"coherent": True}, "provenance": {**raw["provenance"], "gpu_hours": 1.5}}
    meta = SweepMeta.from_json(later)
    assert meta.extra == {"outcomes": {"coherent": True}} and meta.provenance is not None
    assert meta.provenance.extra == {"gpu_hours": 1.5}
    assert meta.to_json() == later


def test_a_mistyped_or_missing_value_is_an_error_naming_it():
    doc = json.loads((GOLDEN / "grid.summary.json").read_text())
    doc["points"]["measured"] = "many"
    with pytest.raises(ValueError, match=r"PointCounts\.measured: expected int, got str"):
        SweepSummary.from_json(doc)
    with pytest.raises(ValueError, match="SweepSummary: the JSON has no 'visage'"):
        SweepSummary.from_json({"sweep": "s", "kind": "1d-random", "model_name": "", "model": {}})
    with pytest.raises(ValueError, match="a planned point is"):
        SweepMeta.from_json({"spec": {"name": "s"}, "points": [["key", "d0|default"]]})


def test_a_store_with_unreadable_metadata_says_which_file_and_sweep(tmp_path):
    path = tmp_path / "results.sqlite"
    ResultStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO sweep_meta (sweep, meta) VALUES (?, ?)", ("s", json.dumps({"points": "none"})))
    db.close()
    with ResultStore(path) as store, pytest.raises(StoreError, match=r"results\.sqlite holds unreadable metadata of sweep 's'"):
        load_sweep(store, "s")


@dataclass(frozen=True)
class _Entry(JsonCodec):
    value: float
    label: str = ""
    note: str | None = field(default=None, metadata=ABSENT_IF_NONE)
    extra: dict[str, Any] = field(default_factory=dict)


def test_a_field_added_to_a_document_is_written_and_read_with_no_other_change():
    assert _Entry(1.5).to_json() == {"value": 1.5, "label": ""}  # an absent optional section: no key
    assert _Entry(2, "x", "kept").to_json() == {"value": 2, "label": "x", "note": "kept"}  # an int stays an int
    assert _Entry.from_json({"value": 2, "label": "x", "note": "kept", "new": [1]}) == _Entry(2, "x", "kept", {"new": [1]})
    with pytest.raises(ValueError, match=r"_Entry\.value: expected float, got bool"):
        _Entry.from_json({"value": True})


def test_a_recorded_direction_reads_missing_keys_with_the_spec_s_own_defaults():
    # sweep_meta.RecordedDirection sits below the spec layer and so repeats DirectionRecipe's fields; a
    # default that drifted would silently misread an older meta that left a key out.
    import dataclasses

    from safety_landscape.client.sweep.spec.schema import DirectionRecipe
    from safety_landscape.client.sweep_meta import RecordedDirection

    assert dataclasses.asdict(RecordedDirection()) == dataclasses.asdict(DirectionRecipe())
