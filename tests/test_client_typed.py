"""``Client`` as a notebook meets it, on a real tiny-random server: plain keywords in, typed
dataclasses out (the protobuf kept as ``.proto``), a weight state written as (direction,
coefficient) pairs, and the server and token read from ``VISAGE_SERVER`` / ``VISAGE_TOKEN_FILE``."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from serving import running_server

from safety_landscape.client import call_results, server_state
from safety_landscape.client.client import (
    Client,
    evaluation_settings,
    generation,
    perturbation,
    random_direction,
)
from safety_landscape.client.errors import UnauthenticatedError, ValidationError
from safety_landscape.client.proto_reply import ProtoReply
from safety_landscape.client.request_options import EVALUATION_DEFAULTS, GENERATION_DEFAULTS, to_perturbation
from safety_landscape.v1 import landscape_pb2 as pb

REPLY_TYPES = [t for module in (server_state, call_results) for t in vars(module).values()
               if isinstance(t, type) and issubclass(t, ProtoReply) and t is not ProtoReply]


@pytest.fixture
def no_env(monkeypatch):
    for name in ("VISAGE_SERVER", "VISAGE_TOKEN", "VISAGE_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_reply_type_reads_its_message_and_keeps_it():
    assert len(REPLY_TYPES) >= 20
    for reply in REPLY_TYPES:
        message = reply.message_type()
        read = reply.from_proto(message)
        assert read.proto is message, reply.__name__
        assert "proto" not in repr(read)
        for f in dataclasses.fields(reply):  # every field is the message's field of that name
            assert f.name == "proto" or f.name in message.DESCRIPTOR.fields_by_name, (reply.__name__, f.name)


def test_a_reply_field_the_message_lacks_is_an_error_not_a_default():
    @dataclasses.dataclass(frozen=True)
    class Misnamed(ProtoReply):
        message_type = pb.RegistryEntry
        name: str
        knd: str  # a typo of "kind"
        proto: pb.RegistryEntry = dataclasses.field(repr=False, compare=False)

    with pytest.raises(TypeError, match="knd"):
        Misnamed.from_proto(pb.RegistryEntry(name="x", kind="adapter"))
    with pytest.raises(TypeError, match="RegistryEntry"):
        server_state.RegistryEntry.from_proto(pb.PromptSetInfo())


def test_enums_optional_and_unset_messages_read_as_plain_values():
    verdicts = [pb.Verdict(index=0, finish_reason=pb.FINISH_REASON_KEYWORD),
                pb.Verdict(index=1, classifier=pb.ClassifierVerdict(label="unsafe", probability=0.0, categories=["S1"]))]
    read = call_results.Evaluation.from_proto(pb.EvaluateSafetyResponse(asr=50.0, verdicts=verdicts))
    assert read.verdicts[0].finish_reason == "keyword" and read.verdicts[0].classifier is None
    classifier = read.verdicts[1].classifier
    assert classifier is not None and classifier.probability == 0.0 and classifier.categories == ("S1",)
    assert call_results.ClassifierVerdict.from_proto(pb.ClassifierVerdict()).probability is None  # unset: None, not 0
    assert read.verdicts[1].finish_reason == ""  # unspecified


def test_the_keywords_defaults_are_the_builders():
    for method, defaults in ((Client.generate, GENERATION_DEFAULTS), (Client.evaluate, EVALUATION_DEFAULTS),
                             (Client.evaluate_points, EVALUATION_DEFAULTS)):
        params = inspect.signature(method).parameters
        for name, default in defaults.items():
            assert params[name].default == default, (method.__name__, name)
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_weight_state_is_written_as_pairs():
    spec = random_direction(7)
    expected = perturbation([(spec, 0.25), ("d-0123456789abcdef", -0.5)])
    assert to_perturbation([(spec, 0.25), ("d-0123456789abcdef", -0.5)]) == expected
    assert to_perturbation([[spec, 0.25], ("d-0123456789abcdef", -0.5)]) == expected
    assert to_perturbation({"d-0123456789abcdef": 1}) == perturbation([("d-0123456789abcdef", 1.0)])
    assert to_perturbation(expected) is expected and to_perturbation(None) == pb.Perturbation()
    for bad in ((spec, 0.25), "seed:1=0.5", [(spec, "0.25")], [(spec, True)], [(7, 0.25)], [(spec, float("nan"))]):
        with pytest.raises(ValidationError):
            to_perturbation(bad)  # type: ignore[arg-type]


def test_keywords_and_typed_results_on_a_real_server(tiny_server, no_env):
    no_env.setenv("VISAGE_SERVER", tiny_server.target)
    with Client() as c:  # the server from VISAGE_SERVER
        assert c.target == tiny_server.target
        info = c.info()
        assert isinstance(info, server_state.ServerInfo) and isinstance(info.proto, pb.ModelInfo)
        assert info.model_fingerprint == info.proto.model_fingerprint == tiny_server.engine.fingerprint
        assert info.limits.max_new_tokens == info.proto.limits.max_new_tokens > 0
        assert info.tokenizer.tokenizer_fingerprint == info.proto.tokenizer.tokenizer_fingerprint

        spec = random_direction(11, stream="reference")
        by_keywords = c.evaluate(prompt_set="harmful-mini", limit=3, max_new_tokens=6, return_completions=True,
                                 at=[(spec, 0.1)])
        by_settings = c.evaluate(evaluation_settings(prompt_set="harmful-mini", limit=3, max_new_tokens=6,
                                                     return_completions=True), at=perturbation([(spec, 0.1)]))
        assert isinstance(by_keywords, call_results.Evaluation) and by_keywords.verdicts == by_settings.verdicts
        assert by_keywords.weight_state.fingerprint == by_settings.weight_state.fingerprint
        assert by_keywords.total == 3 and len(by_keywords.verdicts) == 3
        assert by_keywords.asr == by_keywords.proto.asr and by_keywords.prompt_set.name == "harmful-mini"
        assert {v.finish_reason for v in by_keywords.verdicts} <= {"eos", "length", "keyword"}
        with pytest.raises(ValidationError, match="not both"):
            c.evaluate(evaluation_settings(prompt_set="harmful-mini"), limit=3)

        held = c.create_direction(spec)
        assert held.kind == "random" and held.spec == spec
        by_id = c.evaluate(prompt_set="harmful-mini", limit=3, max_new_tokens=6, return_completions=True,
                           at={held.id: 0.1})
        assert by_id.weight_state.fingerprint == by_keywords.weight_state.fingerprint
        assert [v.completion for v in by_id.verdicts] == [v.completion for v in by_keywords.verdicts]

        out = c.generate(["Hi", "Hello"], max_new_tokens=3)
        assert out.texts == [x.text for x in c.generate(["Hi", "Hello"], settings=generation(3)).completions]
        assert all(x.completion_tokens == 3 and x.finish_reason == "length" for x in out.completions)
        with pytest.raises(ValidationError, match="max_new_tokens"):
            c.generate(["Hi"], settings=generation(3), max_new_tokens=5)
        with pytest.raises(ValidationError, match="list"):
            c.generate("Hi")  # type: ignore[arg-type]

        points = [None, [(spec, 0.1)]]
        streamed = sorted(c.evaluate_points(points=points, prompt_set="harmful-mini", limit=3, max_new_tokens=6),
                          key=lambda p: p.index)
        assert [p.index for p in streamed] == [0, 1]
        assert streamed[1].result.weight_state.fingerprint == by_keywords.weight_state.fingerprint
        assert streamed[0].result.weight_state.fingerprint == info.model_fingerprint

        scores = c.score([("The capital of France is", " Paris")], at=[(spec, 0.1)])
        assert scores.results[0].num_tokens > 0
        assert scores.weight_state.fingerprint == by_keywords.weight_state.fingerprint
        state = c.set_coefficients([(spec, 0.1)], verify=True)
        assert state.fingerprint == by_keywords.weight_state.fingerprint and len(state.weights_sha256) == 64
        assert {d.id for d in c.list_directions().directions} >= {held.id}
        assert {s.name for s in c.list_prompt_sets()} >= {"harmful-mini", "benign-mini"}


def test_no_server_anywhere_says_how_to_name_one(no_env):
    with pytest.raises(ValidationError, match="VISAGE_SERVER"):
        Client()


def test_the_token_comes_from_the_environment(tmp_path, no_env):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[[tenant]]\nname = "alice"\ntoken = "alice-token-5b1e0c"\n')
    token_file = tmp_path / "token"
    token_file.write_text("alice-token-5b1e0c\n")
    with running_server(tokens_file=str(tokens)) as server:
        no_env.setenv("VISAGE_SERVER", server.target)
        with Client(retries=1) as anonymous, pytest.raises(UnauthenticatedError):
            anonymous.info()
        no_env.setenv("VISAGE_TOKEN_FILE", str(token_file))
        with Client(retries=1) as c:
            assert c.info().model_name == "tiny-random"
        no_env.setenv("VISAGE_TOKEN", "wrong-token-0000")  # VISAGE_TOKEN comes before VISAGE_TOKEN_FILE
        with Client(retries=1) as c, pytest.raises(UnauthenticatedError):
            c.info()
        with Client(retries=1, token_file=str(token_file)) as c:  # an argument comes before the environment
            assert c.info().model_name == "tiny-random"
    no_env.delenv("VISAGE_TOKEN")
    no_env.setenv("VISAGE_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="missing"):
        Client("127.0.0.1:1")


def test_the_cli_reads_visage_server_and_a_flag_comes_first(tiny_server, no_env, capsys):
    from safety_landscape.client.cli import build_parser, main

    no_env.setenv("VISAGE_SERVER", tiny_server.target)
    assert main(["--json", "info"]) == 0
    assert tiny_server.engine.fingerprint in capsys.readouterr().out
    sweep = ["sweep", "--preset", "quick", "--out", "o"]
    assert build_parser().parse_args(sweep).server == [tiny_server.target]
    assert build_parser().parse_args([*sweep, "--server", "a:1", "--server", "b:2"]).server == ["a:1", "b:2"]
    assert build_parser().parse_args(["info", "--server", "a:1"]).server == "a:1"
    no_env.delenv("VISAGE_SERVER")
    assert main(["info"]) == 2  # required again
    assert "--server" in capsys.readouterr().err
