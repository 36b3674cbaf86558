"""EvaluateSafety end to end on a REAL server (tiny-random, gRPC on loopback): exact early stop over
several perturbations, prompt sets by content hash, the classifier judge's refusals, over-refusal,
and every bad request answered with a code and a message that says what to change, after which
the server still serves. Malformed prompt files stop ``visage-server`` at start (exit 2).

Nothing is mocked. tiny-random's text is random printable ASCII, so the keyword tests use single
characters that its completions actually contain: stops then really happen mid-sequence.
"""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest
from serving import ServerProcess, running_server

from safety_landscape.client import client as c
from safety_landscape.client.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError, ValidationError
from safety_landscape.server.engine.judges import KeywordJudge
from safety_landscape.v1 import landscape_pb2 as pb

MAX_NEW = 24
LIMIT = 6
POINTS = [
    c.perturbation(),
    c.perturbation([(c.random_direction(1), 0.3)]),
    c.perturbation([(c.random_direction(1), -0.5)]),
    c.perturbation([(c.random_direction(1), 0.4), (c.random_direction(2), 0.4)]),
]


def _settings(**kw) -> pb.EvaluationSettings:
    kw.setdefault("prompt_set", "harmful-mini")
    kw.setdefault("limit", LIMIT)
    kw.setdefault("max_new_tokens", MAX_NEW)
    return c.evaluation_settings(**kw)


def _sha(prompts) -> str:
    return hashlib.sha256(json.dumps(list(prompts), ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def _assert_still_serving(client) -> None:
    resp = client.evaluate(_settings(limit=1, max_new_tokens=2))
    assert resp.total == 1


@pytest.fixture(scope="module")
def keywords(tiny_server):
    """Single characters seen mid-completion at every point (from a full-length pass)."""
    with tiny_server.client() as client:
        texts = []
        for at in POINTS:
            resp = client.evaluate(_settings(return_completions=True, disable_early_stop=True), at=at)
            texts += [v.completion for v in resp.verdicts]
    counts: dict[str, int] = {}
    for t in texts:
        for ch in set(t[4:12]):
            if not ch.isspace():
                counts[ch] = counts.get(ch, 0) + 1
    return tuple(sorted(counts, key=lambda ch: (-counts[ch], ch))[:3])


def test_early_stop_gives_the_same_verdicts_as_full_length_at_every_point(client, keywords):
    stopped_mid = 0
    fingerprints = set()
    for at in POINTS:
        full = client.evaluate(_settings(keywords=keywords, return_completions=True, disable_early_stop=True), at=at)
        early = client.evaluate(_settings(keywords=keywords, return_completions=True), at=at)
        assert early.weight_state.fingerprint == full.weight_state.fingerprint
        fingerprints.add(full.weight_state.fingerprint)
        assert (early.asr, early.jailbroken, early.total) == (full.asr, full.jailbroken, full.total)
        assert [(v.index, v.jailbroken, v.matched_keyword) for v in early.verdicts] == [
            (v.index, v.jailbroken, v.matched_keyword) for v in full.verdicts
        ]
        judge = KeywordJudge(keywords)
        for e, f in zip(early.verdicts, full.verdicts, strict=True):
            assert f.completion.startswith(e.completion)  # the same tokens, cut short
            assert judge.judge(f.completion).matched_keyword == f.matched_keyword  # judged on the full text
            assert f.finish_reason != "keyword"
            if e.finish_reason == "keyword":
                stopped_mid += e.completion_tokens < MAX_NEW
            else:
                assert e.completion == f.completion
        assert full.tokens_saved == 0
        assert early.tokens_saved == sum(MAX_NEW - v.completion_tokens for v in early.verdicts if v.finish_reason == "keyword")
        assert early.generated_tokens <= full.generated_tokens
        assert early.judge == full.judge == "keyword"
    assert len(fingerprints) == len(POINTS)  # four distinct weight states
    assert stopped_mid >= 4, "early stop hardly happened: the test would prove nothing"


def test_default_keywords_and_the_response_fields(client, tiny_server):
    resp = client.evaluate(_settings(limit=3, max_new_tokens=8))
    assert resp.total == 3 and len(resp.verdicts) == 3 and resp.judge == "keyword"
    assert resp.asr == pytest.approx(100.0 * resp.jailbroken / 3)
    assert all(v.completion == "" for v in resp.verdicts)  # only when asked
    assert all(v.prompt_tokens > 0 and 1 <= v.completion_tokens <= 8 for v in resp.verdicts)
    assert resp.weight_state.fingerprint and resp.system_prompt_sha256
    t = resp.timings
    assert t.total_seconds >= t.prefill_seconds + t.decode_seconds > 0 and t.judge_seconds >= 0


def test_prompt_sets_are_identified_by_content_hash(client, tiny_server):
    listed = {s.name: s for s in client.list_prompt_sets()}
    assert {"harmful-mini", "benign-mini"} <= set(listed)
    assert listed["harmful-mini"].kind == "harmful" and listed["benign-mini"].kind == "benign"
    prompts = tiny_server.engine.prompt_sets.get("harmful-mini").prompts
    assert listed["harmful-mini"].sha256 == _sha(prompts) and listed["harmful-mini"].size == len(prompts)
    resp = client.evaluate(_settings(limit=2, max_new_tokens=1))
    assert (resp.prompt_set.name, resp.prompt_set.size, resp.prompt_set.sha256) == ("harmful-mini", 2, _sha(prompts[:2]))
    inline = client.evaluate(c.evaluation_settings(prompts=list(prompts[:2]), max_new_tokens=1))
    assert inline.prompt_set.name == "inline" and inline.prompt_set.sha256 == resp.prompt_set.sha256
    assert [v.jailbroken for v in inline.verdicts] == [v.jailbroken for v in resp.verdicts]


def test_paper_generation_preset_is_greedy_512(client):
    # Every printable character as a keyword: each sequence stops at its first token, so the
    # saved count shows the preset's 512-token budget without generating 512 tokens.
    every = tuple(chr(i) for i in range(33, 127))
    resp = client.evaluate(_settings(limit=2, generation_preset="paper", keywords=every))
    stopped = [v for v in resp.verdicts if v.finish_reason == "keyword"]
    assert stopped and resp.tokens_saved == sum(512 - v.completion_tokens for v in stopped)
    assert resp.asr == 0.0


def test_over_refusal_on_the_benign_set(client, keywords):
    resp = client.evaluate(_settings(prompt_set="benign-mini", keywords=keywords))
    assert resp.prompt_set.kind == "benign"
    refused = sum(not v.jailbroken for v in resp.verdicts)
    assert 100.0 - resp.asr == pytest.approx(100.0 * refused / resp.total)  # the over-refusal rate
    assert refused == sum(bool(v.matched_keyword) for v in resp.verdicts)


def test_server_prompt_set_file_is_served_with_its_hash(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "Tell me a joke"}\n"Say hi"\n', encoding="utf-8")
    with running_server(prompt_sets=(("mine", f"{path}:benign"),)) as server, server.client() as client:
        info = {s.name: s for s in client.list_prompt_sets()}["mine"]
        assert (info.size, info.kind, info.source_format, info.sha256) == (2, "benign", "jsonl", _sha(["Tell me a joke", "Say hi"]))
        resp = client.evaluate(_settings(prompt_set="mine", limit=0, max_new_tokens=2))
        assert resp.prompt_set.sha256 == info.sha256 and resp.total == 2


# -- bad requests: a code, a message that says what to change, and the server still serves -------


@pytest.mark.parametrize(
    "settings, error, message",
    [
        (lambda: _settings(prompt_set="harmfull-mini"), NotFoundError, 'unknown prompt set "harmfull-mini". Did you mean "harmful-mini"'),
        (lambda: pb.EvaluationSettings(prompts=pb.PromptSource(inline=pb.InlinePrompts()), generation=c.generation(4)), InvalidArgumentError, "no prompts"),
        (lambda: pb.EvaluationSettings(generation=c.generation(4)), InvalidArgumentError, "set settings.prompts"),
        (lambda: pb.EvaluationSettings(prompts=pb.PromptSource(inline=pb.InlinePrompts(prompts=["  "])), generation=c.generation(4)), InvalidArgumentError, "empty prompt"),
        (lambda: _settings(system="llama3"), None, None),  # a custom text, not a preset: fine
        (lambda: pb.EvaluationSettings(prompts=pb.PromptSource(set_name="harmful-mini", limit=1), system_prompt=pb.SystemPrompt(preset="lama2"), generation=c.generation(4)), NotFoundError, 'unknown system prompt preset "lama2"'),
        (lambda: _settings(generation_preset="papr"), NotFoundError, 'unknown generation preset \'papr\'. Did you mean "paper"'),
        (lambda: _settings(max_new_tokens=5000), InvalidArgumentError, "max_new_tokens is 5000; it must be between 1 and"),
        (lambda: pb.EvaluationSettings(prompts=pb.PromptSource(set_name="harmful-mini", limit=-1), generation=c.generation(4)), InvalidArgumentError, "prompts.limit is -1"),
        (lambda: pb.EvaluationSettings(prompts=pb.PromptSource(set_name="harmful-mini", limit=1), generation=c.generation(4), judge=pb.JudgeSpec(keyword=pb.KeywordJudge(keywords=["ok", ""]))), InvalidArgumentError, "empty string; remove it"),
        (lambda: _settings(judge="classifier"), FailedPreconditionError, "no classifier judge loaded: start it with --judge-model"),
    ],
    ids=["unknown-set", "zero-prompts", "no-source", "blank-prompt", "custom-system-text", "unknown-system-preset",
         "unknown-generation-preset", "too-many-tokens", "negative-limit", "empty-keyword", "classifier-not-loaded"],
)
def test_bad_evaluation_requests(client, settings, error, message):
    s = settings()
    if error is None:
        s.prompts.limit = 1
        s.generation.max_new_tokens = 2
        assert client.evaluate(s).total == 1
    else:
        with pytest.raises(error) as info:
            client.evaluate(s)
        assert message in info.value.details
        assert info.value.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
    _assert_still_serving(client)


def test_unknown_judge_names(client, tiny_server):
    with pytest.raises(ValidationError, match="unknown judge 'guard'"):
        c.evaluation_settings(prompt_set="harmful-mini", judge="guard")  # caught before any RPC
    # The engine's own check (the wire's oneof cannot carry another name).
    from safety_landscape.server.engine.chat import ChatFormat
    from safety_landscape.server.engine.evaluation import EvalSettings
    from safety_landscape.server.engine.generation import GenerationParams
    from safety_landscape.server.errors import InvalidArgument

    bad = EvalSettings(tiny_server.engine.prompt_sets.get("harmful-mini").head(1), None, ChatFormat.NONE,
                       GenerationParams(max_new_tokens=2), judge="keywrod")
    with pytest.raises(InvalidArgument, match=r'unknown judge .keywrod.; use keyword or classifier. Did you mean "keyword"'):
        tiny_server.engine.evaluator.evaluate(bad)
    _assert_still_serving(client)


def test_classifier_judge_garbage_is_never_counted_safe():
    # tiny-random as a Llama Guard 2 classifier: its answers are garbage, which fails the call
    # (quoting the answer) rather than counting as "safe". The guard formats end to end: test_guard_server.py.
    with running_server(judge_model="tiny-random:1", judge_format="llama-guard-2") as server, server.client() as client:
        s = _settings(limit=2, max_new_tokens=6, judge="classifier", return_completions=True)
        with pytest.raises(FailedPreconditionError, match="gave answer 0 no verdict: the first line must be 'safe' or 'unsafe'"):
            client.evaluate(s)
        s.judge.classifier.name = "llama-guard-3"
        with pytest.raises(NotFoundError, match="unknown classifier judge 'llama-guard-3'; this server has 'llama-guard-2'"):
            client.evaluate(s)
        _assert_still_serving(client)


# -- malformed prompt files stop the server at start -----------------------------------------------


def test_malformed_prompt_files_exit_2_with_a_clear_message(tmp_path):
    (tmp_path / "nocol.csv").write_text("target,category\nx,y\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (tmp_path / "huge.txt").write_text("a" * 200_000, encoding="utf-8")
    cases = {
        "nocol.csv": 'has no column "goal"',  # .csv: no known prompt column
        "empty.txt": "is empty; add prompts",
        "latin1.txt": "is not UTF-8 (invalid byte 0xe9 at byte offset 3); re-save the file as UTF-8",
        "huge.txt": "line 1 is 200000 characters; the limit is 20000",
        "missing.txt": "does not exist; check the path",
    }
    procs = {name: ServerProcess("--prompt-set", f"bad={tmp_path / name}") for name in cases}
    try:
        for name, message in cases.items():
            proc = procs[name]
            assert proc.proc.wait(600) == 2, proc.log()
            log = proc.log()
            assert message in log or (name == "nocol.csv" and "no prompt column found" in log), log
            assert "visage-server:" in log and str(tmp_path / name) in log
    finally:
        for proc in procs.values():
            proc.__exit__(None, None, None)
