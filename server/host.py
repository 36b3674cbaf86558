"""The one owner of the model: a bounded job queue and the single worker thread that runs it.

Every piece of device work (applying a weight state, generating, scoring, creating a direction)
is a ``Job`` run on this thread, never in a gRPC handler thread, so GPU work is serialised and a
request always runs at the weights it names: the worker applies the job's weight state right
before the job's work, with nothing in between.

Scheduling: round-robin between tenants, the tenant served least recently first (fair: one
tenant's backlog cannot starve another, and a tenant that queues a job while another floods the
queue waits behind the running job only, not behind a turn the flooder has already been
promised), and within that, jobs that need the weights already applied go first (grouping saves
switches) as long as no tenant waits more than ``MAX_SKIPS`` turns. Admission to the queue is a fair share
(``fair_share.py``): the queue in all, a per-tenant limit, and a reserve of slots that only a
tenant with nothing queued may take. A refused job answers RESOURCE_EXHAUSTED with a retry hint;
a cancelled or expired job is dropped from the queue or stopped at its next check (between
decode steps, batches, or tensors of a direction). ``stop`` lets the queue drain within a
timeout, then cancels the running job and fails the queued ones, so a shutdown is bounded
whatever is running.

The host also runs the request kinds whose bookkeeping is its own: ``generate`` and ``evaluate``
observe the generation metrics; ``evaluate_points`` orders a grid's points (theta0 first) and
stops when the caller goes away. ``HostSlot`` hands the servicers the host once it exists
(UNAVAILABLE while the model loads).

Observability: ``served`` is a bounded record (the last ``SERVED_HISTORY`` jobs, oldest first)
of what the worker ran, in order: ``ServedJob(seq, tenant, key, switched, outcome)``. Tests use it
to prove fairness and grouping; an operator can read it from a debugger. ``queued_cancelled``
counts jobs taken out of the queue because their caller went away before they ran.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from .config import Limits
from .context import ANONYMOUS
from .engine.admission import Admission, AdmittedPrompts, TermRequest
from .engine.chat import ChatFormat
from .engine.engine import Engine, weights_key
from .engine.evaluation import EvalOutcome, EvalSettings
from .engine.generation import GenerationParams, GenerationStats, SequenceResult
from .engine.weights import AppliedState
from .errors import Cancelled, DeadlineExceeded, ResourceExhausted, Unavailable
from .fair_share import Share, ShareRefusal, check_share
from .metrics import ServerMetrics

__all__ = ["MAX_SKIPS", "SERVED_HISTORY", "Call", "HostSlot", "Job", "ModelHost", "ServedJob"]

T = TypeVar("T")
MAX_SKIPS = 4
SERVED_HISTORY = 1024
STOP_BOUND_SECONDS = 2.0  # after the drain's timeout: how long a cancelled running job may take to stop
RESULT_SLACK_SECONDS = 1.0  # a caller waits this long past its deadline for the worker's own answer


@dataclass(frozen=True)
class ServedJob:
    """One job the worker took off the queue, in service order."""

    seq: int  # submission order (0, 1, 2, ... over the host's life)
    tenant: str
    key: Any  # the weights it needed (weights_key), None for weight-independent work
    switched: bool  # whether running it changed the applied weights
    outcome: str  # "ok", "error", "cancelled"


@dataclass(frozen=True)
class Call:
    """What the host needs to know of the RPC a job serves: who, until when, whether it is still there."""

    tenant: str = ANONYMOUS
    admin: bool = True  # an admin caller (or no authentication): see weights.py for what it changes
    deadline: float | None = None  # time.monotonic() deadline
    on_cancel: Callable[[Callable[[], None]], Any] | None = None  # registers a callback for when the caller goes away
    is_active: Callable[[], bool] = lambda: True


log = structlog.get_logger("safety_landscape.host")


@dataclass
class Job(Generic[T]):
    tenant: str
    terms: Sequence[TermRequest] | None  # None: the work does not depend on the weights
    work: Callable[[Engine, Callable[[], bool]], T]  # (engine, should_cancel) -> result
    admin: bool = True
    future: Future[T] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic() deadline
    enqueued_at: float = field(default_factory=time.monotonic)
    seq: int = 0
    skips: int = 0
    state: AppliedState | None = None
    queue_seconds: float = 0.0

    @property
    def key(self) -> tuple[tuple[str, float], ...] | None:
        return weights_key(self.terms) if self.terms is not None else None

    def should_cancel(self) -> bool:
        if self.cancelled.is_set():
            return True
        return self.deadline is not None and time.monotonic() > self.deadline


class ModelHost:
    def __init__(self, engine: Engine, limits: Limits, metrics: ServerMetrics | None = None) -> None:
        self.engine = engine
        self.limits = limits
        self.metrics = metrics
        self._queues: OrderedDict[str, deque[Job[Any]]] = OrderedDict()
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._turns: OrderedDict[str, int] = OrderedDict()  # tenant -> the turn it was last served (bounded)
        self._turn = itertools.count()
        self._share = Share(limits.max_queued_jobs, limits.max_queued_jobs_per_tenant, limits.queue_reserve_effective())
        self._stopping = False
        self._busy_since: float | None = None
        self._running: Job[Any] | None = None
        self.served: deque[ServedJob] = deque(maxlen=SERVED_HISTORY)
        self.queued_cancelled = 0
        self._thread = threading.Thread(target=self._loop, name="model-host", daemon=True)
        self._thread.start()

    @property
    def admission(self) -> Admission:
        """The servicers' checks: a request's bounds, the prompts it names and their encoding, run on
        the request's own thread before anything queues (any thread may call them)."""
        return self.engine.admission

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, job: Job[T]) -> Future[T]:
        with self._cond:
            if self._stopping:
                raise Unavailable("the server is shutting down; retry on another server")
            queued = sum(len(q) for q in self._queues.values())
            mine = len(self._queues.get(job.tenant, ()))
            refusal = check_share(self._share, taken=queued, mine=mine)
            if refusal is not None:
                raise self._refuse(refusal, job.tenant, queued=queued, mine=mine)
            job.seq = next(self._seq)
            self._queues.setdefault(job.tenant, deque()).append(job)
            self._publish_depth()
            self._cond.notify()
        return job.future

    def _refuse(self, refusal: ShareRefusal, tenant: str, *, queued: int, mine: int) -> ResourceExhausted:
        limits = self.limits
        if refusal is ShareRefusal.TOTAL:
            self._reject("queue_full")
            return ResourceExhausted(
                f"the job queue is full ({queued} jobs, max_queued_jobs={limits.max_queued_jobs}); "
                f"retry in about {self._retry_hint(queued):.0f} s",
                limit="max_queued_jobs", retry_after_seconds=self._retry_hint(queued),
            )
        self._reject("tenant_queue_full")
        if refusal is ShareRefusal.TENANT:
            return ResourceExhausted(
                f"tenant {tenant!r} has {mine} queued jobs, the limit "
                f"(max_queued_jobs_per_tenant={limits.max_queued_jobs_per_tenant}); wait for some to finish",
                limit="max_queued_jobs_per_tenant", retry_after_seconds=self._retry_hint(mine),
            )
        return ResourceExhausted(
            f"tenant {tenant!r} has {mine} queued jobs and the queue's last {self._share.reserve} slots are kept for "
            f"tenants with nothing queued (queue_reserve of max_queued_jobs={limits.max_queued_jobs}); "
            "wait for some of yours to finish",
            limit="queue_reserve", retry_after_seconds=self._retry_hint(mine),
        )

    def run(
        self,
        work: Callable[[Engine, Callable[[], bool]], T],
        *,
        tenant: str = "anonymous",
        admin: bool = True,
        terms: Sequence[TermRequest] | None = None,
        deadline: float | None = None,
        on_cancel: Callable[[Callable[[], None]], Any] | None = None,
    ) -> tuple[T, Job[T]]:
        """Submit and wait. `on_cancel` registers a callback fired when the caller goes away."""
        job: Job[T] = Job(tenant=tenant, admin=admin, terms=terms, work=work, deadline=deadline)
        self.submit(job)
        # gRPC fires on_cancel's callback when the RPC ends for any reason; it only matters while the
        # job is queued (dropped at once, freeing its queue slot) or running (stopped between steps).
        if on_cancel is not None and on_cancel(lambda: self._cancel(job)) is False:  # the RPC had already ended
            self._cancel(job)
        return self._wait(job), job

    def _wait(self, job: Job[T]) -> T:
        """The job's result. Past its deadline (and a little slack for the worker's own answer) the
        caller stops waiting, so a request thread is never held by work that overran."""
        if job.deadline is None:
            return job.future.result()
        try:
            return job.future.result(timeout=max(0.0, job.deadline - time.monotonic()) + RESULT_SLACK_SECONDS)
        except FutureTimeout:
            self._cancel(job)
            raise DeadlineExceeded("the call's deadline passed; its work was stopped") from None

    def run_call(
        self, work: Callable[[Engine, Callable[[], bool]], T], call: Call, *, terms: Sequence[TermRequest] | None = None
    ) -> tuple[T, Job[T]]:
        """``run`` for an RPC: its tenant, deadline and cancellation from ``call``."""
        return self.run(
            work, tenant=call.tenant, admin=call.admin, terms=terms, deadline=call.deadline, on_cancel=call.on_cancel
        )

    # -- the request kinds whose bookkeeping is the host's ----------------------------------------

    def generate(
        self,
        prompts: Sequence[str],
        *,
        admitted: AdmittedPrompts,
        system_prompt: str | None,
        chat_format: ChatFormat,
        params: GenerationParams,
        terms: Sequence[TermRequest],
        call: Call,
    ) -> tuple[list[SequenceResult], GenerationStats, Job[Any]]:
        """Generate for ``prompts``, ``admitted`` (encoded, rows per batch) by ``Engine.admission``,
        at the weights of ``terms``."""

        def work(engine: Engine, cancel: Callable[[], bool]) -> tuple[list[SequenceResult], GenerationStats]:
            return engine.generate(
                prompts, system_prompt=system_prompt, chat_format=chat_format, params=params, should_cancel=cancel,
                encoded=admitted.encoded, batch_rows=admitted.rows,
            )

        (results, stats), job = self.run_call(work, call, terms=terms)
        self._observe(stats)
        return results, stats, job

    def evaluate(self, settings: EvalSettings, terms: Sequence[TermRequest], call: Call) -> tuple[EvalOutcome, Job[Any]]:
        """One point: evaluate ``settings`` at the weights of ``terms``."""
        outcome, job = self.run_call(lambda engine, cancel: engine.evaluate(settings, should_cancel=cancel), call, terms=terms)
        self._observe(outcome.stats, saved=outcome.tokens_saved)
        if self.metrics is not None:
            self.metrics.points_evaluated_total.inc()
        return outcome, job

    def evaluate_points(
        self, settings: EvalSettings, points: Sequence[Sequence[TermRequest]], call: Call
    ) -> Iterator[tuple[int, EvalOutcome, Job[Any]]]:
        """(index, outcome, job) per point: points at theta0 (every coefficient zero) first, then
        in the order sent; stops once the caller has gone away."""
        order = sorted(range(len(points)), key=lambda i: (not _at_origin(points[i]), i))
        for index in order:
            if not call.is_active():
                return
            outcome, job = self.evaluate(settings, points[index], call)
            yield index, outcome, job

    def _observe(self, stats: GenerationStats, saved: int = 0) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.generated_tokens_total.inc(stats.generated_tokens)
        metrics.tokens_saved_total.inc(saved)
        metrics.prefill_seconds.observe(stats.prefill_seconds)
        metrics.decode_seconds.observe(stats.decode_seconds)
        metrics.observe_decode(tokens=stats.generated_tokens, seconds=stats.decode_seconds)
        metrics.oom_splits_total.inc(stats.oom_splits)
        for size in stats.batches:
            metrics.batch_size.observe(size)

    def _cancel(self, job: Job[Any]) -> None:
        job.cancelled.set()
        with self._cond:
            queue = self._queues.get(job.tenant)
            if queue is None or not any(j is job for j in queue):
                return  # running or done: the work polls job.should_cancel
            queue.remove(job)
            if not queue:
                del self._queues[job.tenant]
            self.queued_cancelled += 1
            self._publish_depth()
        if self.metrics is not None:
            self.metrics.cancelled_jobs_total.inc()
        _settle(job.future, exc=Cancelled("the call was cancelled while its job was queued"))

    def _retry_hint(self, ahead: int) -> float:
        return max(1.0, float(ahead))  # about a second per queued job; refined by metrics later

    def _reject(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.reject(reason)

    def _publish_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(sum(len(q) for q in self._queues.values()))
            self.metrics.set_queued({t: len(q) for t, q in self._queues.items()})

    def busy(self) -> bool:
        """Whether the worker is running a job now."""
        return self._running is not None

    def queue_depth(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    # -- the worker -----------------------------------------------------------------------------

    def _next_job(self) -> Job[Any] | None:
        """Pick the next job (call with the lock held): fair round-robin, then grouping."""
        # Least recently served first; a tenant never served (or long ago forgotten) before all others.
        tenants = sorted((t for t, q in self._queues.items() if q), key=lambda t: self._turns.get(t, -1))
        if not tenants:
            return None
        current = self.engine.weights.current
        first = tenants[0]
        chosen = first
        if self._queues[first][0].skips < MAX_SKIPS:
            for tenant in tenants:
                head = self._queues[tenant][0]
                if head.terms is None or _same_weights(head.key, current):
                    chosen = tenant
                    break
        if chosen != first:
            self._queues[first][0].skips += 1
        queue = self._queues[chosen]
        # Within a tenant, prefer a queued job at the current weights (grouping), else FIFO.
        pick = next((j for j in queue if j.terms is not None and _same_weights(j.key, current)), queue[0])
        queue.remove(pick)
        self._served_turn(chosen)  # round-robin: this tenant goes to the back
        if not queue:
            del self._queues[chosen]
        return pick

    def _served_turn(self, tenant: str) -> None:
        self._turns[tenant] = next(self._turn)
        self._turns.move_to_end(tenant)
        if len(self._turns) > SERVED_HISTORY:  # forgets the tenant served longest ago: it stays first
            self._turns.popitem(last=False)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not any(self._queues.values()):
                    self._cond.wait()
                if self._stopping and not any(self._queues.values()):
                    return
                job = self._next_job()
                self._publish_depth()
            if job is None:
                continue
            self._execute(job)

    def _execute(self, job: Job[Any]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        job.queue_seconds = time.monotonic() - job.enqueued_at
        if job.should_cancel():
            if self.metrics is not None:
                self.metrics.cancelled_jobs_total.inc()
            self._record(job, "cancelled")
            job.future.set_exception(_stop_reason(job, Cancelled("the call was cancelled or its deadline passed while queued")))
            return
        self._busy_since = time.monotonic()
        self._running = job
        outcome = "ok"
        try:
            if job.terms is not None:
                job.state = self.engine.at(job.terms, tenant=job.tenant, admin=job.admin, should_cancel=job.should_cancel)
                if job.state.switched and self.metrics is not None:
                    self.metrics.weight_switches_total.inc()
                    self.metrics.weight_switch_seconds.observe(job.state.apply_seconds)
            result = job.work(self.engine, job.should_cancel)
        except BaseException as exc:  # handed to the caller's thread, which maps it to a status
            outcome = "cancelled" if isinstance(exc, Cancelled) else "error"  # caller gone or deadline passed
            if isinstance(exc, Cancelled) and self.metrics is not None:
                self.metrics.cancelled_jobs_total.inc()
            self._record(job, outcome)
            _settle(job.future, exc=_stop_reason(job, exc))
        else:
            self._record(job, outcome)
            _settle(job.future, result=result)
        finally:
            self._busy_since = None
            self._running = None

    def _record(self, job: Job[Any], outcome: str) -> None:
        switched = bool(job.state is not None and job.state.switched)
        self.served.append(ServedJob(seq=job.seq, tenant=job.tenant, key=job.key, switched=switched, outcome=outcome))

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new jobs and let the queued ones finish within ``timeout`` seconds (None: however
        long they take); then cancel the running job, fail the queued ones with UNAVAILABLE, and
        wait at most ``STOP_BOUND_SECONDS`` more for the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return
        with self._cond:
            abandoned = [job for queue in self._queues.values() for job in queue]
            self._queues.clear()
            self._publish_depth()
            running = self._running
        gone = Unavailable("the server shut down before this job could finish; retry on another server")
        for job in abandoned:
            job.cancelled.set()
            _settle(job.future, exc=gone)
        if running is not None:
            running.cancelled.set()  # stops at its next check
        self._thread.join(STOP_BOUND_SECONDS)
        if running is not None and self._thread.is_alive():
            log.error("the running job did not stop in time", tenant=running.tenant, seq=running.seq)
            _settle(running.future, exc=gone)  # its caller is answered; the worker is a daemon thread


class HostSlot:
    """The servicers' host provider: calling it returns the host, or raises UNAVAILABLE while
    the model is still loading (before ``set``)."""

    def __init__(self) -> None:
        self._host: ModelHost | None = None

    def set(self, host: ModelHost) -> None:
        self._host = host

    @property
    def host(self) -> ModelHost | None:
        return self._host

    def __call__(self) -> ModelHost:
        host = self._host
        if host is None:
            raise Unavailable("the model is still loading; retry when health reports SERVING")
        return host


def _settle(future: Future[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    """Give ``future`` its result or exception, unless a shutdown already answered it."""
    if future.done():
        return
    try:
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except Exception:  # InvalidStateError: answered between the check and the set
        pass


def _at_origin(terms: Sequence[TermRequest]) -> bool:
    return all(t.coefficient == 0.0 for t in terms)


def _same_weights(key: Any, current: Any) -> bool:
    return key == current or (not key and not current)


def _stop_reason(job: Job[Any], exc: BaseException) -> BaseException:
    """A stop caused by the job's own deadline (not by the caller going away) is DEADLINE_EXCEEDED,
    so the caller sees the same code whether its deadline fired first or the server's check did."""
    if isinstance(exc, Cancelled) and not job.cancelled.is_set() and job.deadline is not None and time.monotonic() > job.deadline:
        return DeadlineExceeded("the call's deadline passed; its work was stopped")
    return exc
