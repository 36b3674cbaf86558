"""Run a sweep: check the fleet, plan the points, evaluate what the store lacks, record at once.

:func:`run_sweep` is the one entry point. Order of work: read local prompt files and the
capability inputs (fail before any RPC), check that the servers agree (model, prompt sets, direction fingerprints; nothing is
evaluated before), store the sweep's metadata (spec, servers, fingerprints, the plan's point
list, provenance), then evaluate only the tasks with a point missing from the store. Every
finished task is written to the store in the calling thread before the next one is read, so an
interrupt (Ctrl-C, a crash) loses only what was in flight; re-running resumes.

:class:`ProgressBar` draws ``[#####.....] 12/40 30% ETA 1m05s`` on stderr when it is a
terminal and stays silent otherwise.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from ..client import Client
from ..prompt_files import read_prompts
from ..records import PointRecord
from ..store import ResultStore, provenance
from .capability import load_capability
from .fleet import Fleet, ServerFacts, TaskResult, WorkerPool
from .points import Plan, Point, build_plan
from .spec import SweepSpec, validate

__all__ = ["Progress", "ProgressBar", "SweepResult", "record_for", "run_sweep"]


@dataclass(frozen=True)
class Progress:
    """Handed to the progress callback after each evaluated task (in the caller's thread)."""

    done: int  # tasks finished in this run
    total: int  # tasks this run must evaluate
    records: tuple[PointRecord, ...]  # written for this task
    target: str
    elapsed: float


@dataclass(frozen=True)
class SweepResult:
    plan: Plan
    servers: list[ServerFacts]
    evaluated: int  # server evaluations (tasks) this run
    written: int  # records written this run
    reused: int  # points already in the store
    seconds: float
    direction_fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)  # label -> fingerprint


class ProgressBar:
    """A one-line progress bar with ETA; silent unless ``stream`` is a terminal."""

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled if enabled is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.width, self.started, self.done = total, width, time.monotonic(), 0

    @staticmethod
    def _fmt(seconds: float) -> str:
        seconds = int(seconds)
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        if not self.enabled or self.total <= 0:
            return
        frac = min(1.0, done / self.total)
        elapsed = time.monotonic() - self.started
        eta = self._fmt(elapsed / done * (self.total - done)) if done else "?"
        filled = int(frac * self.width)
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {frac:4.0%} ETA {eta} {note}"
        self.stream.write(line[: 120].ljust(100))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total > 0:
            self.stream.write(f"\r{' ' * 110}\r{self.done}/{self.total} points in {self._fmt(time.monotonic() - self.started)}\n")
            self.stream.flush()


def record_for(plan: Plan, point: Point, result: TaskResult, prov: dict) -> PointRecord:
    """The stored record of ``point`` from its task's server response (or capability score)."""
    r = result.response
    if r is None:  # a capability score
        metric = plan.variants[point.variant].capability
        detail = {"server": result.target, "inputs": metric.desc if metric else {}}
        return PointRecord(key=point.key, sweep=plan.spec.name, series=point.series, coords=point.coords,
                           metric=point.metric, value=float(result.value), total=metric.total if metric else 0,
                           detail=detail, provenance=prov, created_at=time.time())
    refused = r.total - r.jailbroken
    value = r.asr if point.metric == "asr" else (100.0 * refused / r.total if r.total else 0.0)
    detail = {
        "server": result.target,
        "weight_state": r.weight_state.fingerprint,
        "jailbroken": r.jailbroken,
        "verdicts": [[v.index, v.jailbroken, v.matched_keyword] for v in r.verdicts],
        "generated_tokens": r.generated_tokens,
        "tokens_saved": r.tokens_saved,
        "prompt_set_sha256": r.prompt_set.sha256,
        "prompt_set_name": r.prompt_set.name,
        "prompt_set_size": r.prompt_set.size,
        "system_prompt_sha256": r.system_prompt_sha256,
        "judge": r.judge,
        "seconds": r.timings.total_seconds,
        "system_prompt": point.system,
    }
    return PointRecord(key=point.key, sweep=plan.spec.name, series=point.series, coords=point.coords,
                       metric=point.metric, value=value, total=r.total, detail=detail, provenance=prov,
                       created_at=time.time())


def _read_inline(spec: SweepSpec) -> dict[str, list[str]]:
    out = {}
    for src in (spec.prompts, spec.benign):
        if src is not None and src.file:
            out[src.file] = read_prompts(src.file, column=src.column or None)
    return out


def run_sweep(
    spec: SweepSpec,
    store: ResultStore,
    *,
    targets: Sequence[str] = (),
    fleet: Fleet | None = None,
    connect: Callable[[str], Client] = Client,
    progress: Callable[[Progress], None] | None = None,
    bar: ProgressBar | bool | None = None,
    timeout: float | None = None,
    max_attempts: int = 3,
) -> SweepResult:
    """Measure every point of ``spec`` missing from ``store`` on ``fleet`` (or on ``targets``,
    connected with ``connect`` and closed at the end). ``progress`` runs in this thread after
    each task; an exception it raises (KeyboardInterrupt included) stops the sweep, cancels the
    calls in flight (closing the fleet's channels) and propagates; what was stored stays.
    ``bar``: a ProgressBar, True/False to force one on/off, None = on when stderr is a terminal.
    ``timeout``: deadline per point evaluation (None: the clients' own)."""
    started = time.monotonic()
    validate(spec)
    inline = _read_inline(spec)
    capability = load_capability(spec.capability)
    own = fleet is None
    if fleet is None:
        fleet = Fleet.connect(targets, connect)
    try:
        facts, servers = fleet.agree()
        sets = [s.set for s in (spec.prompts, spec.benign) if s is not None and s.set]
        set_hashes = fleet.check_prompt_sets(sets)
        plan = build_plan(spec, facts, inline=inline, set_hashes=set_hashes, capability=capability)
        fingerprints = fleet.check_directions(plan.directions)
        prov = provenance({
            "sweep": spec.name, "model": facts.as_dict(), "model_name": servers[0].model_name,
            "torch_version": servers[0].torch_version, "servers": [s.target for s in servers],
            "direction_fingerprints": fingerprints,
            "seeds": {"direction_seed": spec.direction.seed, "sample_seed": spec.sample_seed},
        })
        store.put_meta(spec.name, {
            "spec": spec.to_dict(), "model": facts.as_dict(), "model_name": servers[0].model_name,
            "servers": [s.__dict__ for s in servers], "direction_fingerprints": fingerprints,
            "points": [[p.key, p.series, p.metric, list(p.coords)] for p in plan.points],
            "provenance": prov,
        })
        have = store.keys()
        missing = plan.missing(have)
        reused = sum(1 for p in plan.points if p.key in have)
        if isinstance(bar, ProgressBar):
            pbar = bar
        else:
            pbar = ProgressBar(len(missing), enabled=bar)
        pbar.total = len(missing)
        done = written = 0
        if missing:
            with WorkerPool(fleet, plan, list(missing), chunk_size=spec.points_per_call,
                            max_attempts=max_attempts, timeout=timeout) as pool:
                for result in pool.results():
                    records = []
                    for point in missing[result.task]:
                        rec = record_for(plan, point, result, prov)
                        if store.put(rec):
                            records.append(rec)
                    done += 1
                    written += len(records)
                    pbar.update(done, result.target)
                    if progress is not None:
                        progress(Progress(done, len(missing), tuple(records), result.target, time.monotonic() - started))
        pbar.close()
        return SweepResult(plan, servers, done, written, reused, time.monotonic() - started, fingerprints)
    finally:
        if own:
            fleet.close()
