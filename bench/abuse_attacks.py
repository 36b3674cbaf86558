"""The attacks of ``bench/abuse.py``: what a hostile or careless tenant sends to a shared server.

Each attack is a function ``(Target) -> Outcome``: it sends its requests as the tenant
"mallory" (raw stubs, so nothing is checked on the client side first) and reports the status it
got and how long the answer took. ``bench/abuse.py`` runs each one against a fresh server while
the tenant "victor" times his small calls. An attack that also needs a special server (flags,
a memory cap, a signal) says so in its ``Attack`` entry.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

__all__ = ["ATTACKS", "Attack", "Outcome", "Target"]

MALLORY, VICTOR, OPS = "mallory-token-5e1f", "victor-token-9a3c", "ops-token-c0d2"
TOKENS_ENV = f"mallory:{MALLORY},victor:{VICTOR},ops:{OPS}:admin"
MB = 1 << 20


@dataclass
class Target:
    """The server under attack: its address, its process id, and a way to signal it."""

    address: str
    pid: int
    signal_server: Callable[[int], None]
    wait_exit: Callable[[float], float | None]  # seconds until it exited, None if still running
    grace_seconds: float


@dataclass(frozen=True)
class Outcome:
    status: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Target], Outcome]
    server_args: tuple[str, ...] = ()
    # Flags given only to a server that knows them (a setting the fix added: the same attack, with
    # the operator allowing what the attack needs, so it reaches the code under test).
    server_args_if_known: tuple[str, ...] = ()
    address_space_mib: int = 0  # run the server under this RLIMIT_AS (0: none)
    victim: bool = True  # time the victim's calls during the attack
    prepare: Callable[[], None] | None = None  # run before the server starts (files it reads)


@dataclass
class Stubs:
    landscape: pb_grpc.LandscapeServiceStub
    directions: pb_grpc.DirectionServiceStub
    channel: grpc.Channel
    token: str
    metadata: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def open(cls, address: str, token: str, options: Sequence[tuple[str, object]] = ()) -> Stubs:
        channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * MB), *options])
        return cls(pb_grpc.LandscapeServiceStub(channel), pb_grpc.DirectionServiceStub(channel), channel, token,
                   (("authorization", f"Bearer {token}"),))

    @property
    def candidates(self) -> pb_grpc.CandidateServiceStub:
        return pb_grpc.CandidateServiceStub(self.channel)


def timed(call: Callable[[], object]) -> Outcome:
    """Run one RPC; its status name (OK or the gRPC code) and details, cut for the table."""
    started = time.monotonic()
    try:
        call()
    except grpc.RpcError as exc:
        details = (exc.details() or "").replace("\n", " ")
        return Outcome(exc.code().name, time.monotonic() - started, details[:110])
    return Outcome("OK", time.monotonic() - started)


def _generate(prompts: Sequence[str], tokens: int = 4, terms: Sequence[pb.Term] = ()) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompts=list(prompts), generation=pb.GenerationSettings(max_new_tokens=tokens),
                              perturbation=pb.Perturbation(terms=list(terms)))


def _random_term(coefficient: float = 0.05, **random: object) -> pb.Term:
    return pb.Term(spec=pb.DirectionSpec(random=pb.RandomDirectionSpec(**random)), coefficient=coefficient)


# -- one huge request -------------------------------------------------------------------------

def score_huge_text(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    request = pb.ScoreRequest(items=[pb.ScoreItem(context="a" * 1_000_000, continuation=" b")])
    return timed(lambda: s.landscape.Score(request, timeout=30, metadata=s.metadata))


def score_under_memory_cap(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    # Two items of different lengths: the padded batch needs a (2, 1, S, S) attention mask.
    items = [pb.ScoreItem(context="a" * 30_000, continuation=" b"), pb.ScoreItem(context="a" * 29_990, continuation=" b")]
    return timed(lambda: s.landscape.Score(pb.ScoreRequest(items=items), timeout=60, metadata=s.metadata))


def reference_draw_index(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    term = _random_term(seed=1, stream=pb.RANDOM_STREAM_REFERENCE, index=2**32 - 1)
    return timed(lambda: s.landscape.Generate(_generate(["Hi"], terms=[term]), timeout=20, metadata=s.metadata))


def include_patterns(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    term = _random_term(seed=2, include=[f"q{i % 100_000}" for i in range(1_500_000)])  # 12 MB: under 16 MiB
    return timed(lambda: s.landscape.Generate(_generate(["Hi"], terms=[term]), timeout=20, metadata=s.metadata))


def huge_prompt(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    request = _generate(["a" * 16_000_000])
    return timed(lambda: s.landscape.Generate(request, timeout=30, metadata=s.metadata))


def many_keywords(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    settings = pb.EvaluationSettings(
        prompts=pb.PromptSource(inline=pb.InlinePrompts(prompts=["Tell me a story"])),
        generation=pb.GenerationSettings(max_new_tokens=64),
        judge=pb.JudgeSpec(keyword=pb.KeywordJudge(keywords=[f"kw{i:06d}" for i in range(400_000)])),
    )
    request = pb.EvaluateSafetyRequest(settings=settings)
    return timed(lambda: s.landscape.EvaluateSafety(request, timeout=30, metadata=s.metadata))


def huge_id(t: Target) -> Outcome:
    s = Stubs.open(t.address, MALLORY)
    term = pb.Term(direction_id="d-" + "x" * MB, coefficient=0.1)
    return timed(lambda: s.landscape.Generate(_generate(["Hi"], terms=[term]), timeout=20, metadata=s.metadata))


def garbage_bytes(t: Target) -> Outcome:
    channel = grpc.insecure_channel(t.address)
    raw = channel.unary_unary("/safety_landscape.v1.LandscapeService/Generate")  # bytes in, bytes out
    return timed(lambda: raw(b"\xff\xfe\xfd garbage \x00\x01", timeout=10, metadata=(("authorization", f"Bearer {MALLORY}"),)))


# -- many calls -------------------------------------------------------------------------------

def _points_request(points: int) -> pb.EvaluatePointsRequest:
    """Many prompts, one new token each, with completions: large results that cost little to make."""
    settings = pb.EvaluationSettings(
        prompts=pb.PromptSource(inline=pb.InlinePrompts(prompts=[f"Story {i}" for i in range(512)])),
        generation=pb.GenerationSettings(max_new_tokens=1), return_completions=True, disable_early_stop=True,
    )
    return pb.EvaluatePointsRequest(settings=settings, points=[pb.Perturbation() for _ in range(points)])


def unread_streams(t: Target) -> Outcome:
    """100 EvaluatePoints streams on one connection, opened over 20 s and never read (a client
    with small HTTP/2 windows, as a stuck or slow reader has). A stream the server cancels shows
    only when read: each is read once the 40 s are over."""
    s = Stubs.open(t.address, MALLORY, options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)])
    request = _points_request(1000)
    started = time.monotonic()
    ended: list[tuple[float, str, str]] = []  # (seconds, status, details) of the calls refused at once

    def on_done(call: grpc.Future) -> None:
        if call.code() is not grpc.StatusCode.OK:
            ended.append((time.monotonic() - started, call.code().name, (call.details() or "")[:110]))

    calls = []
    for _ in range(100):
        call = s.landscape.EvaluatePoints(request, timeout=120, metadata=s.metadata)
        call.add_done_callback(on_done)
        calls.append(call)
        time.sleep(0.2)
    time.sleep(20)  # hold them open, unread, while the victim is timed
    codes: dict[str, int] = {}
    for call in calls:
        try:
            next(call)
            code = "still sending"
        except grpc.RpcError as exc:
            code = exc.code().name
        except StopIteration:
            code = "OK"
        codes[code] = codes.get(code, 0) + 1
        call.cancel()
    note = "after 40 s: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items()))
    if ended:
        seconds, status, details = min(ended)
        return Outcome(status, seconds, f"{note}; first refusal: {details}")
    return Outcome("(held open)", time.monotonic() - started, note)


def queue_flood(t: Target) -> Outcome:
    """24 threads keep the queue full of mallory's jobs (4 prompts x 64 new tokens) for 20 s."""
    s = Stubs.open(t.address, MALLORY)
    request = _generate([f"Tell me a very long story about {i}" for i in range(4)], tokens=64)
    stop = time.monotonic() + 20
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def flood() -> None:
        while time.monotonic() < stop:
            o = timed(lambda: s.landscape.Generate(request, timeout=60, metadata=s.metadata))
            with lock:
                codes[o.status] = codes.get(o.status, 0) + 1
            if o.status != "OK":
                time.sleep(0.05)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    return Outcome("flood", 20.0, "mallory: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))


def spec_directions(t: Target) -> Outcome:
    """An admin creates a direction; mallory's terms create 40 of her own; can victor still use the admin's?"""
    ops, mallory, victor = (Stubs.open(t.address, tok) for tok in (OPS, MALLORY, VICTOR))
    admin = ops.directions.CreateDirection(
        pb.CreateDirectionRequest(spec=pb.DirectionSpec(random=pb.RandomDirectionSpec(seed=77))), metadata=ops.metadata)
    use_admin = _generate(["Hi"], terms=[pb.Term(direction_id=admin.id, coefficient=0.05)])
    victor.landscape.Generate(use_admin, timeout=20, metadata=victor.metadata)
    started = time.monotonic()
    codes: dict[str, int] = {}
    for seed in range(1000, 1040):
        o = timed(lambda seed=seed: mallory.landscape.Generate(  # type: ignore[misc]
            _generate(["Hi"], terms=[_random_term(seed=seed)]), timeout=20, metadata=mallory.metadata))
        codes[o.status] = codes.get(o.status, 0) + 1
    seconds = time.monotonic() - started
    after = timed(lambda: victor.landscape.Generate(use_admin, timeout=20, metadata=victor.metadata))
    listed = mallory.directions.ListDirections(pb.ListDirectionsRequest(), timeout=10, metadata=mallory.metadata)
    others = sum(1 for d in listed.directions if d.id == admin.id)
    note = (f"mallory's 40: {', '.join(f'{k} {v}' for k, v in sorted(codes.items()))}; victor at the admin's "
            f"direction after: {after.status}; mallory lists {len(listed.directions)} (admin's: {others})")
    return Outcome(after.status, seconds, note)


# -- candidates registered at run time --------------------------------------------------------

CANDIDATES = Path(tempfile.gettempdir()) / "visage-abuse-candidates"
ROOT, VICTOR_ROOT, OUTSIDE = CANDIDATES / "shared", CANDIDATES / "victor", CANDIDATES / "outside"
CANDIDATE_ARGS = ("--candidate-root", str(ROOT), "--candidate-root", f"victor={VICTOR_ROOT}")


def prepare_candidate_files() -> None:
    """The folders the candidate attacks name (written once, by the writers the tests use)."""
    if (CANDIDATES / "done").exists():
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import model_folders as mf

    mf.write_checkpoint(ROOT / "second")
    mf.write_lora(ROOT / "lora")
    mf.write_pickled(ROOT / "pickled")
    mf.write_sparse(ROOT / "sparse")
    mf.write_other_architecture(ROOT / "gpt2")
    mf.write_other_shapes(ROOT / "wrong")
    mf.write_checkpoint(VICTOR_ROOT / "release", seed=2)
    mf.write_checkpoint(OUTSIDE / "secret", seed=3)
    (ROOT / "escape").symlink_to(OUTSIDE / "secret", target_is_directory=True)
    (ROOT / "sneaky").mkdir()
    (ROOT / "sneaky" / "config.json").write_bytes((OUTSIDE / "secret" / "config.json").read_bytes())
    (ROOT / "sneaky" / "model.safetensors").symlink_to(OUTSIDE / "secret" / "model.safetensors")
    (CANDIDATES / "done").write_text("")


def _add(s: Stubs, name: str, source: str) -> Outcome:
    request = pb.AddCandidateRequest(name=name, source=source)
    return timed(lambda: s.candidates.AddCandidate(request, timeout=20, metadata=s.metadata))


def _sources(t: Target, sources: Sequence[str]) -> Outcome:
    """mallory registers each source; the first answer's status and note, every answer's status."""
    s = Stubs.open(t.address, MALLORY)
    outcomes = [_add(s, f"c{i}", src) for i, src in enumerate(sources)]
    codes = ", ".join(o.status for o in outcomes)
    return Outcome(outcomes[0].status, max(o.seconds for o in outcomes), f"[{codes}] {outcomes[0].note}")


def candidate_outside_roots(t: Target) -> Outcome:
    return _sources(t, ["/etc", str(OUTSIDE / "secret"), str(VICTOR_ROOT / "release"), "/proc/self/cwd", "/nonexistent"])


def candidate_dotdot(t: Target) -> Outcome:
    return _sources(t, [f"{ROOT}/../outside/secret", f"{ROOT}/../../../../etc", f"{ROOT}/second/../../victor/release"])


def candidate_symlink_out(t: Target) -> Outcome:
    return _sources(t, [str(ROOT / "escape"), str(ROOT / "sneaky")])


def candidate_pickled(t: Target) -> Outcome:
    return _sources(t, [str(ROOT / "pickled")])


def candidate_sparse(t: Target) -> Outcome:
    return _sources(t, [str(ROOT / "sparse")])


def candidate_other_architecture(t: Target) -> Outcome:
    return _sources(t, [str(ROOT / "gpt2"), str(ROOT / "wrong")])


def candidate_thousand(t: Target) -> Outcome:
    """1000 registrations of the same checkpoint under 1000 names, one after another."""
    s = Stubs.open(t.address, MALLORY)
    started = time.monotonic()
    codes: dict[str, int] = {}
    first_refusal = ""
    for i in range(1000):
        o = _add(s, f"many{i}", str(ROOT / "second"))
        codes[o.status] = codes.get(o.status, 0) + 1
        first_refusal = first_refusal or (o.note if o.status != "OK" else "")
    listed = s.candidates.ListCandidates(pb.ListCandidatesRequest(), timeout=10, metadata=s.metadata)
    note = f"{', '.join(f'{k} {v}' for k, v in sorted(codes.items()))}; held {len(listed.candidates)}; {first_refusal}"
    return Outcome(max(codes, key=lambda k: k != "OK"), time.monotonic() - started, note)


def candidate_other_tenants_name(t: Target) -> Outcome:
    """victor registers "release" from his own root; mallory looks for it, uses it, removes it, takes the name."""
    victor, mallory = Stubs.open(t.address, VICTOR), Stubs.open(t.address, MALLORY)
    victor.candidates.AddCandidate(pb.AddCandidateRequest(name="release", source=str(VICTOR_ROOT / "release")),
                                   timeout=20, metadata=victor.metadata)
    term = pb.Term(spec=pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target="release")), coefficient=1.0)
    time.sleep(1.0)  # loaded by now
    started = time.monotonic()
    listed = mallory.candidates.ListCandidates(pb.ListCandidatesRequest(), timeout=10, metadata=mallory.metadata)
    use = timed(lambda: mallory.landscape.Generate(_generate(["Hi"], terms=[term]), timeout=20, metadata=mallory.metadata))
    remove = timed(lambda: mallory.candidates.RemoveCandidate(
        pb.RemoveCandidateRequest(name="release", owner="victor"), timeout=10, metadata=mallory.metadata))
    take = _add(mallory, "release", str(ROOT / "lora"))
    seconds = time.monotonic() - started
    victors = timed(lambda: victor.landscape.Generate(_generate(["Hi"], terms=[term]), timeout=20, metadata=victor.metadata))
    note = (f"mallory lists {len(listed.candidates)}, uses: {use.status} ({use.note[:50]}), removes: {remove.status}, "
            f"adds her own 'release': {take.status}; victor's use after: {victors.status}")
    return Outcome(use.status, seconds, note)


def candidate_remove_in_use(t: Target) -> Outcome:
    """mallory's 200-point stream at her candidate, and her removals of it meanwhile."""
    s = Stubs.open(t.address, MALLORY)
    _add(s, "cand", str(ROOT / "second"))
    time.sleep(1.0)
    term = pb.Term(spec=pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target="cand")), coefficient=0.5)
    settings = pb.EvaluationSettings(prompts=pb.PromptSource(inline=pb.InlinePrompts(prompts=["Tell me a story"])),
                                     generation=pb.GenerationSettings(max_new_tokens=8))
    points = [pb.Perturbation(terms=[pb.Term(spec=term.spec, coefficient=0.01 * i)]) for i in range(1, 201)]
    stream = s.landscape.EvaluatePoints(pb.EvaluatePointsRequest(settings=settings, points=points), timeout=120,
                                        metadata=s.metadata)
    got = [next(stream)]  # the stream holds the candidate from now on
    refused = timed(lambda: s.candidates.RemoveCandidate(pb.RemoveCandidateRequest(name="cand"), timeout=10,
                                                         metadata=s.metadata))
    waited: list[Outcome] = []
    remover = threading.Thread(target=lambda: waited.append(timed(lambda: s.candidates.RemoveCandidate(
        pb.RemoveCandidateRequest(name="cand", wait=True), timeout=120, metadata=s.metadata))))
    remover.start()
    try:
        got.extend(stream)
        stream_status = "OK"
    except grpc.RpcError as exc:
        stream_status = exc.code().name
    remover.join(130)
    note = (f"remove: {refused.note[:60]}; the stream: {stream_status}, {len(got)}/200 points; "
            f"remove with wait: {waited[0].status if waited else '?'} after {waited[0].seconds if waited else 0:.1f} s")
    return Outcome(refused.status, refused.seconds, note)


def candidate_races(t: Target) -> Outcome:
    """8 threads add, use and remove the same name for 20 s."""
    s = Stubs.open(t.address, MALLORY)
    stop = time.monotonic() + 20
    codes: dict[str, int] = {}
    lock = threading.Lock()
    term = pb.Term(spec=pb.DirectionSpec(interpolation=pb.InterpolationDirectionSpec(target="race")), coefficient=0.3)

    def churn(i: int) -> None:
        while time.monotonic() < stop:
            for o in (_add(s, "race", str(ROOT / "second")),
                      timed(lambda: s.landscape.Generate(_generate(["Hi"], terms=[term]), timeout=20, metadata=s.metadata)),
                      timed(lambda: s.candidates.RemoveCandidate(pb.RemoveCandidateRequest(name="race", wait=i % 2 == 0),
                                                                 timeout=10, metadata=s.metadata))):
                with lock:
                    codes[o.status] = codes.get(o.status, 0) + 1

    threads = [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    listed = s.candidates.ListCandidates(pb.ListCandidatesRequest(), timeout=10, metadata=s.metadata)
    note = f"{', '.join(f'{k} {v}' for k, v in sorted(codes.items()))}; held after: {len(listed.candidates)}"
    return Outcome("race", 20.0, note)


# -- shutdown ---------------------------------------------------------------------------------

def _drain_quietly(responses: object) -> None:
    try:
        for _ in responses:  # type: ignore[attr-defined]
            pass
    except grpc.RpcError:
        pass


def watch_then_drain(t: Target) -> Outcome:
    """An idle server with one open health Watch gets SIGTERM."""
    channel = grpc.insecure_channel(t.address)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=300)
    threading.Thread(target=_drain_quietly, args=(watch,), daemon=True).start()  # a reading watcher
    time.sleep(1.0)
    import signal

    t.signal_server(signal.SIGTERM)
    exited = t.wait_exit(t.grace_seconds + 40)
    watch.cancel()
    if exited is None:
        return Outcome("still running", t.grace_seconds + 40, "killed")
    return Outcome("exited", exited, f"grace {t.grace_seconds:g} s")


def sigterm_during_job(t: Target) -> Outcome:
    """SIGTERM while a long direction build runs (reference stream draw 2^32-1, a 10-minute deadline)."""
    s = Stubs.open(t.address, MALLORY)
    term = _random_term(seed=3, stream=pb.RANDOM_STREAM_REFERENCE, index=2**32 - 1)
    call = s.landscape.Generate.future(_generate(["Hi"], terms=[term]), timeout=600, metadata=s.metadata)
    time.sleep(2.0)
    import signal

    t.signal_server(signal.SIGTERM)
    exited = t.wait_exit(t.grace_seconds + 40)
    call.cancel()
    if exited is None:
        return Outcome("still running", t.grace_seconds + 40, f"grace {t.grace_seconds:g} s; killed")
    return Outcome("exited", exited, f"grace {t.grace_seconds:g} s")


ATTACKS: tuple[Attack, ...] = (
    Attack("Score, 1M-character text", score_huge_text),
    Attack("Score, 2 x 30k chars, 3 GiB address space", score_under_memory_cap, address_space_mib=3072,
           server_args_if_known=("--max-score-tokens", "100000")),
    Attack("reference-stream draw 2^32-1", reference_draw_index),
    Attack("1.5M include patterns", include_patterns),
    Attack("Generate, 16M-character prompt", huge_prompt),
    Attack("400k judge keywords", many_keywords),
    Attack("1 MB direction id", huge_id),
    Attack("undecodable request bytes", garbage_bytes),
    Attack("100 unread EvaluatePoints streams", unread_streams),
    Attack("queue flood, --queue-per-tenant = --queue-size", queue_flood,
           server_args=("--queue-size", "16", "--queue-per-tenant", "16")),
    Attack("queue flood, default queue", queue_flood),
    Attack("40 spec-created directions", spec_directions),
    Attack("candidate: sources outside every root", candidate_outside_roots, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: .. out of a root", candidate_dotdot, server_args=CANDIDATE_ARGS, prepare=prepare_candidate_files),
    Attack("candidate: a symlink out of a root", candidate_symlink_out, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: pickled .bin", candidate_pickled, server_args=CANDIDATE_ARGS, prepare=prepare_candidate_files),
    Attack("candidate: sparse file claiming 2 TiB", candidate_sparse, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: another architecture / shapes", candidate_other_architecture, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: 1000 registrations", candidate_thousand, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: another tenant's name", candidate_other_tenants_name, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: removal while in use", candidate_remove_in_use, server_args=CANDIDATE_ARGS,
           prepare=prepare_candidate_files),
    Attack("candidate: add/remove races", candidate_races, server_args=CANDIDATE_ARGS, prepare=prepare_candidate_files),
    Attack("SIGTERM, idle, open health Watch", watch_then_drain, victim=False),
    Attack("SIGTERM during a direction build", sigterm_during_job, victim=False,
           server_args_if_known=("--max-reference-index", "4294967295")),
)
