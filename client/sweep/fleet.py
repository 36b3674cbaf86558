"""Many servers as one: targets (DNS expansion), agreement checks, and the worker pool.

- :func:`expand_targets`: ``dns:///name:port`` becomes one target per address ``name`` resolves
  to (a Kubernetes headless Service lists one address per pod); other targets pass unchanged.
- :class:`Fleet`: one :class:`~safety_landscape.client.client.Client` per server. Before any GPU
  time is spent, :meth:`Fleet.agree` checks that every server holds the same model (model and
  tokenizer fingerprints, chat template, dtype, device type, torch version), and
  :meth:`Fleet.check_directions` / :meth:`Fleet.check_prompt_sets` that they produce the same
  direction fingerprints and hold the same named prompt sets; any disagreement raises
  :class:`~safety_landscape.client.errors.FleetError` naming the servers and the values.
- :class:`WorkerPool`: one thread per server pulling chunks of sites (weight states) from ONE
  shared queue, so a slow server takes fewer chunks and never stalls the rest. A site's variants
  (harmful, benign, each system prompt, then the capability scores through ``Score``) run back to
  back on one server (no weight switch between them); a chunk with one safety variant per site
  and no capability goes as one server-streamed ``EvaluatePoints`` call.
  When a server fails (UNAVAILABLE, DEADLINE_EXCEEDED, connection loss) the unfinished sites go
  back to the queue for the others (each site at most ``max_attempts`` times), and the worker
  probes its server (tenacity, bounded) and rejoins only if it is back with the same model.
  Results are handed to the caller's thread (:meth:`WorkerPool.results`), which owns the store.
  With :class:`~.claims.Claims` (another sweep process may share the store), a worker claims each
  task in the store before it runs it: a task another live client holds waits (re-tried every
  ``poll`` seconds: it is taken over once that client's claim expires), one it finished is
  reported ``elsewhere``.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from safety_landscape.v1 import landscape_pb2 as pb

from ..client import Client
from ..errors import (
    CancelledError,
    DeadlineExceededError,
    FleetError,
    UnauthenticatedError,
    UnavailableError,
    VisageError,
)
from ..server_state import ServerInfo
from .claims import Claims
from .points import ModelFacts, Plan, Task

__all__ = ["Fleet", "ServerFacts", "TaskResult", "WorkerPool", "expand_targets"]

log = structlog.get_logger("safety_landscape.client.sweep")

#: Errors after which a server's unfinished work moves to the others.
SERVER_FAILURES = (UnavailableError, DeadlineExceededError, CancelledError)


def expand_targets(targets: Sequence[str], resolve: Callable[..., Any] = socket.getaddrinfo) -> list[str]:
    """Targets with each ``dns:///host:port`` replaced by ``ip:port`` for every address of
    ``host`` (sorted, de-duplicated). Raises FleetError if a name resolves to nothing."""
    out: list[str] = []
    for target in targets:
        if not target.startswith("dns:"):
            out.append(target)
            continue
        rest = target[len("dns:"):].lstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise FleetError(f"{target!r}: use dns:///NAME:PORT")
        host = host.strip("[]")
        try:
            infos = resolve(host, int(port), type=socket.SOCK_STREAM)
        except OSError as exc:
            raise FleetError(f"{target!r}: cannot resolve {host!r}: {exc}") from None
        addrs = sorted({info[4][0] for info in infos})
        if not addrs:
            raise FleetError(f"{target!r}: {host!r} resolves to no address")
        out += [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addrs]
    if len(set(out)) != len(out):
        raise FleetError(f"a server is listed twice: {', '.join(out)}")
    if not out:
        raise FleetError("no servers: give at least one --server")
    return out


@dataclass(frozen=True)
class ServerFacts:
    target: str
    model_name: str
    model_fingerprint: str
    tokenizer_fingerprint: str
    chat_template_sha256: str
    dtype: str
    device_type: str
    torch_version: str
    server_version: str
    transformers_version: str = ""  # "" from a server that predates the field
    cuda_version: str = ""
    device: str = ""
    device_name: str = ""

    @classmethod
    def from_info(cls, target: str, info: ServerInfo) -> ServerFacts:
        return cls(target, info.model_name, info.model_fingerprint, info.tokenizer.tokenizer_fingerprint,
                   info.tokenizer.chat_template_sha256, info.dtype, info.device_type, info.torch_version,
                   info.server_version, info.transformers_version, info.cuda_version, info.device, info.device_name)


# Facts every server must share (torch version and device type: directions are bit-identical only then).
_MUST_AGREE = ("model_fingerprint", "tokenizer_fingerprint", "chat_template_sha256", "dtype", "device_type", "torch_version")


def _disagreement(what: str, values: Mapping[str, object]) -> str:
    groups: dict[object, list[str]] = {}
    for target, value in values.items():
        groups.setdefault(value, []).append(target)
    return f"{what} differs: " + "; ".join(f"{', '.join(ts)} -> {v!s}" for v, ts in groups.items())


class Fleet:
    """The servers of one sweep. ``with Fleet.connect(targets) as fleet: fleet.agree()``."""

    def __init__(self, clients: Sequence[Client]) -> None:
        if not clients:
            raise FleetError("no servers: give at least one")
        self.clients = list(clients)

    @classmethod
    def connect(cls, targets: Sequence[str], factory: Callable[[str], Client] = Client) -> Fleet:
        return cls([factory(t) for t in expand_targets(targets)])

    @property
    def targets(self) -> list[str]:
        return [c.target for c in self.clients]

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def survey(self) -> list[ServerFacts]:
        facts, down = [], []
        for c in self.clients:
            try:
                facts.append(ServerFacts.from_info(c.target, c.info()))
            except UnauthenticatedError as exc:  # up, but the token is missing or refused: not "bring it up"
                raise UnauthenticatedError(f"{c.target}: {exc.details}", code=exc.code, method=exc.method) from None
            except VisageError as exc:
                down.append(f"{c.target} ({type(exc).__name__}: {exc})")
        if down:
            raise FleetError("cannot reach every server, so cannot check that they agree: " + "; ".join(down)
                             + ". Remove it from --server or bring it up.")
        return facts

    def agree(self) -> tuple[ModelFacts, list[ServerFacts]]:
        """The model facts all servers share, or FleetError listing every difference."""
        facts = self.survey()
        problems = []
        for name in _MUST_AGREE:
            values = {f.target: getattr(f, name) for f in facts}
            if len(set(values.values())) > 1:
                problems.append(_disagreement(name, values))
        if problems:
            raise FleetError("the servers hold different models, so their results cannot be combined: "
                             + " | ".join(problems))
        f = facts[0]
        return ModelFacts(f.model_fingerprint, f.tokenizer_fingerprint, f.chat_template_sha256, f.dtype, f.device_type), facts

    def check_prompt_sets(self, names: Sequence[str]) -> dict[str, str]:
        """name -> sha256 of each named set, which every server must hold with the same content."""
        by_server = {c.target: {s.name: s.sha256 for s in c.list_prompt_sets()} for c in self.clients}
        out, problems = {}, []
        for name in names:
            values = {t: sets.get(name, "(missing)") for t, sets in by_server.items()}
            if "(missing)" in values.values():
                known = sorted(set().union(*by_server.values()))
                problems.append(f"prompt set {name!r} is missing on "
                                f"{', '.join(t for t, v in values.items() if v == '(missing)')} (known: {', '.join(known)})")
            elif len(set(values.values())) > 1:
                problems.append(_disagreement(f"prompt set {name!r} sha256", values))
            else:
                out[name] = next(iter(values.values()))
        if problems:
            raise FleetError(" | ".join(problems))
        return out

    def check_directions(self, directions: Mapping[str, pb.DirectionSpec]) -> dict[str, str]:
        """label -> fingerprint: every server creates each direction (idempotent) and must report
        the same fingerprint; otherwise FleetError naming the servers and fingerprints."""
        out, problems = {}, []
        for label, spec in directions.items():
            values = {c.target: c.create_direction(spec).fingerprint for c in self.clients}
            if len(set(values.values())) > 1:
                problems.append(_disagreement(f"direction {label} fingerprint", values))
            else:
                out[label] = next(iter(values.values()))
        if problems:
            raise FleetError("the servers do not produce the same directions (another torch build or "
                             "device?): " + " | ".join(problems))
        return out


# -- the worker pool ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskResult:
    """A safety task's ``response``, or a capability task's ``value`` (response None); or, with
    ``elsewhere``, a task another client sharing the store finished (nothing to record)."""

    task: Task
    response: pb.EvaluateSafetyResponse | None
    target: str
    value: float | None = None
    elsewhere: bool = False


@dataclass
class _Chunk:
    sites: list[str]
    attempts: int = 0
    failed_on: list[str] = field(default_factory=list)


@dataclass
class _Failed:
    error: BaseException


class WorkerPool:
    """Evaluate ``tasks`` of ``plan`` on every server of ``fleet``; see the module docstring."""

    def __init__(self, fleet: Fleet, plan: Plan, tasks: Sequence[Task], *, chunk_size: int = 4,
                 max_attempts: int = 3, timeout: float | None = None, probe_attempts: int = 3,
                 claims: Claims | None = None, poll: float = 1.0) -> None:
        self.fleet, self.plan, self.timeout = fleet, plan, timeout
        self.max_attempts, self.probe_attempts = max_attempts, probe_attempts
        self.claims, self.poll = claims, poll
        self._deferred: set[Task] = set()  # held by another client sharing the store
        self._running: set[Task] = set()  # being evaluated by one of our workers
        self._next_poll = 0.0
        self._by_site: dict[str, list[Task]] = {}
        for t in tasks:
            self._by_site.setdefault(t.site, []).append(t)
        for site_tasks in self._by_site.values():  # safety variants first, capability scores last
            site_tasks.sort(key=lambda t: t.variant)
        # Sites in the plan's order (series by series, along the axis): a chunk is contiguous.
        sites = sorted(self._by_site, key=lambda s: plan.sites[s].order)
        n = max(1, len(fleet.clients))
        self._size = max(1, min(chunk_size, -(-len(sites) // (n * 3))))  # >= 3 chunks per server
        self._queue: queue.Queue[_Chunk] = queue.Queue()
        self._enqueue(sites)
        self._lock = threading.Lock()
        self._done: set[Task] = set()
        self._pending_sites = len(sites)
        self._outstanding = set(sites)
        self._results: queue.Queue[TaskResult | _Failed] = queue.Queue()
        self._stop = threading.Event()
        self._alive = 0
        self._reasons: dict[str, str] = {}
        self._threads = [threading.Thread(target=self._work, args=(c,), daemon=True, name=f"sweep-{c.target}")
                         for c in fleet.clients]

    # -- caller side -------------------------------------------------------------------------
    def __enter__(self) -> WorkerPool:
        self._alive = len(self._threads)
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._stop.set()
        if exc_type is not None:  # interrupted: cancel the calls in flight, nothing more is stored
            self.fleet.close()
        for t in self._threads:
            t.join(timeout=10.0)

    def results(self) -> Iterator[TaskResult]:
        """Task results as they finish (in this thread); FleetError when no server can finish."""
        while True:
            try:
                item = self._results.get(timeout=0.2)
            except queue.Empty:
                with self._lock:
                    if not self._outstanding:
                        return
                    if self._alive == 0:
                        raise FleetError("no usable server left with work remaining: "
                                         + "; ".join(f"{t}: {r}" for t, r in self._reasons.items())) from None
                continue
            if isinstance(item, _Failed):
                raise item.error
            yield item

    # -- worker side -------------------------------------------------------------------------
    def _work(self, client: Client) -> None:
        try:
            while not self._stop.is_set():
                try:
                    chunk = self._queue.get(timeout=0.1)
                except queue.Empty:
                    with self._lock:
                        if not self._outstanding:
                            return
                    self._retry_deferred()
                    continue
                try:
                    self._run_chunk(client, chunk)
                except SERVER_FAILURES as exc:
                    if self._stop.is_set():
                        return
                    self._requeue(chunk, client.target, exc)
                    if not self._probe(client):
                        self._reasons[client.target] = f"failed ({exc}) and did not come back"
                        log.warning("server left the sweep", server=client.target, error=str(exc))
                        return
        except BaseException as exc:  # a bug or a refusal (INVALID_ARGUMENT...): stop the sweep
            if not self._stop.is_set():
                self._results.put(_Failed(exc))
                self._stop.set()
        finally:
            with self._lock:
                self._alive -= 1

    def _enqueue(self, sites: Sequence[str]) -> None:
        for i in range(0, len(sites), self._size):
            self._queue.put(_Chunk(list(sites[i:i + self._size])))

    def _retry_deferred(self) -> None:
        """Every ``poll`` seconds, queue the sites of the tasks another client held again: each is
        claimed anew (done by then, still held, or its holder's claim expired: ours to run)."""
        with self._lock:
            if not self._deferred or time.monotonic() < self._next_poll:
                return
            self._next_poll = time.monotonic() + self.poll
            sites = sorted({t.site for t in self._deferred}, key=lambda s: self.plan.sites[s].order)
            self._deferred.clear()
        self._enqueue(sites)

    def _claimed(self, todo: dict[str, list[Task]]) -> dict[str, list[Task]]:
        """The tasks of ``todo`` to run here now: not running on another of our workers and, with
        claims, claimed in the store; one another client finished is delivered ``elsewhere``, one
        it holds waits in ``_deferred``. Marks the returned tasks running."""
        out: dict[str, list[Task]] = {}
        for site, tasks in todo.items():
            for task in tasks:
                with self._lock:
                    if task in self._running or task in self._done:
                        continue
                    self._running.add(task)
                state = "mine" if self.claims is None else self.claims.take([p.key for p in self.plan.tasks[task]])
                if state == "mine":
                    out.setdefault(site, []).append(task)
                    continue
                with self._lock:
                    self._running.discard(task)
                    if state == "held":
                        self._deferred.add(task)
                if state == "done":
                    self._deliver(task, None, "", elsewhere=True)
        return out

    def _requeue(self, chunk: _Chunk, target: str, exc: BaseException) -> None:
        with self._lock:
            left = [s for s in chunk.sites if s in self._outstanding]
        if not left:
            return
        again = _Chunk(left, chunk.attempts + 1, [*chunk.failed_on, target])
        if again.attempts >= self.max_attempts:
            self._results.put(_Failed(FleetError(
                f"{len(left)} point(s) failed {again.attempts} times (on {', '.join(again.failed_on)}); last error: {exc}")))
            self._stop.set()
            return
        log.warning("moving points to other servers", server=target, points=len(left), error=str(exc))
        self._queue.put(again)

    def _probe(self, client: Client) -> bool:
        """Is the server back (SERVING, same model)? Bounded exponential retries."""
        want = self.plan.facts.model_fingerprint

        def check() -> bool:
            if self._stop.is_set():
                return True
            try:
                return client.health(timeout=5.0) == "SERVING" and client.info().model_fingerprint == want
            except VisageError:
                return False

        retrying = Retrying(stop=stop_after_attempt(self.probe_attempts), wait=wait_exponential(multiplier=0.5, max=8),
                            retry=retry_if_result(lambda ok: not ok), retry_error_callback=lambda state: False)
        return bool(retrying(check)) and not self._stop.is_set()

    def _deliver(self, task: Task, response: pb.EvaluateSafetyResponse | None, target: str, value: float | None = None,
                 *, elsewhere: bool = False) -> None:
        with self._lock:
            if task in self._done:
                return
            self._done.add(task)
            site_done = all(t in self._done for t in self._by_site[task.site])
            if site_done:
                self._outstanding.discard(task.site)
        self._results.put(TaskResult(task, response, target, value, elsewhere))

    def _run_chunk(self, client: Client, chunk: _Chunk) -> None:
        with self._lock:
            todo = {s: [t for t in self._by_site[s] if t not in self._done] for s in chunk.sites if s in self._outstanding}
        todo = self._claimed({s: ts for s, ts in todo.items() if ts})
        try:
            self._evaluate(client, todo)
        finally:
            with self._lock:
                self._running.difference_update(t for ts in todo.values() for t in ts)

    def _evaluate(self, client: Client, todo: dict[str, list[Task]]) -> None:
        variants = {t.variant for ts in todo.values() for t in ts}
        if len(todo) > 1 and len(variants) == 1 and self.plan.variants[next(iter(variants))].safety:
            # one settings: one streamed call for the chunk
            sites = list(todo)
            variant = self.plan.variants[variants.pop()]
            timeout = self.timeout * len(sites) if self.timeout else None
            stream = client.evaluate_points(variant.evaluation, [self.plan.perturbation(s) for s in sites], timeout=timeout)
            for res in stream:
                if self._stop.is_set():
                    return
                self._deliver(todo[sites[res.index]][0], res.result.proto, client.target)
            return
        for site, tasks in todo.items():  # variants of one site back to back: one weight switch
            at = self.plan.perturbation(site)
            for task in tasks:
                if self._stop.is_set():
                    return
                variant = self.plan.variants[task.variant]
                if variant.capability is not None:  # right after the safety variants: same weights
                    self._deliver(task, None, client.target, variant.capability.score(client, at))
                    continue
                response = client.evaluate(variant.evaluation, at=at, timeout=self.timeout)
                self._deliver(task, response.proto, client.target)
