"""Server assembly and lifecycle: the gRPC server, its interceptors, health, reflection, drain.

``ServerApp`` starts listening at once with health NOT_SERVING, loads and warms the model (the
caller passes a loader, so a test can hold loading back), then turns SERVING. ``drain`` turns
NOT_SERVING, refuses new work, lets in-flight calls finish within a grace period and stops.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from .auth import HEALTH_METHODS, REFLECTION_METHODS, AuthInterceptor, TokenStore
from .config import ServerConfig
from .engine.engine import Engine
from .host import HostSlot, ModelHost
from .logs import RequestLogInterceptor
from .metrics import MetricsInterceptor, ServerMetrics
from .service import DirectionServicer, LandscapeServicer

log = structlog.get_logger("safety_landscape.server")
SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["LandscapeService"].full_name,
    pb.DESCRIPTOR.services_by_name["DirectionService"].full_name,
)


@dataclass
class ServerApp:
    config: ServerConfig
    server: grpc.Server
    port: int
    health: health.HealthServicer
    metrics: ServerMetrics
    host_slot: HostSlot = field(default_factory=HostSlot)  # what the servicers call for the host
    ready: threading.Event = field(default_factory=threading.Event)
    failed: BaseException | None = None

    @property
    def host(self) -> ModelHost | None:
        """The model host once loaded, else None."""
        return self.host_slot.host

    def set_status(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)
        self.metrics.serving.set(1 if serving else 0)

    def load(self, build_engine: Callable[[], Engine]) -> None:
        """Build the engine (loading the model), warm it up, register the servicers' host, serve."""
        engine = build_engine()
        self.metrics.model_load_seconds.set(engine.loaded.load_seconds)
        if self.config.warmup:
            engine.warm_up()
        self.host_slot.set(ModelHost(engine, self.config.limits, self.metrics))
        self.metrics.set_device_memory(**dataclasses.asdict(engine.memory()))
        self.metrics.set_memory_plan(engine.memory_plan)
        self.set_status(True)
        self.ready.set()
        log.info("serving", model=self.config.model, port=self.port, fingerprint=engine.fingerprint[:16],
                 load_seconds=round(engine.loaded.load_seconds, 2))

    def drain(self, grace: float | None = None) -> None:
        """NOT_SERVING, stop accepting, finish in-flight calls within `grace` seconds, stop."""
        grace = self.config.grace_seconds if grace is None else grace
        self.set_status(False)
        self.health.enter_graceful_shutdown()  # nothing may turn it back to SERVING now
        log.info("draining", grace_seconds=grace, queued_jobs=self.host.queue_depth() if self.host else 0)
        self.server.stop(grace).wait()
        if self.host is not None:
            self.host.stop(timeout=grace)


def _auth_interceptor(config: ServerConfig, metrics: ServerMetrics) -> AuthInterceptor:
    store = TokenStore()
    if config.tokens_file:
        store = store.merge(TokenStore.from_file(config.tokens_file))
    if config.tokens_env:
        store = store.merge(TokenStore.from_env(config.tokens_env))
    metrics.set_known_tenants(store.tenant_names())
    open_methods: frozenset[str] = frozenset()
    if config.open_health:
        open_methods |= HEALTH_METHODS
    if config.open_reflection:
        open_methods |= REFLECTION_METHODS
    # Configured tokens always turn authentication on (--require-auth's help says so): a server
    # given a tokens file must never quietly serve everyone as "anonymous".
    return AuthInterceptor(store, open_methods=open_methods, require_auth=config.require_auth or len(store) > 0)


def create_server(config: ServerConfig, *, metrics: ServerMetrics | None = None) -> ServerApp:
    """Build and start the gRPC server on config.listen (port 0 picks a free port); NOT_SERVING."""
    metrics = metrics or ServerMetrics()
    auth = _auth_interceptor(config, metrics)
    hard_cap = 4 * config.limits.max_message_bytes  # above our own limit, so we can answer INVALID_ARGUMENT
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max(16, config.limits.max_queued_jobs + 8), thread_name_prefix="grpc"),
        interceptors=[MetricsInterceptor(metrics, tenant_of=auth.tenant_of), auth, RequestLogInterceptor()],
        options=[
            ("grpc.max_receive_message_length", hard_cap),
            ("grpc.max_send_message_length", hard_cap),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=config.limits.max_queued_jobs * 4 + 16,
    )
    slot = HostSlot()  # UNAVAILABLE to every RPC until ``load`` sets the host
    pb_grpc.add_LandscapeServiceServicer_to_server(LandscapeServicer(slot, config), server)
    pb_grpc.add_DirectionServiceServicer_to_server(DirectionServicer(slot, config), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if config.tls_cert:
        from .tls import server_credentials

        creds = server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca or None)
        port = server.add_secure_port(config.listen, creds)
    else:
        port = server.add_insecure_port(config.listen)
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}: the address is in use or invalid")
    server.start()
    app = ServerApp(config=config, server=server, port=port, health=health_servicer, metrics=metrics, host_slot=slot)
    app.set_status(False)
    return app
