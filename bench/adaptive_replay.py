"""Benchmark: adaptive rules replayed on full grids already measured (no server, no model, no torch).

    python bench/adaptive_replay.py runs/replay/seed7-empty runs/replay/table2-full --json runs/bench/replay.json

Each argument is a sweep's output folder (its ``results.sqlite``) or a store file holding a full
grid (``visage sweep --no-adaptive``; ``PATH@SWEEP`` where it holds several), read through the
client's store API and never written. A series whose points (content keys) an earlier argument's
series already holds is the same landscape and is replayed once.
Evaluation is deterministic (greedy generation, a fixed judge), so the points an adaptive sweep
would measure on that landscape hold the values already stored: for each candidate rule the
planner itself (:func:`~safety_landscape.client.sweep.planner.next_points`) walks each complete
ASR series on the stored values, and VISAGE of measured + assumed is compared with the full
grid's, by both rules (the reference rule on 1D series only). A series missing a point (a store
still being written) is left out and named.

Per landscape (a store's sweep) and over all, for each candidate: evaluations (distinct point
keys, as the sweep counts them: the origin is one evaluation shared by every direction of a system
prompt) against the full grid's, generated tokens saved, rounds (the series walk side by side; the
full grid is one round), the largest |VISAGE error| by each rule,
the series exact (within +-1 of the full grid by both rules), and whether each error stayed
within the worst case the sweep states (:func:`~safety_landscape.client.sweep.assumption.assumption_bound`).
Per series, the least ``stop_after`` whose walk reaches every point below 100 % (the longest run
of 100 % points between two such points, walking out from the centre, plus one). The table is
printed (markdown; the code's default rule, ``AdaptiveRule()``, marked "(default)"), then the
candidates exact on every series replayed, cheapest first; with ``--json``, written with every
series' figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safety_landscape.client.errors import ValidationError
from safety_landscape.client.store import ResultStore
from safety_landscape.client.sweep import load_sweep
from safety_landscape.client.sweep.assumption import assumption_bound
from safety_landscape.client.sweep.planner import AdaptiveRule, GridShape, assumed, next_points
from safety_landscape.client.visage import RULES, visage_expectation, visage_reference
from safety_landscape.common.command_line import StrictArgumentParser

Coords = tuple[float, ...]

#: The candidate rules, by the name the table prints.
CANDIDATES: dict[str, AdaptiveRule] = {
    "k=1": AdaptiveRule(stop_after=1),
    "k=2": AdaptiveRule(stop_after=2),
    "k=3": AdaptiveRule(stop_after=3),
    "k=4": AdaptiveRule(stop_after=4),
    "k=5": AdaptiveRule(stop_after=5),
    "k=6": AdaptiveRule(stop_after=6),
    "k=2 + ends": AdaptiveRule(stop_after=2, probe_ends=True),
    "k=3 + ends": AdaptiveRule(stop_after=3, probe_ends=True),
    "k=2 + every 2": AdaptiveRule(stop_after=2, probe_every=2),
    "k=2 + every 3": AdaptiveRule(stop_after=2, probe_every=3),
    "k=2 + every 4": AdaptiveRule(stop_after=2, probe_every=4),
    "k=3 + every 3": AdaptiveRule(stop_after=3, probe_every=3),
    "k=3 + every 4": AdaptiveRule(stop_after=3, probe_every=4),
}
TOLERANCE = 1.0  # VISAGE points: "exact" = within +-1 of the full grid


@dataclass(frozen=True)
class FullSeries:
    """One complete ASR series of a full grid: values, point keys and generated tokens by coords."""

    label: str
    values: dict[Coords, float]
    keys: dict[Coords, str]
    tokens: dict[Coords, int]

    @property
    def grid(self) -> GridShape:
        return GridShape.of(self.values)

    def visage(self, values: Mapping[Coords, float]) -> dict[str, float | None]:
        """Both rules on a complete set of grid values (the reference rule: 1D only)."""
        points = self.grid.points()
        flat = [values[c] for c in points]
        one_d = len(self.grid.axes) == 1
        return {"reference": visage_reference(flat) if one_d else None, "expectation": visage_expectation(flat)}


@dataclass
class Landscape:
    """A store's sweep: its complete series and the ones left out (incomplete)."""

    name: str
    series: list[FullSeries]
    incomplete: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # series replayed already, under another landscape


def read_landscape(path: Path, sweep: str | None = None) -> Landscape:
    """The complete ASR series of the sweep (``sweep``, else the only one) in the store at ``path``
    (a folder or the file); a store with no sweep yet gives no series."""
    file = path / "results.sqlite" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"error: no results store at {file}")
    name = path.name if path.is_dir() else path.parent.name
    with ResultStore(file) as store:
        if sweep is None and all(store.get_meta(n) is None for n in store.sweeps()):
            return Landscape(f"{name} (no sweep yet)", [])
        try:
            data = load_sweep(store, sweep)
        except ValidationError as exc:
            raise SystemExit(f"error: {exc}") from None
    out = Landscape(f"{name} ({data.name})", [])
    for series, coords in data.planned.get("asr", {}).items():
        records = data.records.get("asr", {}).get(series, {})
        if len(records) < len(coords):
            out.incomplete.append(series.label)
            continue
        out.series.append(FullSeries(series.label, {c: r.value for c, r in records.items()},
                                     {c: r.key for c, r in records.items()},
                                     {c: r.detail.generated_tokens or 0 for c, r in records.items()}))
    return out


def store_and_sweep(arg: Path, sweep: str | None) -> tuple[Path, str | None]:
    """``PATH@SWEEP`` names the sweep of one store (where a store holds several); else ``--sweep``."""
    path, at, name = str(arg).rpartition("@")
    return (Path(path), name) if at and path else (arg, sweep)


def distinct(landscapes: list[Landscape]) -> list[Landscape]:
    """Each landscape's series less those whose points (keys) an earlier one already holds (a sweep
    that reused another's points measures the same landscape: replayed once), named as left out."""
    seen: dict[frozenset[str], str] = {}
    for land in landscapes:
        kept = []
        for s in land.series:
            keys = frozenset(s.keys.values())
            if keys in seen:
                land.duplicates.append(f"{s.label} (the points of {seen[keys]})")
            else:
                seen[keys] = f"{land.name} {s.label}"
                kept.append(s)
        land.series = kept
    return landscapes


def walk(series: FullSeries, rule: AdaptiveRule) -> tuple[dict[Coords, float], int]:
    """The points the planner measures on this landscape (its values looked up, not evaluated),
    and in how many rounds."""
    grid, measured, rounds = series.grid, {}, 0
    while todo := next_points(grid, measured, rule):
        measured.update({c: series.values[c] for c in todo})
        rounds += 1
    return measured, rounds


def stop_after_needed(series: FullSeries) -> int:
    """The least ``stop_after`` whose walk measures every point below 100 % of the series (no
    probes): 1 + the longest run of 100 % points the walk has to cross to reach one."""
    k = 1
    while True:
        measured, _ = walk(series, AdaptiveRule(stop_after=k))
        if all(c in measured for c, v in series.values.items() if v <= 100.0 - 0.01):
            return k
        k += 1


def replay(landscape: Landscape, rule: AdaptiveRule) -> dict[str, Any]:
    """One rule on one landscape: cost against the full grid, and each series' VISAGE error and bound."""
    keys, all_keys, tokens, all_tokens = set(), set(), {}, {}
    per_series, rounds = {}, 0
    for s in landscape.series:
        measured, n = walk(s, rule)
        rounds = max(rounds, n)  # the series walk side by side, a round each at a time
        skipped = assumed(s.grid, measured, rule) or []
        for c, key in s.keys.items():
            all_keys.add(key)
            all_tokens[key] = s.tokens[c]
            if c in measured:
                keys.add(key)
                tokens[key] = s.tokens[c]
        full = s.visage(s.values)
        got = s.visage({c: measured.get(c, 100.0) for c in s.values})
        bound = assumption_bound(s.grid, measured, skipped)
        error = {r: None if (x := got[r]) is None or (y := full[r]) is None else x - y for r in RULES}
        per_series[s.label] = {
            "measured": len(measured), "points": len(s.values), "full": full, "adaptive": got, "error": error,
            "bound": {r: bound.largest_change(r) for r in RULES},
            "assumed_below_100": sorted(list(c) for c in skipped if s.values[c] <= 100.0 - 0.01),
        }
    errors = {r: [abs(v["error"][r]) for v in per_series.values() if v["error"][r] is not None] for r in RULES}
    return {
        "evaluations": len(keys), "full_evaluations": len(all_keys), "rounds": rounds,
        "tokens": sum(tokens.values()), "full_tokens": sum(all_tokens.values()),
        "max_error": {r: max(errors[r], default=None) for r in RULES},
        "series_exact": sum(all(e is None or abs(e) <= TOLERANCE for e in v["error"].values())
                            for v in per_series.values()),
        "series": per_series,
        "within_bound": sum(all(v["error"][r] is None or abs(v["error"][r]) <= v["bound"][r] + 1e-9 for r in RULES)
                            for v in per_series.values()),
    }


def total(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One rule over several landscapes (sums; the largest errors)."""
    out: dict[str, Any] = {k: sum(r[k] for r in results) for k in
                           ("evaluations", "full_evaluations", "tokens", "full_tokens", "series_exact", "within_bound")}
    out["series_count"] = sum(len(r["series"]) for r in results)
    out["rounds"] = max(r["rounds"] for r in results)
    out["max_error"] = {rule: max((r["max_error"][rule] for r in results if r["max_error"][rule] is not None),
                                  default=None) for rule in RULES}
    return out


def row(name: str, where: str, r: dict[str, Any]) -> str:
    saved = 1 - r["evaluations"] / r["full_evaluations"] if r["full_evaluations"] else 0.0
    tok = 1 - r["tokens"] / r["full_tokens"] if r["full_tokens"] else 0.0
    n = r.get("series_count", len(r.get("series", {})))
    err = [("-" if r["max_error"][x] is None else f"{r['max_error'][x]:.2f}") for x in RULES]
    return (f"| {where} | {name} | {r['evaluations']} of {r['full_evaluations']} | {saved:.0%} | {tok:.0%} | "
            f"{r['rounds']} | "
            f"{err[0]} | {err[1]} | {r['series_exact']} of {n} | {r['within_bound']} of {n} |")


HEADER = ("| landscape | rule | evaluations | saved | tokens saved | rounds | largest error, reference | "
          "largest error, expectation | series within +-1 | errors within the stated bound |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = StrictArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+", type=Path,
                    help="sweep output folders (results.sqlite) or store files; PATH@SWEEP picks one sweep of a store")
    ap.add_argument("--sweep", help="the sweep to read, where a store holds several (PATH@SWEEP: per store)")
    ap.add_argument("--rules", default=",".join(CANDIDATES), help="the candidates to replay, by name (comma-separated)")
    ap.add_argument("--json", type=Path, help="write every series' figures here")
    return ap.parse_args(argv)


def label(name: str) -> str:
    """A candidate's name as the table prints it: the code's default rule is marked."""
    return f"{name} (default)" if CANDIDATES[name] == AdaptiveRule() else name


def exact_everywhere(doc: dict[str, Any], names: list[str]) -> list[str]:
    """The candidates exact (+-1 by both rules) on every series replayed, fewest evaluations first."""
    replayed = [d["replays"] for d in doc["landscapes"].values() if d["replays"]]
    exact = [n for n in names if replayed and all(r[n]["series_exact"] == len(r[n]["series"]) for r in replayed)]
    return sorted(exact, key=lambda n: sum(r[n]["evaluations"] for r in replayed))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.rules.split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"error: unknown rule(s) {unknown}; known: {', '.join(CANDIDATES)}", file=sys.stderr)
        return 2
    landscapes = distinct([read_landscape(*store_and_sweep(p, args.sweep)) for p in args.stores])
    doc: dict[str, Any] = {"landscapes": {}, "rules": {n: asdict(CANDIDATES[n]) for n in names}, "total": {}}
    lines = [HEADER]
    for land in landscapes:
        doc["landscapes"][land.name] = {"series": [s.label for s in land.series], "incomplete": land.incomplete,
                                        "full_visage": {s.label: s.visage(s.values) for s in land.series},
                                        "stop_after_needed": {s.label: stop_after_needed(s) for s in land.series},
                                        "replays": {}}
        doc["landscapes"][land.name]["duplicates"] = land.duplicates
        if land.incomplete:
            print(f"# {land.name}: {len(land.incomplete)} incomplete series left out: {', '.join(land.incomplete)}")
        if land.duplicates:
            print(f"# {land.name}: {len(land.duplicates)} series already replayed left out: {', '.join(land.duplicates)}")
        if not land.series:
            print(f"# {land.name}: no complete series yet")
            continue
        needed = doc["landscapes"][land.name]["stop_after_needed"]
        print(f"# {land.name}: the least stop_after that measures every point below 100 %, per series: "
              + ", ".join(f"{label} {k}" for label, k in needed.items()))
        for n in names:
            result = replay(land, CANDIDATES[n])
            doc["landscapes"][land.name]["replays"][n] = result
            lines.append(row(label(n), land.name, result))
    replayed = [d for d in doc["landscapes"].values() if d["replays"]]
    if len(replayed) > 1:
        for n in names:
            doc["total"][n] = total([d["replays"][n] for d in replayed])
            lines.append(row(label(n), "all", doc["total"][n]))
    print("\n".join(lines))
    doc["default"] = next((n for n in names if CANDIDATES[n] == AdaptiveRule()), None)
    doc["exact_everywhere"] = exact_everywhere(doc, names)
    print("# exact (+-1, both rules) on every series replayed, fewest evaluations first: "
          + (", ".join(label(n) for n in doc["exact_everywhere"]) or "none: the full grid"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, sort_keys=True, default=list) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
