"""Run a sweep: validate, resolve, check the fleet, plan, evaluate what the store lacks, record at once.

:func:`run_sweep` is the one entry point, and the work flows one way: validate the spec, read its
local files (:func:`~.resolve.resolve`: prompt files and capability inputs, so a bad file fails
before any RPC), check that the servers agree (model, prompt sets; nothing is evaluated before)
and that the store holds no sweep of this name for another model (:func:`check_store_binding`: a
store is bound to what it measures, so no export mixes two models' points), build the plan,
check the direction fingerprints, store the sweep's metadata (:class:`~..sweep_meta.SweepMeta`:
spec, servers, fingerprints, the plan's point list, provenance;
built once, then stamped with the off-grid points an adaptive sweep adds and with the end time, so
a running or interrupted sweep can be read back), then evaluate only the tasks with a point
missing from the store, in rounds: the planner (:mod:`.planner`) names the tasks to evaluate
next from the values measured so far (the full grid: every missing task in one round; an
adaptive sweep: the next points of each walk), they are evaluated on the fleet, recorded, and
the planner is asked again until it names none. Every finished task is written to the store in
the calling thread before the next one is read, with each prompt's completion and verdict
(:func:`completions_for`), so an interrupt (Ctrl-C, a crash) loses only what was in flight;
re-running resumes. Several processes may sweep into one store at once: they split the tasks by
claiming them in the store (:mod:`.claims`), so no task is evaluated twice, and a crashed one's
tasks are taken over.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from safety_landscape.v1 import landscape_pb2 as pb

from ..client import Client
from ..errors import ValidationError, VisageError
from ..provenance import iso_time, provenance, server_provenance
from ..records import FINISH_REASONS, Completion, MeasuredModel, PointDetail, PointRecord
from ..store import ResultStore
from ..sweep_meta import PlannedPoint, RecordedModel, RecordedSpec, RunProvenance, SweepMeta
from ..verdicts import outcome_name
from .claims import DEFAULT_TTL, Claims
from .fleet import Fleet, ServerFacts, TaskResult, WorkerPool
from .planner import Planner, planner_for
from .points import ModelFacts, Plan, Point, Task, build_plan
from .progress import Progress, ProgressBar, progress_display
from .resolve import resolve
from .spec import SweepSpec, validate

__all__ = ["Progress", "ProgressBar", "SweepResult", "check_store_binding", "completions_for", "record_for", "run_sweep"]


@dataclass(frozen=True)
class SweepResult:
    """What one :func:`run_sweep` did: the plan, the servers, the tasks it evaluated, the points it
    wrote and those it found stored (reused), and its seconds.

    Example::

        result = run_sweep(preset("quick"), store, targets=["127.0.0.1:50051"])
        print(f"{result.evaluated} evaluated, {result.reused} reused in {result.seconds:.0f} s")
    """

    plan: Plan
    servers: list[ServerFacts]
    evaluated: int  # server evaluations (tasks) this run
    written: int  # records written this run
    reused: int  # points already in the store
    seconds: float
    direction_fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)  # label -> fingerprint
    rounds: int = 0  # times the planner named tasks to evaluate
    skipped: int = 0  # planned points left unmeasured by an adaptive sweep (ASR: assumed at 100 %)
    elsewhere: int = 0  # tasks another client sharing the store finished during this run


def _outcome(v: pb.Verdict) -> str:
    """The verdict's outcome name ("" when the server's referee did not judge it)."""
    return outcome_name(v.outcome) if v.HasField("coherence") else ""


def _detail(point: Point, target: str, r: pb.EvaluateSafetyResponse) -> PointDetail:
    judged = r.referee.ran and r.HasField("complied") and r.HasField("incoherent")
    return PointDetail(
        server=target, weight_state=r.weight_state.fingerprint, jailbroken=r.jailbroken,
        verdicts=tuple([v.index, v.jailbroken, v.matched_keyword, *([_outcome(v)] if judged else [])] for v in r.verdicts),
        generated_tokens=r.generated_tokens, tokens_saved=r.tokens_saved, prompt_set_sha256=r.prompt_set.sha256,
        prompt_set_name=r.prompt_set.name, prompt_set_size=r.prompt_set.size,
        system_prompt_sha256=r.system_prompt_sha256, judge=r.judge, seconds=r.timings.total_seconds,
        system_prompt=point.system,
        refused=(r.total - r.jailbroken) if judged else None, complied=r.complied if judged else None,
        incoherent=r.incoherent if judged else None, referee=r.referee.thresholds.id if judged else None,
    )


def record_for(plan: Plan, point: Point, result: TaskResult, prov: Mapping[str, Any],
               model: MeasuredModel | None = None) -> PointRecord:
    """The stored record of ``point`` from its task's server response (or capability score);
    ``model``: the model measured (else the one ``prov`` names)."""
    r = result.response
    if r is None:  # a capability score
        metric = plan.variants[point.variant].capability
        if metric is None or result.value is None:
            raise VisageError(f"task {result.task} finished without a response or a score; a bug")
        detail = PointDetail(server=result.target, inputs=metric.desc)
        value, total = result.value, metric.total
    else:
        refused = r.total - r.jailbroken
        value = r.asr if point.metric == "asr" else (100.0 * refused / r.total if r.total else 0.0)
        detail, total = _detail(point, result.target, r), r.total
    return PointRecord(key=point.key, sweep=plan.spec.name, series=point.series, coords=point.coords,
                       metric=point.metric, value=value, total=total, detail=detail, provenance=prov,
                       created_at=time.time(), model=model)


def _finish_reason(value: int) -> str:
    name = pb.FinishReason.Name(value).removeprefix("FINISH_REASON_").lower() if value in pb.FinishReason.values() else ""
    return name if name in FINISH_REASONS else ""


def completions_for(plan: Plan, point: Point, result: TaskResult) -> list[Completion]:
    """Each prompt's completion and verdict at ``point`` from its task's response ([] for a
    capability score). The text is kept when the settings asked for it (``return_completions``),
    the prompt's text when it was sent inline."""
    r = result.response
    if r is None:
        return []
    settings = plan.variants[point.variant].evaluation
    inline = list(settings.prompts.inline.prompts) if settings.prompts.HasField("inline") else []
    return [Completion(v.index, v.jailbroken, v.matched_keyword, v.prompt_tokens, v.completion_tokens,
                       _finish_reason(v.finish_reason), v.completion if settings.return_completions else None,
                       inline[v.index] if v.index < len(inline) else None, v.classifier_output, **_figures(v))
            for v in r.verdicts]


def _figures(v: pb.Verdict) -> dict[str, Any]:
    """The referee's outcome and figures of one answer as Completion keywords ({}: not judged)."""
    if not v.HasField("coherence"):
        return {}
    c = v.coherence
    return {"outcome": _outcome(v), "coherent": c.coherent, "nll": c.nll, "repetition": c.repeated_ngram_fraction,
            "token_repetition": c.repeated_token_ngram_fraction, "word_run": c.longest_word_run,
            "token_run": c.longest_token_run}


#: The model facts a store's sweep is bound to (each is part of every point's key), in a reader's words.
_BINDING = {"model_fingerprint": "model", "tokenizer_fingerprint": "tokenizer", "chat_template_sha256": "chat template",
            "dtype": "dtype", "device_type": "device type"}


def _recorded_models(store: ResultStore, sweep: str) -> list[tuple[RecordedModel, str]]:
    """(model facts, display name) the store holds for ``sweep``: its metadata's, or, for a sweep
    an early client recorded without them, each model its records name."""
    raw = store.get_meta(sweep)
    meta = SweepMeta.from_json(raw) if raw is not None else None
    if meta is not None and meta.model is not None:
        return [(meta.model, meta.model_name or "")]
    named = {r.model.fingerprint: r.model.name for r in store.records(sweep) if r.model is not None}
    return [(RecordedModel(model_fingerprint=fp), name) for fp, name in named.items()]


def check_store_binding(store: ResultStore, sweep: str, facts: ModelFacts, model_name: str) -> None:
    """A store is bound to what it measures: refuse (ValidationError, before any evaluation) a sweep
    whose name the store already holds for another model, tokenizer, chat template, dtype or device
    type, whose points would otherwise be mixed with the new ones in every export of the sweep."""
    for recorded, name in _recorded_models(store, sweep):
        differ = [(word, value, getattr(facts, field)) for field, word in _BINDING.items()
                  if (value := getattr(recorded, field)) is not None and value != getattr(facts, field)]
        if differ:
            what = "; ".join(f"{word} {was[:16]} there, {now[:16]} on the server" for word, was, now in differ)
            raise ValidationError(
                f"{store.path} holds sweep {sweep!r} of {name or 'another model'} and the servers hold "
                f"{model_name or 'another'} ({what}): a store's sweep measures one model, so nothing was evaluated. "
                f"Give another --out for this model, or another --name for its sweep in this store")


def _planned(points: Sequence[Point]) -> tuple[PlannedPoint, ...]:
    return tuple(PlannedPoint(p.key, p.series, p.metric, p.coords) for p in points)


def _meta(plan: Plan, servers: list[ServerFacts], fingerprints: dict[str, str], started: float) -> SweepMeta:
    """The sweep's metadata (spec, model, servers, the plan's points) and, under ``provenance``,
    what every record carries: client and server software, seeds, fingerprints, the start time."""
    spec, facts = plan.spec, plan.facts
    prov = RunProvenance.from_json(provenance({
        "sweep": spec.name, "model": facts.as_dict(), "model_name": servers[0].model_name,
        "torch_version": servers[0].torch_version, "servers": [s.target for s in servers],
        "server": server_provenance(servers[0]), "direction_fingerprints": fingerprints,
        "seeds": {"direction_seed": spec.direction.seed, "sample_seed": spec.sample_seed},
        "started_at": iso_time(started),
    }))
    return SweepMeta(spec=RecordedSpec(spec.to_dict()), model=RecordedModel.from_json(facts.as_dict()),
                     model_name=servers[0].model_name, servers=tuple(dict(s.__dict__) for s in servers),
                     direction_fingerprints=fingerprints, points=_planned(plan.points), provenance=prov)


class _MetaRecord:
    """The sweep's metadata in the store: written when the run starts, and again only when it changes
    (an adaptive sweep's new off-grid points, listed before they are evaluated; the end time)."""

    def __init__(self, store: ResultStore, meta: SweepMeta) -> None:
        self.store, self.meta = store, meta
        self._write()

    def _write(self) -> None:
        self.store.put_meta(self.meta.name, self.meta.to_json())

    def list_refined(self, planner: Planner) -> None:
        refined = _planned(planner.refined)
        if refined != (self.meta.refined_points or ()):
            self.meta = self.meta.with_refined(refined)
            self._write()

    def finish(self) -> None:
        self.meta = self.meta.finished(iso_time(time.time()))
        self._write()


class _Measured:
    """The values of the points in the store (read on demand) or written this run, by key."""

    def __init__(self, store: ResultStore) -> None:
        self.store, self.keys = store, store.keys()
        self.values: dict[str, float] = {}

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def get(self, key: str) -> float | None:
        if key not in self.keys:
            return None
        if key not in self.values:
            record = self.store.get(key)
            if record is None:
                return None
            self.values[key] = record.value
        return self.values[key]

    def add(self, record: PointRecord) -> None:
        self.keys.add(record.key)
        self.values[record.key] = record.value


@dataclass
class _Recorder:
    """Writes each finished task's records to the store (in the caller's thread) and reports progress."""

    plan: Plan
    store: ResultStore
    measured: _Measured
    prov: dict[str, Any]
    bar: ProgressBar
    progress: Callable[[Progress], None] | None
    started: float
    model: MeasuredModel
    missing: dict[Task, list[Point]] = dataclasses.field(default_factory=dict)  # every task scheduled so far
    done: int = 0
    written: int = 0
    elsewhere: int = 0

    def schedule(self, tasks: dict[Task, list[Point]]) -> None:
        again = [t for t in tasks if t in self.missing]
        if again:
            raise VisageError(f"the planner named {len(again)} task(s) already evaluated in this run; a bug")
        self.missing.update(tasks)
        self.bar.total = len(self.missing)

    def __call__(self, result: TaskResult) -> None:
        records = []
        if result.elsewhere:  # another client stored them: the planner must see their values too
            for point in self.missing[result.task]:
                stored = self.store.get(point.key)
                if stored is not None:
                    self.measured.add(stored)
        for point in [] if result.elsewhere else self.missing[result.task]:
            rec = record_for(self.plan, point, result, self.prov, self.model)
            self.measured.add(rec)
            if self.store.put(rec, completions_for(self.plan, point, result)):
                records.append(rec)
        self.done += 1
        self.elsewhere += result.elsewhere
        self.written += len(records)
        self.bar.update(self.done, result.target)
        if self.progress is not None:
            self.progress(Progress(self.done, len(self.missing), tuple(records), result.target,
                                   time.monotonic() - self.started))


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
    claim_ttl: float = DEFAULT_TTL,
) -> SweepResult:
    """Measure every point of ``spec`` missing from ``store`` on ``fleet`` (or on ``targets``,
    connected with ``connect`` and closed at the end). ``progress`` runs in this thread after
    each task; an exception it raises (KeyboardInterrupt included) stops the sweep, cancels the
    calls in flight (closing the fleet's channels) and propagates; what was stored stays.
    ``bar``: a ProgressBar, True/False to force the bar on/off, None = the bar on a terminal and
    progress lines elsewhere (:func:`~.progress.progress_display`).
    ``timeout``: deadline per point evaluation (None: the clients' own). ``claim_ttl``: how long
    this run's claims on its tasks outlive it if it crashes (another process sweeping into the
    same store waits that long before taking them over).

    Example::

        with ResultStore("runs/quick/results.sqlite") as store:
            run_sweep(preset("quick"), store, targets=["127.0.0.1:50051"])
            write_outputs(Path("runs/quick"), store)    # summary.json, plots/, report.html
    """
    started, started_at = time.monotonic(), time.time()
    resolved = resolve(validate(spec))
    own = fleet is None
    fleet = Fleet.connect(targets, connect) if fleet is None else fleet
    try:
        facts, servers = fleet.agree()
        check_store_binding(store, spec.name, facts, servers[0].model_name)  # before anything is written or run
        plan = build_plan(resolved, facts, set_hashes=fleet.check_prompt_sets(resolved.prompt_set_names))
        fingerprints = fleet.check_directions(plan.directions)
        record = _MetaRecord(store, _meta(plan, servers, fingerprints, started_at))
        measured = _Measured(store)
        have = set(measured.keys)
        pbar = bar if isinstance(bar, ProgressBar) else progress_display(0, enabled=bar, servers=len(servers))
        pbar.servers = len(servers)
        recorder = _Recorder(plan, store, measured, (record.meta.provenance or RunProvenance()).to_json(), pbar,
                             progress, started, MeasuredModel(servers[0].model_name, facts.model_fingerprint))
        planner, rounds = planner_for(plan), 0
        with Claims(store, claim_ttl) as claims:
            while todo := planner.next_round(measured):
                rounds += 1
                record.list_refined(planner)
                recorder.schedule(todo)
                _evaluate(fleet, plan, todo, recorder, chunk_size=spec.points_per_call, max_attempts=max_attempts,
                          timeout=timeout, claims=claims)
        pbar.close()
        record.finish()
        reused = sum(1 for p in plan.points if p.key in have)
        skipped = sum(1 for p in plan.points if p.key not in measured)
        return SweepResult(plan, servers, recorder.done - recorder.elsewhere, recorder.written, reused,
                           time.monotonic() - started, fingerprints, rounds, skipped, recorder.elsewhere)
    finally:
        if own:
            fleet.close()


def _evaluate(fleet: Fleet, plan: Plan, tasks: dict[Task, list[Point]], recorder: _Recorder, *, chunk_size: int,
              max_attempts: int, timeout: float | None, claims: Claims) -> None:
    """Evaluate ``tasks`` on the fleet (claiming each in the store), handing each result to
    ``recorder`` in this thread."""
    with WorkerPool(fleet, plan, list(tasks), chunk_size=chunk_size, max_attempts=max_attempts,
                    timeout=timeout, claims=claims) as pool:
        for result in pool.results():
            recorder(result)
