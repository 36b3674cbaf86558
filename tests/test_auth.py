"""Bearer-token auth on a real gRPC server: tenants, the admin group, open health, redaction."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from serving import running_server

from safety_landscape.client.credentials import BearerTokenInterceptor, resolve_token, with_token
from safety_landscape.server.auth import (
    ADMIN_METHODS,
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthInterceptor,
    Tenant,
    TokenStore,
    token_digest,
)
from safety_landscape.server.context import request_id_var, tenant_var
from safety_landscape.server.logs import redact_secrets
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

GET_INFO = "/safety_landscape.v1.LandscapeService/GetInfo"
LIST_PROMPT_SETS = "/safety_landscape.v1.LandscapeService/ListPromptSets"
EVALUATE_POINTS = "/safety_landscape.v1.LandscapeService/EvaluatePoints"
CREATE_DIRECTION = "/safety_landscape.v1.DirectionService/CreateDirection"
ALICE, OPS = "alice-token-123", "ops-token-456"


def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    structlog.get_logger().info("handled")
    return f"{tenant_var.get()}|{request_id_var.get()}".encode()


def _whoami_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in range(3):
        yield tenant_var.get().encode()


def start_server(interceptors: list[grpc.ServerInterceptor], *, workers: int = 4) -> tuple[grpc.Server, int]:
    """A real server on 127.0.0.1:0 with health and fake tenant/admin methods answering the tenant."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), interceptors=interceptors)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "safety_landscape.v1.LandscapeService",
                {
                    "GetInfo": grpc.unary_unary_rpc_method_handler(_whoami),
                    "ListPromptSets": grpc.unary_unary_rpc_method_handler(_whoami),
                    "EvaluatePoints": grpc.unary_stream_rpc_method_handler(_whoami_stream),
                },
            ),
            grpc.method_handlers_generic_handler(
                "safety_landscape.v1.DirectionService",
                {"CreateDirection": grpc.unary_unary_rpc_method_handler(_whoami)},
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def store() -> TokenStore:
    return TokenStore.from_env(f"alice:{ALICE},ops:{OPS}:admin")


@pytest.fixture
def channel(store: TokenStore) -> Iterator[grpc.Channel]:
    auth = AuthInterceptor(store, admin_methods=ADMIN_METHODS, open_methods=HEALTH_METHODS | {LIST_PROMPT_SETS})
    server, port = start_server([auth], workers=1)  # one worker: a leaked contextvar would show
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(None)


def call(channel: grpc.Channel, method: str, token: str | None = None, **metadata: str) -> str:
    md = [("authorization", f"Bearer {token}")] if token else []
    md += [(k.replace("_", "-"), v) for k, v in metadata.items()]
    return channel.unary_unary(method)(b"", metadata=md, timeout=30).decode()


def code_of(fn, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value.code(), info.value.details()


def test_missing_and_wrong_token_are_unauthenticated(channel: grpc.Channel) -> None:
    code, details = code_of(call, channel, GET_INFO)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in details and "VISAGE_TOKEN" in details
    code, details = code_of(call, channel, GET_INFO, "not-a-token")
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid token")
    md = [("authorization", "Basic dXNlcjpwdw==")]
    code, _ = code_of(channel.unary_unary(GET_INFO), b"", metadata=md, timeout=30)
    assert code is grpc.StatusCode.UNAUTHENTICATED


def test_tenant_token_reaches_handler_and_does_not_leak(channel: grpc.Channel) -> None:
    tenant, request_id = call(channel, GET_INFO, ALICE).split("|")
    assert tenant == "alice" and len(request_id) == 32
    assert call(channel, GET_INFO, ALICE, x_request_id="req-42") == "alice|req-42"
    # same single worker thread, open method, no token: the previous tenant must not be visible
    assert call(channel, LIST_PROMPT_SETS).split("|")[0] == "anonymous"
    assert call(channel, LIST_PROMPT_SETS, OPS).split("|")[0] == "ops"


def test_streaming_handler_sees_tenant(channel: grpc.Channel) -> None:
    md = [("authorization", f"Bearer {OPS}")]
    assert [r.decode() for r in channel.unary_stream(EVALUATE_POINTS)(b"", metadata=md, timeout=30)] == ["ops"] * 3
    code, _ = code_of(lambda: list(channel.unary_stream(EVALUATE_POINTS)(b"", timeout=30)))
    assert code is grpc.StatusCode.UNAUTHENTICATED


def test_admin_group(channel: grpc.Channel) -> None:
    code, details = code_of(call, channel, CREATE_DIRECTION, ALICE)
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert CREATE_DIRECTION in details and "admin token" in details
    assert call(channel, CREATE_DIRECTION, OPS).startswith("ops|")


def test_client_interceptor_sends_token(channel: grpc.Channel) -> None:
    authed = with_token(channel, ALICE)
    assert authed.unary_unary(GET_INFO)(b"", timeout=30).decode().startswith("alice|")
    assert with_token(channel, None) is channel
    assert ALICE not in repr(BearerTokenInterceptor(ALICE))


def test_health_open_only_when_configured(store: TokenStore) -> None:
    check = health_pb2.HealthCheckRequest(service="")
    for open_methods, expected in ((HEALTH_METHODS, None), (frozenset(), grpc.StatusCode.UNAUTHENTICATED)):
        server, port = start_server([AuthInterceptor(store, open_methods=open_methods)])
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                if expected is None:
                    assert stub.Check(check, timeout=30).status == health_pb2.HealthCheckResponse.SERVING
                else:
                    code, _ = code_of(stub.Check, check, timeout=30)
                    assert code is expected
                    reply = stub.Check(check, metadata=[("authorization", f"Bearer {ALICE}")], timeout=30)
                    assert reply.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            server.stop(None)


def test_auth_off_allows_everything(store: TokenStore) -> None:
    server, port = start_server([AuthInterceptor(TokenStore(), require_auth=False)])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert call(ch, CREATE_DIRECTION).startswith("anonymous|")
            assert call(ch, GET_INFO, "anything").startswith("anonymous|")
    finally:
        server.stop(None)
    with pytest.raises(ValueError, match="no tokens are configured"):
        AuthInterceptor(TokenStore())


def test_token_file_round_trip(tmp_path, store: TokenStore) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'[[tenant]]\nname = "alice"\ntoken = "{ALICE}"\n\n'
        f'[[tenant]]\nname = "ops"\ntoken_sha256 = "{token_digest(OPS).upper()}"\nadmin = true\n'
    )
    loaded = TokenStore.from_file(path)
    assert len(loaded) == 2
    assert loaded.authenticate(ALICE) == Tenant("alice", admin=False)
    assert loaded.authenticate(OPS) == Tenant("ops", admin=True)
    assert loaded.authenticate("nope") is None and loaded.authenticate("") is None
    assert loaded.tenant_names() == {"alice", "ops"}
    text = repr(loaded) + str(vars(loaded))
    assert ALICE not in text and OPS not in text and token_digest(ALICE) not in repr(loaded)
    merged = loaded.merge(TokenStore.from_env("bob:bob-token"))
    assert len(merged) == 3 and merged.authenticate("bob-token") == Tenant("bob")
    with pytest.raises(ValueError, match="same token"):
        loaded.merge(TokenStore.from_env(f"mallory:{ALICE}"))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not toml [[", "not valid TOML"),
        ("[other]\nx = 1\n", "no [[tenant]]"),
        ('[[tenant]]\nname = "a"\n', "exactly one of"),
        ('[[tenant]]\nname = "a"\ntoken_sha256 = "abc"\n', "64 hex digits"),
        ('[[tenant]]\nname = "a"\ntoken = "t"\nadmin = "yes"\n', "'admin' must be"),
        ('[[tenant]]\nname = "a"\ntoken = "t"\n[[tenant]]\nname = "b"\ntoken = "t"\n', "same token"),
        ('[[tenant]]\ntoken = "t"\n[[tenant]]\nname = "b"\ntokn = "t"\n', "unknown keys"),
    ],
)
def test_bad_token_file_names_file_and_problem(tmp_path, content: str, problem: str) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        TokenStore.from_file(path)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert "t\"" not in str(info.value)


def test_missing_token_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        TokenStore.from_file(tmp_path / "absent.toml")


def test_env_format() -> None:
    s = TokenStore.from_env(" a:t1 , b:t:2:admin ,, c:t3:ADMIN")
    assert s.authenticate("t1") == Tenant("a") and s.authenticate("t:2") == Tenant("b", True)
    assert s.authenticate("t3") == Tenant("c", True)
    with pytest.raises(ValueError, match="name:token"):
        TokenStore.from_env("justaname")


def test_reflection_constants() -> None:
    assert all(m.startswith(("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.")) for m in REFLECTION_METHODS)
    assert len(ADMIN_METHODS) == 3 and all("DirectionService" in m for m in ADMIN_METHODS)


def test_logs_never_show_tokens(channel: grpc.Channel, store: TokenStore) -> None:
    buf = io.StringIO()
    structlog.reset_defaults()  # an earlier test's level filter (e.g. WARNING) would drop these lines
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, redact_secrets, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=buf),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        log.info("startup", store=repr(store), token=ALICE, authorization=f"Bearer {OPS}")
        log.info("call", metadata=(("authorization", f"Bearer {ALICE}"), ("x-request-id", "r1")),
                 note=f"header was Bearer {OPS}, ok", nested={"password": "hunter2", "max_new_tokens": 8})
        call(channel, GET_INFO, ALICE, x_request_id="req-log")
    finally:
        structlog.reset_defaults()
    text = buf.getvalue()
    for secret in (ALICE, OPS, "hunter2", token_digest(ALICE)):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[1]["nested"]["max_new_tokens"] == 8
    handled = [line for line in lines if line["event"] == "handled"]
    assert handled == [{"event": "handled", "tenant": "alice", "request_id": "req-log"}]


def test_resolve_token_precedence(tmp_path) -> None:
    f = tmp_path / "tok"
    f.write_text("  from-file\n")
    env = {"VISAGE_TOKEN": "from-env"}
    assert resolve_token("from-flag", str(f), env) == "from-flag"
    assert resolve_token(None, str(f), env) == "from-file"
    assert resolve_token(None, None, env) == "from-env"
    assert resolve_token(None, None, {"VISAGE_TOKEN_FILE": str(f)}) == "from-file"
    assert resolve_token(None, None, {}) is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        resolve_token(None, str(tmp_path / "empty"), {})


def test_the_server_decides_auth_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real server stack (metrics, call gate, auth, request log), each call hashes its token
    and looks up its tenant ONCE, whatever kind of call it is or whether it is refused; the metrics
    and the call gate, which run outside the auth interceptor, still see that call's tenant."""
    decisions: list[str | None] = []
    authenticate = TokenStore.authenticate

    def counted(self: TokenStore, token: str | None) -> Tenant | None:
        decisions.append(token)
        return authenticate(self, token)

    monkeypatch.setattr(TokenStore, "authenticate", counted)  # counts, then runs the real lookup
    with running_server(tokens_env=f"alice:{ALICE},ops:{OPS}:admin") as server:
        stub = pb_grpc.LandscapeServiceStub(grpc.insecure_channel(server.target))
        alice = [("authorization", f"Bearer {ALICE}")]
        generate = pb.GenerateRequest(prompts=["hi"], generation=pb.GenerationSettings(max_new_tokens=2))
        points = pb.EvaluatePointsRequest(
            points=[pb.Perturbation()], settings=pb.EvaluationSettings(prompts=pb.PromptSource(set_name="harmful-mini", limit=1),
                                                                      generation=pb.GenerationSettings(max_new_tokens=2)))
        calls = {
            "info": lambda: stub.GetInfo(pb.GetInfoRequest(), metadata=alice, timeout=30),
            "work": lambda: stub.Generate(generate, metadata=alice, timeout=60),
            "stream": lambda: list(stub.EvaluatePoints(points, metadata=alice, timeout=60)),
            "refused": lambda: stub.Generate(generate, timeout=30),
        }
        counts = {}
        for kind, call in calls.items():
            decisions.clear()
            try:
                call()
            except grpc.RpcError as exc:
                assert kind == "refused" and exc.code() is grpc.StatusCode.UNAUTHENTICATED
            counts[kind] = len(decisions)
        assert counts == {"info": 1, "work": 1, "stream": 1, "refused": 1}
        requests = server.app.metrics.requests_total
        assert requests.labels(method="/safety_landscape.v1.LandscapeService/Generate", code="OK", tenant="alice")._value.get() == 1
        refused = requests.labels(method="/safety_landscape.v1.LandscapeService/Generate", code="UNAUTHENTICATED", tenant="anonymous")
        assert refused._value.get() == 1
