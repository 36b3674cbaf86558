"""Every input has a bound, checked before its work starts, against a REAL server (loopback, the
tiny-random model): a request over a bound is refused with INVALID_ARGUMENT (or RESOURCE_EXHAUSTED
for memory) naming the setting, while the worker is busy (so before the request queued), without
echoing the oversized value; each bound is a server setting that GetInfo and ``visage info`` show.
"""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from serving import running_server, worker_held

from safety_landscape.client import errors
from safety_landscape.client.cli import main as visage_main
from safety_landscape.client.client import generation
from safety_landscape.server.config import Limits
from safety_landscape.server.engine.chat import ChatFormat
from safety_landscape.server.engine.generation import GenerationParams
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

LIMITS = {
    "max_text_chars": 2000, "max_score_tokens": 300, "max_score_candidates": 4, "max_keywords": 8,
    "max_keyword_bytes": 200, "max_terms": 3, "max_direction_patterns": 4, "max_reference_index": 2,
    "max_name_chars": 40, "max_points_per_request": 5,
}


@pytest.fixture(scope="module")
def server():
    with running_server(limits=LIMITS) as s:
        yield s


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(server.target) as channel:
        yield pb_grpc.LandscapeServiceStub(channel)


def gen(prompts=("Hi",), terms=(), **kwargs) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompts=list(prompts), generation=pb.GenerationSettings(max_new_tokens=2),
                              perturbation=pb.Perturbation(terms=list(terms)), **kwargs)


def random_term(**random) -> pb.Term:
    return pb.Term(spec=pb.DirectionSpec(random=pb.RandomDirectionSpec(**random)), coefficient=0.01)


def evaluation(prompts=("Hi",), keywords=()) -> pb.EvaluateSafetyRequest:
    return pb.EvaluateSafetyRequest(settings=pb.EvaluationSettings(
        prompts=pb.PromptSource(inline=pb.InlinePrompts(prompts=list(prompts))),
        generation=pb.GenerationSettings(max_new_tokens=2), judge=pb.JudgeSpec(keyword=pb.KeywordJudge(keywords=list(keywords)))))


REFUSED = [  # (what, method, request, the setting the refusal names)
    ("prompt characters", "Generate", gen(["a" * 2001]), "max_text_chars"),
    ("system prompt characters", "Generate", gen(system_prompt=pb.SystemPrompt(text="s" * 2001)), "max_text_chars"),
    ("terms", "Generate", gen(terms=[random_term(seed=s) for s in range(4)]), "max_terms"),
    ("patterns", "Generate", gen(terms=[random_term(seed=1, include=["a", "b", "c"], exclude=["d", "e"])]),
     "max_direction_patterns"),
    ("a long pattern", "Generate", gen(terms=[random_term(seed=1, include=["x" * 41])]), "max_name_chars"),
    ("reference draw index", "Generate", gen(terms=[random_term(seed=1, stream=pb.RANDOM_STREAM_REFERENCE, index=3)]),
     "max_reference_index"),
    ("a long direction id", "Generate", gen(terms=[pb.Term(direction_id="d-" + "x" * 100_000, coefficient=0.1)]),
     "max_name_chars"),
    ("a long preset name", "Generate", gen(system_prompt=pb.SystemPrompt(preset="p" * 100_000)), "max_name_chars"),
    ("keywords", "EvaluateSafety", evaluation(keywords=[f"k{i}" for i in range(9)]), "max_keywords"),
    ("keyword bytes", "EvaluateSafety", evaluation(keywords=["é" * 101]), "max_keyword_bytes"),
    ("Score characters", "Score", pb.ScoreRequest(items=[pb.ScoreItem(context="c" * 2001, continuation="x")]),
     "max_text_chars"),
    ("Score tokens", "Score", pb.ScoreRequest(items=[pb.ScoreItem(context="c" * 1500, continuation="x" * 10)]),
     "max_score_tokens"),
    ("Score candidates", "Score", pb.ScoreRequest(items=[pb.ScoreItem(context="c", continuation="x")],
                                                  next_token_candidates=[" A", " B", " C", " D", " E"]),
     "max_score_candidates"),
    ("points", "EvaluatePoints", pb.EvaluatePointsRequest(settings=evaluation().settings,
                                                           points=[pb.Perturbation() for _ in range(6)]),
     "max_points_per_request"),
]


@pytest.mark.parametrize(("what", "method", "request_message", "setting"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_request_over_a_bound_is_refused_before_it_queues(server, stub, what, method, request_message, setting):
    host = server.app.host
    with worker_held(host):
        depth = host.queue_depth()
        call = getattr(stub, method)
        with pytest.raises(grpc.RpcError) as info:
            result = call(request_message, timeout=20)
            if method == "EvaluatePoints":
                list(result)
        assert host.queue_depth() == depth  # refused while the worker was busy: it never queued
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert setting in info.value.details()
    assert len(info.value.details()) < 500  # the oversized value is not echoed back


def test_at_the_bounds_the_same_requests_run(server, stub):
    terms = [random_term(seed=1, include=["*"], exclude=["a", "b", "c"]), random_term(seed=2, stream=pb.RANDOM_STREAM_REFERENCE, index=2)]
    stub.Generate(gen(["a" * 2000], terms=terms, chat_format=pb.CHAT_FORMAT_NONE), timeout=60)  # 2000 tokens
    stub.EvaluateSafety(evaluation(keywords=[f"k{i}" for i in range(8)]), timeout=60)
    stub.Score(pb.ScoreRequest(items=[pb.ScoreItem(context="c" * 290, continuation="x" * 10)],
                               next_token_candidates=[" A", " B", " C", " D"]), timeout=60)


def test_a_call_without_a_deadline_runs(server, stub):
    assert stub.Generate(gen(["Hi"])).completions  # no timeout: grpc reports a remaining time of years


def test_undecodable_bytes_are_invalid_argument(server):
    with grpc.insecure_channel(server.target) as channel:
        raw = channel.unary_unary("/safety_landscape.v1.LandscapeService/Generate")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xfe\xfd not a protobuf message", timeout=10)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        streaming = channel.unary_stream("/safety_landscape.v1.LandscapeService/EvaluatePoints")
        with pytest.raises(grpc.RpcError) as info:
            list(streaming(b"\xff\xfe\xfd", timeout=10))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        reflection = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        with pytest.raises(grpc.RpcError) as info:
            list(reflection(iter([b"\xff\xfe\xfd"]), timeout=10))  # grpc's own handler, a request stream
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        assert "not a valid message" in info.value.details()


def test_every_limit_is_shown_by_get_info_and_visage_info(server, capsys):
    with server.client() as c:
        limits = c.info().limits
    fields = {f.name for f in dataclasses.fields(Limits)}
    shown = set(pb.ServerLimits.DESCRIPTOR.fields_by_name)
    assert fields <= shown, fields - shown  # every setting of Limits is in the contract
    for name, value in LIMITS.items():
        assert getattr(limits, name) == value, name
    assert limits.queue_reserve >= 1 and limits.max_job_memory_bytes > 0  # the values in force, not "0 = auto"
    assert visage_main(["info", "--server", server.target]) == 0
    out = capsys.readouterr().out
    for text in ("text 2000 chars", "Score 300 tokens (4 candidates)", "keywords 8 (200 bytes)", "terms 3", "patterns 4",
                 "reference index <= 2", "names 40 chars", "points 5", "streams 16 (4 per tenant", "GiB per job"):
        assert text in out, text


# -- memory admission ------------------------------------------------------------------------


def test_a_job_is_split_to_fit_its_memory_budget_or_refused():
    # A budget that holds about two sequences of these prompts at once: the request runs in
    # batches of at most two; a request whose one sequence needs more is refused, naming the limit.
    prompts = [f"prompt {i}: " + "w" * 20 for i in range(6)]
    with running_server() as probe, probe.client(retries=1) as c:
        reference = [x.text for x in c.generate(prompts, settings=generation(4)).completions]
        admitted = probe.engine.admission.generation(prompts, None, ChatFormat.TOKENIZER, GenerationParams(max_new_tokens=4))
        assert admitted.rows >= 6  # a budget from the free memory: one batch
        row = probe.engine.job_memory.generation_row(max(len(ids) for ids in admitted.encoded), 4)
    with running_server(limits={"max_job_memory_bytes": int(2.5 * row)}) as server, server.client(retries=1) as c:
        seen = []
        server.engine.generator.fault_injector = seen.append  # counts rows per forward pass; raises nothing
        assert [x.text for x in c.generate(prompts, settings=generation(4)).completions] == reference
        assert seen and max(seen) == 2  # the same answers, in batches of two
        with pytest.raises(errors.ResourceExhaustedError, match="max_job_memory_bytes"):
            c.generate(["w" * 1500], settings=generation(4))
        with pytest.raises(errors.ResourceExhaustedError, match="max_job_memory_bytes"):
            c.score([("c" * 3000, "x")])
        assert c.info().limits.max_job_memory_bytes == int(2.5 * row)


def test_an_allocation_failure_anywhere_is_resource_exhausted(server):
    """No way to run a CPU out of memory safely in a test: the generator's fault hook raises the
    error torch's CPU allocator raises (a RuntimeError), which no code of ours catches."""
    generator = server.engine.generator

    def cannot_allocate(batch_size: int) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1800240008 bytes. Error code 12 (Cannot allocate memory)")

    generator.fault_injector = cannot_allocate
    try:
        with server.client(retries=1) as c, pytest.raises(errors.ResourceExhaustedError, match="max_job_memory_bytes"):
            c.generate(["Hi"], settings=generation(2))
    finally:
        generator.fault_injector = None
