"""TLS and mutual TLS on a real server with a throw-away CA; clear errors for bad files."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from safety_landscape.client.credentials import channel_credentials, with_token
from safety_landscape.server.auth import AuthInterceptor, TokenStore
from safety_landscape.server.tls import server_credentials

try:
    from tests.certs import Pki, make_pki
except ImportError:  # tests/ on sys.path (pytest's rootdir-less import mode)
    from certs import Pki, make_pki  # type: ignore[no-redef]

CHECK = health_pb2.HealthCheckRequest(service="")
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def serve(creds: grpc.ServerCredentials, interceptors: tuple = ()) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=interceptors)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port


@pytest.fixture
def tls_port(pki: Pki) -> Iterator[int]:
    server, port = serve(server_credentials(pki.server_cert, pki.server_key))
    yield port
    server.stop(None)


@pytest.fixture
def mtls_port(pki: Pki) -> Iterator[int]:
    server, port = serve(server_credentials(pki.server_cert, pki.server_key, client_ca_file=pki.ca_cert))
    yield port
    server.stop(None)


def check(port: int, creds: grpc.ChannelCredentials, host: str = "localhost") -> int:
    with grpc.secure_channel(f"{host}:{port}", creds) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(CHECK, timeout=30).status


def test_tls_round_trip(pki: Pki, tls_port: int) -> None:
    assert check(tls_port, channel_credentials(ca_file=str(pki.ca_cert))) == SERVING
    assert check(tls_port, channel_credentials(ca_file=str(pki.ca_cert)), host="127.0.0.1") == SERVING


def test_tls_rejects_unknown_ca(tmp_path: Path, tls_port: int) -> None:
    other = make_pki(tmp_path / "other")
    with pytest.raises(grpc.RpcError) as info:
        check(tls_port, channel_credentials(ca_file=str(other.ca_cert)))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_mtls_requires_client_cert(pki: Pki, mtls_port: int) -> None:
    with pytest.raises(grpc.RpcError) as info:
        check(mtls_port, channel_credentials(ca_file=str(pki.ca_cert)))
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    creds = channel_credentials(str(pki.ca_cert), str(pki.client_cert), str(pki.client_key))
    assert check(mtls_port, creds) == SERVING


def test_mtls_rejects_cert_from_other_ca(tmp_path: Path, pki: Pki, mtls_port: int) -> None:
    other = make_pki(tmp_path / "other")
    creds = channel_credentials(str(pki.ca_cert), str(other.client_cert), str(other.client_key))
    with pytest.raises(grpc.RpcError) as info:
        check(mtls_port, creds)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_token_over_tls(pki: Pki) -> None:
    auth = AuthInterceptor(TokenStore.from_env("alice:tls-token"), open_methods=frozenset())
    server, port = serve(server_credentials(pki.server_cert, pki.server_key), (auth,))
    try:
        with grpc.secure_channel(f"localhost:{port}", channel_credentials(ca_file=str(pki.ca_cert))) as ch:
            with pytest.raises(grpc.RpcError) as info:
                health_pb2_grpc.HealthStub(ch).Check(CHECK, timeout=30)
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert health_pb2_grpc.HealthStub(with_token(ch, "tls-token")).Check(CHECK, timeout=30).status == SERVING
    finally:
        server.stop(None)


def test_server_credentials_errors_name_the_file(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=f"TLS certificate.*{missing}.*no such file"):
        server_credentials(missing, pki.server_key)
    with pytest.raises(ValueError, match=f"TLS private key.*{missing}"):
        server_credentials(pki.server_cert, missing)
    with pytest.raises(ValueError, match=r"client CA.*no such file"):
        server_credentials(pki.server_cert, pki.server_key, client_ca_file=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match=f"{garbage}: not a PEM file"):
        server_credentials(garbage, pki.server_key)
    with pytest.raises(ValueError, match="no PRIVATE KEY"):
        server_credentials(pki.server_cert, pki.server_cert)
    with pytest.raises(ValueError, match="is a directory"):
        server_credentials(tmp_path, pki.server_key)


def test_channel_credentials_errors(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ValueError, match="both a client certificate and its key"):
        channel_credentials(str(pki.ca_cert), cert_file=str(pki.client_cert))
    with pytest.raises(ValueError, match=r"CA file.*no such file"):
        channel_credentials(str(tmp_path / "nope.pem"))
