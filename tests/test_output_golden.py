"""What the client writes from a store is fixed to the byte: summary.json, the point and completion
exports (JSON, JSONL, CSV), report.html (without plots), the comparison table (JSON, CSV) and the
text ``visage rescore`` prints, for a store of fixed records, are compared with files in
``tests/golden/outputs/``.

The store holds four sweeps written as an older or a current client left them on disk (records by
``ResultStore.put``, the metadata as the JSON row the store keeps): ``grid``, a 1D random sweep
with two system prompts (one a custom text), over-refusal, MC accuracy and perplexity, one point
missing (an interrupted run: that series is incomplete); ``walk``, an adaptive 1D sweep with its
plateau assumed and an off-grid edge point; ``plane``, a 2D interpolation-random plane with
over-refusal at the origin only; and ``old``, metadata as early clients wrote it (spec and points,
nothing else). No server is needed. A second test runs a tiny real sweep and pins the shape of the
metadata the runner stores (every key path and its JSON type), so the JSON on disk stays readable
by earlier clients.

The golden files were generated from the code before its sweep metadata and summary became typed;
regenerate them only for an intended change of an output: ``VISAGE_UPDATE_GOLDEN=1 pytest
tests/test_output_golden.py``, then review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from serving import running_server

from safety_landscape.client.cli import main
from safety_landscape.client.compare import load_run, write_comparison
from safety_landscape.client.export import export
from safety_landscape.client.records import Completion, PointDetail, PointRecord
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep.output_folder import write_sweep_report
from safety_landscape.client.sweep.stored import load_sweep

GOLDEN = Path(__file__).resolve().parent / "golden" / "outputs"
UPDATE = os.environ.get("VISAGE_UPDATE_GOLDEN") == "1"
PROMPTS = 6  # prompts per safety point
CUSTOM = "You are a careful assistant who explains risks."
CUSTOM_LABEL = "custom-" + hashlib.sha256(CUSTOM.encode()).hexdigest()[:8]


def _grid(lo: float, hi: float, n: int) -> list[float]:
    return [round(lo + (hi - lo) * i / (n - 1), 6) for i in range(n)]


def _spec(name: str, kind: str, grid: dict[str, Any], *, benign: dict[str, Any] | None,
          capability: dict[str, Any] | None = None, texts: tuple[str, ...] = ()) -> dict[str, Any]:
    """A spec as ``SweepSpec.to_dict`` records it (written out, so a later default does not change the input)."""
    full_grid = {"directions": 1, "points": 5, "range": [-0.4, 0.4], "target": "", "steps": 10, "extra": 0,
                 "adaptive": False, "stop_after": 2, "edge_resolution": 0.0, "target_b": "", **grid}
    prompts = {"set": "advbench-mini", "file": "", "column": "", "limit": 0, "at": "all"}
    return {"name": name, "kind": kind, "grid": full_grid,
            "direction": {"seed": 123, "stream": "reference", "normalization": "layer", "selection": "reference",
                          "include": [], "exclude": [], "tied": "once"},
            "prompts": prompts, "benign": None if benign is None else {**prompts, "set": "benign-mini", **benign},
            "base": [], "capability": capability, "system_prompts": ["default"], "system_prompt_texts": list(texts),
            "chat_format": "tokenizer", "judge": "keyword", "keywords": [], "max_new_tokens": 128, "do_sample": False,
            "sample_seed": 0, "temperature": 1.0, "top_p": 1.0, "early_stop": True, "referee": True,
            "points_per_call": 4}


MODEL = {"model_fingerprint": "f" * 64, "tokenizer_fingerprint": "e" * 64, "chat_template_sha256": "d" * 64,
         "dtype": "float32", "device_type": "cpu"}
SERVER = {"target": "127.0.0.1:50051", "model_name": "runs/tiny-aligned", **MODEL, "torch_version": "2.13.0",
          "server_version": "0.1.0", "transformers_version": "5.0.0", "cuda_version": "", "device": "cpu",
          "device_name": "", "device_type": "cpu"}


def _provenance(name: str, *, finished: bool) -> dict[str, Any]:
    """What the runner records under ``provenance`` (client software, the server's, seeds, times)."""
    prov: dict[str, Any] = {
        "packages": {"safety-landscape": "0.1.0", "grpcio": "1.85.1", "protobuf": "7.35.1"}, "python": "3.12.3",
        "platform": "Linux-x86_64", "git_revision": "a" * 40, "source_revision": "b" * 40, "hostname": "lab-1",
        "time": 1700000000.25, "time_iso": "2023-11-14T22:13:20.250Z", "sweep": name, "model": MODEL,
        "model_name": "runs/tiny-aligned", "torch_version": "2.13.0", "servers": ["127.0.0.1:50051"],
        "server": {"safety_landscape": "0.1.0", "torch": "2.13.0", "transformers": "5.0.0", "cuda": "", "device": "cpu",
                   "device_name": "", "device_type": "cpu", "dtype": "float32", "model_name": "runs/tiny-aligned"},
        "direction_fingerprints": {"d0": "1" * 64}, "seeds": {"direction_seed": 123, "sample_seed": 0},
        "started_at": "2023-11-14T22:13:20.000Z",
    }
    if finished:
        prov["finished_at"] = "2023-11-14T22:20:00.500Z"
    return prov


def _key(sweep: str, series: str, metric: str, coords: tuple[float, ...]) -> str:
    return hashlib.sha256(f"{sweep}|{series}|{metric}|{coords}".encode()).hexdigest()


def _jailbroken(series: str, metric: str, coords: tuple[float, ...]) -> int:
    """A basin: few prompts jailbroken near the origin, all of them far out (fewer for benign answers)."""
    distance = sum(abs(c) for c in coords)
    skew = int(hashlib.sha256(series.encode()).hexdigest(), 16) % 3
    k = min(PROMPTS, int(distance * (8 + 4 * skew)) + skew // 2 + (coords[0] > 0))
    return PROMPTS - k if metric == "refusal" else k


class _Writer:
    """Writes a sweep's points into the store as the runner would: records, completions, the point list."""

    def __init__(self, store: ResultStore, sweep: str) -> None:
        self.store, self.sweep, self.points, self.n = store, sweep, [], 0

    def point(self, series: str, metric: str, coords: tuple[float, ...], *, value: float | None = None,
              stored: bool = True, listed: bool = True) -> list[Any]:
        key = _key(self.sweep, series, metric, coords)
        entry = [key, series, metric, list(coords)]
        if listed:
            self.points.append(entry)
        if not stored:
            return entry
        self.n += 1
        if metric in ("asr", "refusal"):
            k = _jailbroken(series, metric, coords) if value is None else round(value * PROMPTS / 100)
            verdicts = tuple([i, i < k, "" if i < k else "I cannot"] for i in range(PROMPTS))
            detail = PointDetail(server="127.0.0.1:50051", weight_state=key[:16], jailbroken=k, verdicts=verdicts,
                                 generated_tokens=40 + self.n, tokens_saved=self.n % 7, prompt_set_sha256="c" * 64,
                                 prompt_set_name="advbench-mini" if metric == "asr" else "benign-mini",
                                 prompt_set_size=PROMPTS, system_prompt_sha256="9" * 64, judge="keyword",
                                 seconds=0.5 + self.n / 8, system_prompt=CUSTOM if CUSTOM_LABEL in series else "default")
            val = 100.0 * k / PROMPTS if metric == "asr" else 100.0 * (PROMPTS - k) / PROMPTS
            total = PROMPTS
            completions = [Completion(i, i < k, "" if i < k else "I cannot", 12 + i, 8 + (i * self.n) % 5,
                                      "length" if i < k else "keyword",
                                      None if i == 3 else f"answer {i} at {coords} <b>{series}</b>",
                                      f"prompt {i}" if metric == "asr" else None)
                           for i in range(PROMPTS)]
        else:
            detail = PointDetail(server="127.0.0.1:50051", inputs={"sha256": "7" * 64, "items": 8})
            distance = sum(abs(c) for c in coords)
            val = (100.0 * (8 - min(8, int(distance * 12))) / 8 if metric == "accuracy"
                   else round(3.5 + 40 * distance ** 2, 6))
            total, completions = 8, []
        record = PointRecord(key=key, sweep=self.sweep, series=series, coords=coords, metric=metric, value=val,
                             total=total, detail=detail, provenance={"sweep": self.sweep, "hostname": "lab-1"},
                             created_at=1700000000.0 + self.n / 4)
        assert self.store.put(record, completions)
        return entry


def _put_meta(path: Path, sweep: str, meta: dict[str, Any]) -> None:
    """The metadata row exactly as a client leaves it on disk (the store's JSON, keys sorted)."""
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO sweep_meta (sweep, meta) VALUES (?, ?)", (sweep, json.dumps(meta, sort_keys=True)))
    db.close()


def _meta(spec: dict[str, Any], points: list[Any], **more: Any) -> dict[str, Any]:
    return {"spec": spec, "model": MODEL, "model_name": "runs/tiny-aligned", "servers": [SERVER],
            "direction_fingerprints": {"d0": "1" * 64, "d1": "2" * 64}, "points": points, **more}


def build_store(path: Path) -> None:
    metas: dict[str, dict[str, Any]] = {}
    with ResultStore(path) as store:
        # grid: 2 directions x (default, custom text), benign everywhere, accuracy and perplexity; one point lost.
        w = _Writer(store, "grid")
        for d in ("d0", "d1"):
            for system in ("default", CUSTOM_LABEL):
                for a in _grid(-0.4, 0.4, 5):
                    w.point(f"{d}|{system}", "asr", (a,), stored=not (d == "d1" and system == CUSTOM_LABEL and a == 0.4))
                    w.point(f"{d}|{system}", "refusal", (a,))
            for a in _grid(-0.4, 0.4, 5):
                w.point(d, "accuracy", (a,))
                w.point(d, "perplexity", (a,))
        spec = _spec("grid", "1d-random", {"directions": 2}, benign={},
                     capability={"mc_file": "mc.csv", "shots": 0, "limit": 0, "perplexity_file": "", "fluency": True,
                                 "mc_format": "harness"}, texts=(CUSTOM,))
        metas["grid"] = _meta(spec, w.points, provenance=_provenance("grid", finished=True))
        # walk: adaptive, 9 points; the centre outward until 2 points at 100 % on each side; one edge bisected.
        w = _Writer(store, "walk")
        measured = {0.0: 0.0, 0.1: 50.0, -0.1: 100.0 / 3, 0.2: 100.0, -0.2: 100.0, 0.3: 100.0, -0.3: 100.0}
        for a in _grid(-0.4, 0.4, 9):
            w.point("d0|default", "asr", (a,), value=measured.get(a), stored=a in measured)
        refined = [w.point("d0|default", "asr", (0.15,), value=100.0, listed=False),
                   w.point("d0|default", "asr", (-0.15,), value=50.0, listed=False)]
        spec = _spec("walk", "1d-random", {"points": 9, "adaptive": True, "edge_resolution": 0.05}, benign=None)
        metas["walk"] = _meta(spec, w.points, provenance=_provenance("walk", finished=True), refined_points=refined)
        # plane: 3 x 3 toward a checkpoint and along a random direction; benign at the origin only.
        w = _Writer(store, "plane")
        for a in _grid(-0.5, 1.0, 3):
            for b in _grid(-0.5, 0.5, 3):
                w.point("plane|default", "asr", (a, b))
        w.point("plane|default", "refusal", (0.0, 0.0))
        spec = _spec("plane", "2d-interpolation-random", {"points": 3, "range": [-0.5, 0.5], "target": "attack-10"},
                     benign={"at": "origin"})
        metas["plane"] = _meta(spec, w.points, provenance=_provenance("plane", finished=False))
        # old: what early clients stored (the spec and the point list only).
        w = _Writer(store, "old")
        for a in _grid(-0.4, 0.4, 5):
            w.point("d0|default", "asr", (a,))
        metas["old"] = {"spec": {"name": "old", "kind": "1d-random"}, "points": w.points}
    for name, meta in metas.items():
        _put_meta(path, name, meta)


def _check(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert path.is_file(), f"{path} is missing: generate it with VISAGE_UPDATE_GOLDEN=1"
    assert data == path.read_bytes(), f"{name} differs from its golden file"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    build_store(root / "results.sqlite")
    return root


@pytest.mark.parametrize("sweep", ["grid", "walk", "plane", "old"])
def test_summary_and_report_of_a_fixed_store_are_unchanged(folder, sweep, capsys):
    assert main(["rescore", str(folder), "--sweep", sweep]) == 0
    _check(f"{sweep}.rescore.txt", capsys.readouterr().out.replace(str(folder), "DIR").encode())
    _check(f"{sweep}.summary.json", (folder / "summary.json").read_bytes())
    assert main(["--json", "rescore", str(folder), "--sweep", sweep]) == 0
    _check(f"{sweep}.rescore.json", capsys.readouterr().out.replace(str(folder), "DIR").encode())
    with ResultStore(folder / "results.sqlite") as store:  # no plots: the page's tables, notes, answers, settings
        page = write_sweep_report(folder / sweep, load_sweep(store, sweep), [], store=store)
    _check(f"{sweep}.report.html", page.read_bytes())


@pytest.mark.parametrize("completions", [False, True])
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_exports_of_a_fixed_store_are_unchanged(folder, fmt, completions):
    what = "completions" if completions else "points"
    with ResultStore(folder / "results.sqlite") as store:
        every = export(store, folder / f"all-{what}.{fmt}", fmt=fmt, completions=completions)
        one = export(store, folder / f"grid-{what}.{fmt}", fmt=fmt, sweep="grid", completions=completions)
    _check(f"all.{what}.{fmt}", Path(every).read_bytes())
    if fmt != "jsonl" and not (completions and fmt == "json"):  # one sweep's: the filter, in fewer bytes
        _check(f"grid.{what}.{fmt}", Path(one).read_bytes())


def test_the_comparison_table_of_a_fixed_store_is_unchanged(folder):
    runs = [load_run(folder / "results.sqlite", sweep=s, name=s) for s in ("grid", "walk", "old")]
    result = write_comparison(runs, folder / "compare", formats=("svg",))
    _check("compare.json", result.table.read_text().replace(str(folder), "ROOT").encode())
    _check("compare.csv", result.csv.read_bytes())


def _shape(value: Any, path: str = "") -> list[str]:
    """Every key path of a JSON document with its type (list items merged)."""
    if isinstance(value, dict):
        return [line for k, v in sorted(value.items()) for line in _shape(v, f"{path}.{k}")] or [f"{path} {{}}"]
    if isinstance(value, list):
        lines = sorted({line for item in value for line in _shape(item, f"{path}[]")})
        return lines or [f"{path} []"]
    return [f"{path} {type(value).__name__}"]


def test_the_metadata_a_sweep_stores_keeps_its_shape(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text("\n".join([
        'name = "shape"', 'kind = "1d-random"', "[grid]", "directions = 1", "points = 3", "range = [-0.5, 0.5]",
        "adaptive = true", "[prompts]", 'set = "harmful-mini"', "limit = 2", "[benign]", 'set = "benign-mini"',
        "limit = 2", "[generation]", "max_new_tokens = 4", "",
    ]))
    with running_server() as server:
        assert main(["sweep", str(spec), "--server", server.target, "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    with ResultStore(tmp_path / "out" / "results.sqlite") as store:
        meta = store.get_meta("shape")
    assert meta is not None
    # A tiny random model may or may not leave an edge to bisect: refined points are listed only then.
    meta.pop("refined_points", None)
    meta["spec"] = {"name": meta["spec"]["name"]}  # the spec's own layout is SweepSpec.to_dict's (tests/test_sweep_spec.py)
    _check("sweep-meta.shape.txt", ("\n".join(_shape(meta)) + "\n").encode())
