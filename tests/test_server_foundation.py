"""The model-holding server (loading, health, reflection, info, generation, limits, shutdown) through
the real client, on a real loopback server."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from serving import ServerProcess, make_config, running_server

from safety_landscape.client import client as c
from safety_landscape.client.errors import InvalidArgumentError, NotFoundError, UnavailableError
from safety_landscape.server.app import create_server
from safety_landscape.server.bootstrap import build_engine_factory
from safety_landscape.v1 import landscape_pb2 as pb


def test_info_reports_model_facts(client):
    info = client.info()
    assert info.model_name == "tiny-random"
    assert info.architecture == "LlamaForCausalLM"
    assert info.parameter_count > 0 and info.dtype == "float32" and info.device == "cpu"
    assert len(info.model_fingerprint) == 64
    assert info.tokenizer.has_chat_template and info.tokenizer.chat_template_sha256
    assert "tiny test assistant" in info.tokenizer.default_system_prompt
    assert info.server_version and info.limits.max_batch_size == 64
    assert info.memory.model_bytes > 0 and info.memory.pristine_bytes == info.memory.model_bytes


def test_generate_batch_with_counts_and_finish_reason(client):
    resp = client.generate(["Hello", "What is the capital of France?"], settings=c.generation(12))
    assert len(resp.completions) == 2
    for comp in resp.completions:
        assert comp.completion_tokens == 12 and comp.prompt_tokens > 0
        assert comp.finish_reason == "length" and comp.text
    assert resp.generated_tokens == 24
    assert resp.weight_state.fingerprint == client.info().model_fingerprint


def test_plain_completion_and_system_prompt_change_the_prompt(client):
    chat = client.generate(["Hi"], settings=c.generation(4))
    plain = client.generate(["Hi"], chat="none", settings=c.generation(4))
    custom = client.generate(["Hi"], system="You are a pirate.", settings=c.generation(4))
    assert plain.completions[0].prompt_tokens == 2  # byte-level tokenizer, no template
    assert chat.completions[0].prompt_tokens != custom.completions[0].prompt_tokens


def test_sampling_is_seeded(client):
    a = client.generate(["Hi there"] * 3, settings=c.generation(16, do_sample=True, seed=7))
    b = client.generate(["Hi there"] * 3, settings=c.generation(16, do_sample=True, seed=7))
    d = client.generate(["Hi there"] * 3, settings=c.generation(16, do_sample=True, seed=8))
    assert [x.text for x in a.completions] == [x.text for x in b.completions]
    assert [x.text for x in a.completions] != [x.text for x in d.completions]


def test_same_greedy_output_however_the_request_is_split(client):
    prompts = [f"Question {i}: {'tell me more ' * (i % 5)}?" for i in range(11)]
    whole = client.generate(prompts, settings=c.generation(24))
    with running_server(limits={"max_batch_size": 3}) as small, small.client() as other:
        split = other.generate(prompts, settings=c.generation(24))
        one_by_one = [other.generate([p], settings=c.generation(24)).completions[0].text for p in prompts]
    assert [x.text for x in whole.completions] == [x.text for x in split.completions] == one_by_one


@pytest.mark.parametrize(
    ("request_kwargs", "needle"),
    [
        ({"prompts": []}, "at least one prompt"),
        ({"prompts": ["x"], "generation": pb.GenerationSettings(max_new_tokens=0)}, "max_new_tokens"),
        ({"prompts": ["x"], "generation": pb.GenerationSettings(max_new_tokens=-3)}, "max_new_tokens"),
        ({"prompts": ["x"], "generation": pb.GenerationSettings(max_new_tokens=5000)}, "1024"),
        ({"prompts": ["x"], "generation": pb.GenerationSettings(max_new_tokens=4), "chat_format": 99}, "chat_format"),
        ({"prompts": ["x" * 3000], "generation": pb.GenerationSettings(max_new_tokens=4)}, "max_prompt_tokens"),
    ],
)
def test_bad_generate_input_is_invalid_argument_and_server_stays_up(tiny_server, client, request_kwargs, needle):
    stub = c.pb_grpc.LandscapeServiceStub(client.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(pb.GenerateRequest(**request_kwargs), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    assert client.generate(["still up?"], settings=c.generation(2)).completions[0].completion_tokens == 2


def test_oversized_message_is_invalid_argument_naming_the_limit():
    with running_server(limits={"max_message_bytes": 2000}) as server, server.client() as client:
        with pytest.raises(InvalidArgumentError, match="max_message_bytes"):
            client.generate(["y" * 100] * 30, settings=c.generation(2))
        assert client.health() == "SERVING"


def test_unknown_system_prompt_preset_is_not_found(client):
    stub = c.pb_grpc.LandscapeServiceStub(client.channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(pb.GenerateRequest(prompts=["x"], system_prompt=pb.SystemPrompt(preset="lama2"),
                                         generation=pb.GenerationSettings(max_new_tokens=2)), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and 'Did you mean "llama2"' in err.value.details()


def test_client_validates_before_the_rpc(client):
    with pytest.raises(c.ValidationError, match="chat format"):
        client.generate(["x"], chat="chatml")
    with pytest.raises(c.ValidationError):
        c.generation(0)


def test_every_rpc_answers(client):
    direction = client.create_direction(c.random_direction(5))
    assert direction.created and direction.id.startswith("d-") and direction.total_tensors > 0
    assert any(d.id == direction.id for d in client.list_directions().directions)
    at = c.perturbation([(direction.id, 0.1)])
    state = client.set_coefficients(at, verify=True)
    assert state.fingerprint != client.info().model_fingerprint and len(state.weights_sha256) == 64
    evaluated = client.evaluate(c.evaluation_settings(prompt_set="harmful-mini", limit=3, max_new_tokens=8), at=at)
    assert evaluated.total == 3 and evaluated.weight_state.fingerprint == state.fingerprint
    points = list(client.evaluate_points(c.evaluation_settings(prompts=["a", "b"], max_new_tokens=4),
                                         [c.perturbation(), at]))
    assert sorted(p.index for p in points) == [0, 1]
    scored = client.score([("The capital of France is", " Paris")])
    assert scored.results[0].num_tokens > 0 and scored.results[0].logprob < 0
    assert {s.name for s in client.list_prompt_sets()} >= {"harmful-mini", "benign-mini"}
    assert client.list_registry() == []
    assert client.delete_direction(direction.id)
    with pytest.raises(NotFoundError):
        client.delete_direction(direction.id)


def test_health_transitions_loading_serving_draining():
    config = make_config()
    app = create_server(config)
    release = threading.Event()
    build = build_engine_factory(config)

    def slow_build():
        release.wait(30)
        return build()

    with c.Client(f"127.0.0.1:{app.port}") as client:
        assert client.health() == "NOT_SERVING"
        loader = threading.Thread(target=app.load, args=(slow_build,))
        loader.start()
        assert client.health() == "NOT_SERVING"
        with pytest.raises(UnavailableError, match="still loading"):
            c.Client(f"127.0.0.1:{app.port}", retries=1).info()
        release.set()
        loader.join(60)
        assert client.health() == "SERVING"
        assert client.health(pb.DESCRIPTOR.services_by_name["LandscapeService"].full_name) == "SERVING"
        stop = threading.Thread(target=app.drain, kwargs={"grace": 2.0})
        stop.start()
        stop.join(30)
        # after drain the server is gone: a fresh call cannot connect
        with pytest.raises(Exception):  # noqa: B017 (whichever error: no server answers)
            c.Client(f"127.0.0.1:{app.port}", retries=1).health(timeout=2)


def test_reflection_lists_the_services(tiny_server):
    channel = grpc.insecure_channel(tiny_server.target)
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "safety_landscape.v1.LandscapeService" in services
    assert "safety_landscape.v1.DirectionService" in services
    assert "grpc.health.v1.Health" in services
    channel.close()


def test_sigterm_drains_a_call_in_flight_and_exits_zero():
    with ServerProcess("--grace-seconds", "60") as proc:
        target = proc.wait_serving()
        result: dict = {}

        def long_call():
            with c.Client(target, retries=1) as client:
                result["resp"] = client.generate([f"drain me {i}" for i in range(16)], settings=c.generation(1000))
                result["done"] = time.monotonic()

        caller = threading.Thread(target=long_call)
        caller.start()
        time.sleep(0.5)  # let the call reach the server's worker
        signalled = time.monotonic()
        code = proc.terminate(signal.SIGTERM)
        caller.join(60)
        assert code == 0, proc.log()
        assert result["done"] > signalled  # the call was in flight when SIGTERM came, and finished
        assert all(x.completion_tokens == 1000 for x in result["resp"].completions)
        assert '"signal"' in proc.log() and '"draining"' in proc.log()


def test_unknown_model_fails_before_listening():
    out = subprocess.run(
        [sys.executable, "-m", "safety_landscape.server.cli", "--model", "no-such-model", "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "no-such-model" in out.stderr and "tiny-random" in out.stderr


def test_pickled_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    out = subprocess.run(
        [sys.executable, "-m", "safety_landscape.server.cli", "--model", str(tmp_path), "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "pickled weights are never loaded" in out.stderr


def test_flags_come_from_the_environment(monkeypatch):
    from safety_landscape.server.cli import build_parser, config_from_args

    monkeypatch.setenv("VISAGE_MAX_BATCH_SIZE", "5")
    monkeypatch.setenv("VISAGE_DEVICE", "cpu")
    monkeypatch.setenv("VISAGE_LISTEN", "0.0.0.0:6000")
    config = config_from_args(build_parser().parse_args([]))
    assert config.limits.max_batch_size == 5 and config.device == "cpu" and config.listen == "0.0.0.0:6000"
    assert config_from_args(build_parser().parse_args(["--max-batch-size", "7"])).limits.max_batch_size == 7


def test_cli_info_json_and_generate(tiny_server, capsys):
    import json

    from safety_landscape.client.cli import main

    assert main(["--json", "info", "--server", tiny_server.target]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["model_fingerprint"]) == 64 and info["model_name"] == "tiny-random"
    assert main(["generate", "--server", tiny_server.target, "--prompt", "Hi", "--max-new-tokens", "3"]) == 0
    assert "> Hi" in capsys.readouterr().out
    assert main(["evaluate", "--server", tiny_server.target, "--set", "nope"]) == 1
    assert "unknown prompt set" in capsys.readouterr().err
