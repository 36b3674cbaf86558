"""The attacks of ``bench/abuse.py``: what a hostile or careless tenant sends to a shared server.

Each attack is a function ``(Target) -> Outcome``: it sends its requests as the tenant
"mallory" (raw stubs, so nothing is checked on the client side first) and reports the status it
got and how long the answer took. ``bench/abuse.py`` runs each one against a fresh server while
the tenant "victor" times his small calls. An attack that also needs a special server (flags,
a memory cap, a signal) says so in its ``Attack`` entry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
    Attack("SIGTERM, idle, open health Watch", watch_then_drain, victim=False),
    Attack("SIGTERM during a direction build", sigterm_during_job, victim=False,
           server_args_if_known=("--max-reference-index", "4294967295")),
)
