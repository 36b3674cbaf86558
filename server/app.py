"""Server assembly and lifecycle: the gRPC server, its interceptors, health, reflection, drain.

``ServerApp`` starts listening at once with health NOT_SERVING, loads and warms the model (the
caller passes a loader, so a test can hold loading back), then turns SERVING. ``drain`` turns
NOT_SERVING, refuses new calls, lets the calls in progress finish within the grace period (an
idle health ``Watch`` is not waited for), then cancels what is left, the running job included:
it returns within the grace period plus a few seconds whatever runs. Threads per kind of call,
their bounds and the fair share of the work threads are ``calls.py``.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

from .auth import HEALTH_METHODS, REFLECTION_METHODS, AuthInterceptor, TokenStore
from .calls import CallGate
from .config import Limits, ServerConfig
from .engine.engine import Engine
from .host import HostSlot, ModelHost
from .logs import RequestLogInterceptor
from .metrics import MetricsInterceptor, ServerMetrics
from .service import DirectionServicer, LandscapeServicer

log = structlog.get_logger("safety_landscape.server")
STOP_SECONDS = 2.0  # after the grace period: for grpc to cancel what is left
WATCH_NOTICE_SECONDS = 0.5  # open health Watch streams get this long to send NOT_SERVING before they are cancelled
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
    gate: CallGate
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
        """NOT_SERVING, stop accepting, finish the calls in progress within `grace` seconds, then
        cancel what is left and stop: at most `grace` + ``STOP_SECONDS`` + the host's stop bound."""
        grace = self.config.grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        self.set_status(False)
        self.health.enter_graceful_shutdown()  # nothing may turn it back to SERVING now
        log.info("draining", grace_seconds=grace, queued_jobs=self.host.queue_depth() if self.host else 0,
                 calls=self.gate.work_in_flight())
        stopped = self.server.stop(grace)  # new calls are refused from now on
        idle = self.gate.wait_idle(deadline)  # health Watch streams are not waited for
        if self.host is not None:
            self.host.stop(timeout=max(0.0, deadline - time.monotonic()))
        if self.gate.watches_open():
            time.sleep(min(WATCH_NOTICE_SECONDS, max(0.0, deadline - time.monotonic())))
        self.server.stop(0)  # cancels what is left: Watch streams, calls that overran the grace period
        stopped.wait(STOP_SECONDS)
        self.gate.close()
        log.info("drained", calls_finished=idle)


def _auth_interceptor(config: ServerConfig, metrics: ServerMetrics) -> AuthInterceptor:
    store = TokenStore()
    if config.tokens_file:
        store = store.merge(TokenStore.from_file(config.tokens_file))
    if config.tokens_env:
        store = store.merge(TokenStore.from_env(config.tokens_env))
    metrics.set_known_tenants(store.tenant_names())
    _warn_about_direction_slots(store, config.limits)
    open_methods: frozenset[str] = frozenset()
    if config.open_health:
        open_methods |= HEALTH_METHODS
    if config.open_reflection:
        open_methods |= REFLECTION_METHODS
    # Configured tokens always turn authentication on (--require-auth's help says so): a server
    # given a tokens file must never quietly serve everyone as "anonymous".
    return AuthInterceptor(store, open_methods=open_methods, require_auth=config.require_auth or len(store) > 0)


def _warn_about_direction_slots(store: TokenStore, limits: Limits) -> None:
    """Tenants never take each other's direction slots, so more tenant slots than the server holds
    can leave a newcomer without one (until an admin deletes some): say so at start-up."""
    tenants = sum(1 for t in store.tenants() if not t.admin)
    if tenants * limits.tenant_direction_slots > limits.max_directions:
        log.warning("direction slots may run out", tenants=tenants, tenant_direction_slots=limits.tenant_direction_slots,
                    max_directions=limits.max_directions,
                    hint="raise --max-directions or lower --tenant-direction-slots (docs/operations.md)")


_BIND_ADVICE = {
    errno.EADDRINUSE: "the port is in use (another visage-server?): stop that process, or choose another port "
    "(port 0 picks a free one)",
    errno.EADDRNOTAVAIL: "the host is not an address of this machine: use 127.0.0.1 (this machine only) or 0.0.0.0 "
    "(every interface)",
    errno.EACCES: "ports below 1024 need privileges: choose a port above 1024",
}


def check_bindable(listen: str) -> None:
    """OSError saying why ``listen`` (HOST:PORT) cannot be bound: a port in use, a host that is not
    this machine's or does not resolve, a privileged port. Like grpc, one bindable address of
    those the host resolves to is enough."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        addresses = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, ValueError) as exc:
        raise OSError(f"cannot listen on {listen}: the host {host!r} does not resolve ({exc})") from None
    refusals: list[OSError] = []
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc binds
            try:
                probe.bind(address)
                return
            except OSError as exc:
                refusals.append(exc)
    first = refusals[0]
    advice = _BIND_ADVICE.get(first.errno or 0, first.strerror or str(first))
    raise OSError(f"cannot listen on {listen}: {advice}")


def create_server(config: ServerConfig, *, metrics: ServerMetrics | None = None) -> ServerApp:
    """Build and start the gRPC server on config.listen (port 0 picks a free port); NOT_SERVING.
    ValueError for settings that contradict each other (``Limits.check``)."""
    config.limits.check()
    metrics = metrics or ServerMetrics()
    auth = _auth_interceptor(config, metrics)
    gate = CallGate(config.limits, metrics=metrics)
    hard_cap = 4 * config.limits.max_message_bytes  # above our own limit, so we can answer INVALID_ARGUMENT
    server = grpc.server(
        gate.work_pool,
        # Metrics first (it counts the gate's refusals too), then the gate, which picks the call's threads.
        # The auth interceptor decides once per call; the two outside it read its decision from the
        # call's context (context.decided_tenant) once their continuation has run it.
        interceptors=[MetricsInterceptor(metrics), gate, auth, RequestLogInterceptor()],
        options=[
            ("grpc.max_receive_message_length", hard_cap),
            ("grpc.max_send_message_length", hard_cap),
            ("grpc.so_reuseport", 0),
        ],
        # grpc's own bound counts calls waiting for any pool; the gate refuses work calls long before it.
        maximum_concurrent_rpcs=gate.pool_threads + 256,
    )
    slot = HostSlot()  # UNAVAILABLE to every RPC until ``load`` sets the host
    pb_grpc.add_LandscapeServiceServicer_to_server(LandscapeServicer(slot, config), server)
    pb_grpc.add_DirectionServiceServicer_to_server(DirectionServicer(slot, config), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    check_bindable(config.listen)  # says why before grpc tries (it would log an error line and raise RuntimeError)
    try:
        if config.tls_cert:
            from .tls import server_credentials

            creds = server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca or None)
            port = server.add_secure_port(config.listen, creds)
        else:
            port = server.add_insecure_port(config.listen)
    except RuntimeError:  # "Failed to bind": taken between the check and the bind
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}: the address is in use or not this machine's")
    server.start()
    app = ServerApp(config=config, server=server, port=port, health=health_servicer, metrics=metrics, gate=gate,
                    host_slot=slot)
    app.set_status(False)
    return app
