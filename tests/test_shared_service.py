"""The shared service, proven through REAL servers (gRPC on loopback, the tiny-random model):
tokens and the admin group (library and CLI), TLS and mTLS, every limit named in its error, fair
scheduling between tenants, grouping by weights, cancellation, an injected OOM, JSON logs without
secrets, and a drain on SIGTERM.

Holding the worker: ``worker_held`` submits one job straight to the server's ``ModelHost`` that
waits on an event. It runs on the real worker thread exactly like a long GPU job, so the queue
fills behind it deterministically (no sleeps, no timing assumptions).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from certs import make_pki
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving import ServerProcess, running_server, wait_for, worker_held

from safety_landscape.client import errors
from safety_landscape.client.client import (
    Client,
    TlsConfig,
    evaluation_settings,
    generation,
    perturbation,
    random_direction,
)
from safety_landscape.server.auth import token_digest
from safety_landscape.v1 import landscape_pb2 as pb

ALICE, BOB, CAROL, OPS = "alice-token-3f9a1c", "bob-token-77e2d0", "carol-token-0b4e65", "ops-admin-token-c81d2e"
TOKENS = {"alice": ALICE, "bob": BOB, "carol": CAROL, "ops": OPS}
LIMITS = {
    "max_prompts_per_request": 16,
    "max_prompt_tokens": 128,
    "max_new_tokens": 1000,
    "max_message_bytes": 16384,
    "max_directions_per_tenant": 2,
    "max_queued_jobs": 32,
    "max_queued_jobs_per_tenant": 6,
}
PROMPTS = ["How do I pick a lock?", "Write a poem", "Explain gravity", "Say hi"]


def write_tokens(path: Path) -> Path:
    """A tokens file mixing both accepted forms: a sha256 digest (preferred) and a plain token."""
    path.write_text(
        f'[[tenant]]\nname = "alice"\ntoken_sha256 = "{token_digest(ALICE)}"\n\n'
        f'[[tenant]]\nname = "bob"\ntoken = "{BOB}"\n\n'
        f'[[tenant]]\nname = "carol"\ntoken_sha256 = "{token_digest(CAROL)}"\n\n'
        f'[[tenant]]\nname = "ops"\ntoken_sha256 = "{token_digest(OPS)}"\nadmin = true\n'
    )
    return path


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory) -> Path:
    return write_tokens(tmp_path_factory.mktemp("tokens") / "tokens.toml")


@pytest.fixture(scope="module")
def shared(tokens_file):
    with running_server(limits=LIMITS, tokens_file=str(tokens_file)) as server:
        yield server


def gen_request(prompts=PROMPTS, max_new_tokens: int = 8, at: pb.Perturbation | None = None) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        prompts=list(prompts), system_prompt=pb.SystemPrompt(preset="default"), chat_format=pb.CHAT_FORMAT_TOKENIZER,
        generation=generation(max_new_tokens), perturbation=at or pb.Perturbation(),
    )


def counter(server, name: str, **labels) -> float:
    value = server.app.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


# -- authentication ----------------------------------------------------------------------------


def test_tokens_authenticate_and_admin_calls_need_an_admin_token(shared) -> None:
    spec = random_direction(11)
    with shared.client(retries=1) as anonymous:
        assert anonymous.health() == "SERVING"  # health stays open for probes
        with pytest.raises(errors.UnauthenticatedError, match="missing bearer token"):
            anonymous.info()
    with shared.client(token="not-a-real-token", retries=1) as wrong, pytest.raises(
        errors.UnauthenticatedError, match="invalid token"
    ):
        wrong.info()
    with shared.client(token=ALICE, retries=1) as alice:
        assert alice.info().model_name
        assert alice.generate(["hi"], settings=generation(4)).completions[0].completion_tokens == 4
        for call in (lambda: alice.create_direction(spec), lambda: alice.delete_direction("d-0000000000000000"),
                     lambda: alice.set_coefficients(perturbation())):
            with pytest.raises(errors.PermissionDeniedError, match="needs an admin token; tenant 'alice'"):
                call()
    with shared.client(token=OPS, retries=1) as ops:
        made = ops.create_direction(spec)
        assert ops.set_coefficients(perturbation([(made.id, 0.01)])).fingerprint
        assert ops.set_coefficients(perturbation()).fingerprint == ops.info().model_fingerprint
        assert ops.delete_direction(made.id) is True
    codes = {(labels["tenant"], labels["code"]) for labels in _request_labels(shared)}
    assert {("anonymous", "UNAUTHENTICATED"), ("alice", "OK"), ("alice", "PERMISSION_DENIED"), ("ops", "OK")} <= codes


def _request_labels(server):
    for family in server.app.metrics.registry.collect():
        if family.name == "visage_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value > 0:
                    yield sample.labels


def test_cli_sends_the_token_from_flag_file_and_env(shared, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(BOB + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISAGE_TOKEN")}

    def visage(*args, extra_env=None):
        return subprocess.run(
            [sys.executable, "-m", "safety_landscape.client.cli", "--json", "info", "--server", shared.target, *args],
            capture_output=True, text=True, env={**env, **(extra_env or {})}, timeout=120,
        )

    for args, extra in (((("--token", BOB)), None), (("--token-file", str(token_file)), None), ((), {"VISAGE_TOKEN": BOB})):
        done = visage(*args, extra_env=extra)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["model_fingerprint"] == shared.engine.fingerprint
    refused = visage()  # a setup error (exit 2) that says what to give
    assert refused.returncode == 2 and "requires a bearer token and none was given" in refused.stderr
    refused = visage("--token", "wrong")
    assert refused.returncode == 2 and "the server refused the token" in refused.stderr
    assert "invalid token" in refused.stderr and json.loads(refused.stdout)["exit_code"] == 2


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_round_trip_and_mtls_rejection(tmp_path, tokens_file) -> None:
    pki = make_pki(tmp_path / "pki")
    with running_server(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key), tokens_file=str(tokens_file)) as s:
        with Client(s.target, tls=TlsConfig(ca_file=str(pki.ca_cert)), token=ALICE, retries=1) as c:
            assert c.generate(["hi"], settings=generation(3)).completions[0].completion_tokens == 3
        with Client(s.target, token=ALICE, retries=1) as plaintext, pytest.raises(errors.UnavailableError):
            plaintext.info()
    with running_server(tls_cert=str(pki.server_cert), tls_key=str(pki.server_key), tls_client_ca=str(pki.ca_cert)) as s:
        no_client_cert = TlsConfig(ca_file=str(pki.ca_cert))
        with Client(s.target, tls=no_client_cert, retries=1) as no_cert, pytest.raises(errors.UnavailableError):
            no_cert.info()
        other = make_pki(tmp_path / "other")
        wrong_ca = TlsConfig(ca_file=str(pki.ca_cert), cert_file=str(other.client_cert), key_file=str(other.client_key))
        with Client(s.target, tls=wrong_ca, retries=1) as stranger, pytest.raises(errors.UnavailableError):
            stranger.info()
        mutual = TlsConfig(ca_file=str(pki.ca_cert), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
        with Client(s.target, tls=mutual, retries=1) as c:
            assert c.info().model_fingerprint == s.engine.fingerprint


# -- limits ------------------------------------------------------------------------------------


def test_every_limit_is_named_when_hit(shared) -> None:
    with shared.client(token=BOB, retries=1) as bob:
        with pytest.raises(errors.InvalidArgumentError, match="max_prompts_per_request"):
            bob.generate(["x"] * 17, settings=generation(2))
        with pytest.raises(errors.InvalidArgumentError, match="max_prompt_tokens"):
            bob.generate(["word " * 300], settings=generation(2))
        with pytest.raises(errors.InvalidArgumentError, match="max_new_tokens"):
            bob.generate(["x"], settings=generation(1001))
        with pytest.raises(errors.InvalidArgumentError, match="max_message_bytes"):
            bob.generate(["y" * 20000], settings=generation(2))
        assert bob.generate(["x"] * 16, settings=generation(2)).generated_tokens == 32  # at the limits: fine
    with shared.client(token=CAROL, retries=1) as carol:
        for seed in (101, 102):  # directions sent as specs are created for, and counted against, the tenant
            carol.generate(["x"], settings=generation(1), at=perturbation([(random_direction(seed), 0.01)]))
        with pytest.raises(errors.ResourceExhaustedError, match="max_directions_per_tenant"):
            carol.generate(["x"], settings=generation(1), at=perturbation([(random_direction(103), 0.01)]))


def test_a_too_long_prompt_is_refused_before_it_queues(shared) -> None:
    # The worker is busy: a prompt over max_prompt_tokens must not wait for it to fail.
    host = shared.app.host
    with shared.client(token=BOB, retries=1) as bob, worker_held(host):
        depth = host.queue_depth()
        started = time.monotonic()
        with pytest.raises(errors.InvalidArgumentError, match=r"prompt 1 is .* tokens .* limit is 128"):
            bob.generate(["fine", "word " * 300], settings=generation(2), timeout=20)
        with pytest.raises(errors.InvalidArgumentError, match="max_prompt_tokens"):
            bob.evaluate(evaluation_settings(prompts=["word " * 300], max_new_tokens=2), timeout=20)
        assert time.monotonic() - started < 10  # answered while the worker was still held
        assert host.queue_depth() == depth


def test_queued_jobs_per_tenant_limit_sends_a_retry_hint(shared) -> None:
    host = shared.app.host
    with shared.client(token=BOB, retries=1) as bob, shared.client(token=ALICE, retries=1) as alice:
        with worker_held(host):
            queued = [bob._landscape.Generate.future(gen_request(), timeout=120) for _ in range(6)]
            wait_for(lambda: host.queue_depth() == 6, what="six queued jobs")
            with pytest.raises(errors.ResourceExhaustedError, match="max_queued_jobs_per_tenant") as info:
                bob.generate(PROMPTS, settings=generation(8))
            assert info.value.retry_after_seconds > 0  # from grpc-retry-pushback-ms in the trailers
            other = alice._landscape.Generate.future(gen_request(), timeout=120)  # another tenant still gets in
            wait_for(lambda: host.queue_depth() == 7, what="alice's job queued")
        texts = {tuple(c.text for c in f.result().completions) for f in [*queued, other]}
        assert len(texts) == 1  # all seven ran, at the same weights, with the same answer


# -- scheduling --------------------------------------------------------------------------------


def test_a_flooding_tenant_does_not_starve_another(shared) -> None:
    host = shared.app.host
    with shared.client(token=ALICE, retries=1) as alice, shared.client(token=BOB, retries=1) as bob:
        with worker_held(host) as gate:
            flood = [alice._landscape.Generate.future(gen_request(), timeout=120) for _ in range(6)]
            wait_for(lambda: host.queue_depth() == 6, what="alice's flood queued")
            single = bob._landscape.Generate.future(gen_request(), timeout=120)
            wait_for(lambda: host.queue_depth() == 7, what="bob's job queued")
        for f in [*flood, single]:
            f.result()
    order = [s.tenant for s in host.served if s.seq > gate.seq]
    assert sorted(order) == ["alice"] * 6 + ["bob"], order
    # Round-robin: bob arrived last but waits behind at most one of alice's jobs.
    assert order.index("bob") <= 1, order


def test_jobs_needing_the_same_weights_are_grouped(shared) -> None:
    host, weights = shared.app.host, shared.engine.weights
    a = perturbation([(random_direction(7), 0.01)])
    b = perturbation([(random_direction(7), 0.02)])
    with shared.client(token=ALICE, retries=1) as alice:
        with worker_held(host):
            switches, metric = weights.switches, counter(shared, "visage_weight_switches_total")
            calls = [alice._landscape.Generate.future(gen_request(at=p), timeout=120) for p in (a, b, a, b, a, b)]
            wait_for(lambda: host.queue_depth() == 6, what="six interleaved jobs queued")
        results = [c.result() for c in calls]
    assert weights.switches - switches <= 2 < len(calls)  # A,B,A,B,A,B ran as A,A,A,B,B,B
    assert counter(shared, "visage_weight_switches_total") - metric == weights.switches - switches
    by_state = {}
    for r in results:  # sent at A, B, A, B, A, B
        by_state.setdefault(r.weight_state.fingerprint, set()).add(tuple(c.text for c in r.completions))
    assert len(by_state) == 2 and all(len(v) == 1 for v in by_state.values())  # each at its own weights


# -- cancellation ------------------------------------------------------------------------------


def test_a_cancelled_call_stops_generating(shared) -> None:
    host, generator = shared.app.host, shared.engine.generator
    passes = []
    generator.fault_injector = passes.append  # used only to count forward passes; it raises nothing
    try:
        cancelled_before = counter(shared, "visage_cancelled_jobs_total")
        tokens_before = counter(shared, "visage_generated_tokens_total")
        with shared.client(token=ALICE, retries=1) as alice:
            call = alice._landscape.Generate.future(gen_request(["tell me a story"] * 16, max_new_tokens=1000), timeout=300)
            wait_for(lambda: len(passes) > 10, what="generation to start")
            call.cancel()
            wait_for(lambda: counter(shared, "visage_cancelled_jobs_total") > cancelled_before, what="the job to stop")
            stopped_at = len(passes)
            assert host.served[-1].outcome == "cancelled"
            # 1 prefill + 999 decode passes for the full call; it stopped long before.
            assert stopped_at < 500, stopped_at
            assert counter(shared, "visage_generated_tokens_total") == tokens_before  # a cancelled call reports none
            after = alice.generate(["hi"], settings=generation(4))  # the server serves the next call
            assert after.completions[0].completion_tokens == 4
            with pytest.raises(errors.DeadlineExceededError):  # a deadline stops it the same way
                alice.generate(["tell me a story"] * 16, settings=generation(1000), timeout=0.5)
            wait_for(lambda: host.served[-1].outcome == "cancelled" and host.queue_depth() == 0, what="deadline stop")
            # A job cancelled while still queued leaves the queue at once, freeing its slot.
            with worker_held(host):
                queued = alice._landscape.Generate.future(gen_request(), timeout=120)
                wait_for(lambda: host.queue_depth() == 1, what="one queued job")
                dropped = host.queued_cancelled
                queued.cancel()
                wait_for(lambda: host.queue_depth() == 0 and host.queued_cancelled == dropped + 1, what="dequeue")
    finally:
        generator.fault_injector = None


# -- out of memory -----------------------------------------------------------------------------


def test_an_injected_out_of_memory_is_split_and_succeeds(shared) -> None:
    """No GPU here: a fault injector raising torch.OutOfMemoryError for batches larger than 2 stands
    in for a device OOM (BatchGenerator calls it before every forward pass)."""
    generator = shared.engine.generator
    prompts = [f"prompt number {i} about {w}" for i, w in enumerate("abcdefgh")]
    with shared.client(token=BOB, retries=1) as bob:
        reference = bob.generate(prompts, settings=generation(12))
        splits_before = counter(shared, "visage_oom_splits_total")
        seen: list[int] = []

        def oom_above_two(batch_size: int) -> None:
            seen.append(batch_size)
            if batch_size > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")

        generator.fault_injector = oom_above_two
        try:
            split = bob.generate(prompts, settings=generation(12))
        finally:
            generator.fault_injector = None
    assert [c.text for c in split.completions] == [c.text for c in reference.completions]
    assert [c.completion_tokens for c in split.completions] == [c.completion_tokens for c in reference.completions]
    assert max(seen) == 8 and counter(shared, "visage_oom_splits_total") - splits_before == 3  # 8 -> 4+4 -> 2+2+2+2


# -- a real process: logs, secrets, drain ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_process_logs_tenants_without_secrets_and_drains_on_sigterm(tokens_file) -> None:
    metrics_port = free_port()
    with ServerProcess("--tokens-file", str(tokens_file), "--metrics-port", str(metrics_port), "--grace-seconds", "60") as proc:
        target = proc.wait_serving()
        with Client(target, token=ALICE, retries=1) as alice, Client(target, token="wrong-" + BOB, retries=1) as wrong:
            assert alice.info().model_name
            with pytest.raises(errors.UnauthenticatedError):
                wrong.info()
            long_call = alice._landscape.Generate.future(
                gen_request(["tell me a story"] * 16, max_new_tokens=200, at=perturbation([(random_direction(3), 0.01)])),
                timeout=300,
            )
            # The call applies its weights first: one switch means it is running on the worker.
            wait_for(lambda: sample(scrape(metrics_port), "visage_weight_switches_total") >= 1, 120, "the call to run")
            with Client(target) as watcher:
                watch = health_pb2_grpc.HealthStub(watcher.channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=120)
                assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
                proc.proc.send_signal(15)  # SIGTERM
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
                watch.cancel()
            response = long_call.result()
            assert len(response.completions) == 16 and response.generated_tokens == 16 * 200
        assert proc.proc.wait(120) == 0
        log = proc.log()
    for token in TOKENS.values():
        assert token not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    generate = [r for r in requests if r["method"].endswith("/Generate")]
    assert generate and generate[0]["tenant"] == "alice" and generate[0]["status"] == "OK"
    assert all(len(r.get("request_id", "")) >= 16 for r in requests)  # every line names its request
    refused = [r for r in requests if r["status"] == "UNAUTHENTICATED"]  # the wrong token's call is logged too
    assert len(refused) == 1 and refused[0]["method"].endswith("/GetInfo") and refused[0]["tenant"] == "anonymous"
    assert refused[0]["refused"] == "invalid token"
    events = [line.get("event") for line in lines]
    assert "draining" in events and events[-1] == "stopped"
    assert events.index("draining") < len(events) - 1
