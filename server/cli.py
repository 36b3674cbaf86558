"""``visage-server``: parse flags (each also a ``VISAGE_*`` variable), check the model, listen,
load, serve until SIGTERM/SIGINT, then drain and exit 0.

Exit codes: 0 clean shutdown; 2 bad flags or an unknown/unreadable model (before listening);
3 the model failed to load after listening started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

EXIT_BAD_CONFIG = 2
EXIT_LOAD_FAILED = 3


def _env(name: str, default):
    return os.environ.get("VISAGE_" + name, default)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get("VISAGE_" + name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="visage-server",
        description="Serve one causal language model over gRPC for safety-landscape sweeps. "
        "Every flag can also be set with the environment variable named in its help.",
    )
    a = p.add_argument
    a("--model", default=_env("MODEL", "tiny-random"),
      help="tiny-random, smollm2-135m-instruct, a .gguf file or a Hugging Face directory with safetensors [VISAGE_MODEL]")
    a("--listen", default=_env("LISTEN", "127.0.0.1:50051"), help="HOST:PORT to listen on; port 0 picks one [VISAGE_LISTEN]")
    a("--device", default=_env("DEVICE", "auto"), help="auto, cpu, cuda or cuda:N [VISAGE_DEVICE]")
    a("--dtype", default=_env("DTYPE", "auto"), help="auto, float32, bfloat16 or float16 [VISAGE_DTYPE]")
    a("--metrics-port", type=int, default=int(_env("METRICS_PORT", 0)), help="Prometheus /metrics port, 0 = off [VISAGE_METRICS_PORT]")
    a("--max-batch-size", type=int, default=int(_env("MAX_BATCH_SIZE", 64)), help="sequences per forward pass (a device out-of-memory halves the batch and retries) [VISAGE_MAX_BATCH_SIZE]")
    a("--max-new-tokens", type=int, default=int(_env("MAX_NEW_TOKENS", 1024)), help="largest max_new_tokens accepted [VISAGE_MAX_NEW_TOKENS]")
    a("--max-prompts", type=int, default=int(_env("MAX_PROMPTS", 1024)), help="prompts per request [VISAGE_MAX_PROMPTS]")
    a("--max-prompt-tokens", type=int, default=int(_env("MAX_PROMPT_TOKENS", 2048)), help="tokens per prompt [VISAGE_MAX_PROMPT_TOKENS]")
    a("--max-message-bytes", type=int, default=int(_env("MAX_MESSAGE_BYTES", 16 * 1024 * 1024)), help="request size [VISAGE_MAX_MESSAGE_BYTES]")
    a("--max-directions", type=int, default=int(_env("MAX_DIRECTIONS", 16)), help="directions held; LRU eviction beyond [VISAGE_MAX_DIRECTIONS]")
    a("--max-directions-per-tenant", type=int, default=int(_env("MAX_DIRECTIONS_PER_TENANT", 0)), help="0 = no cap [VISAGE_MAX_DIRECTIONS_PER_TENANT]")
    a("--max-abs-coefficient", type=float, default=float(_env("MAX_ABS_COEFFICIENT", 10.0)), help="[VISAGE_MAX_ABS_COEFFICIENT]")
    a("--queue-size", type=int, default=int(_env("QUEUE_SIZE", 64)), help="jobs queued in all [VISAGE_QUEUE_SIZE]")
    a("--queue-per-tenant", type=int, default=int(_env("QUEUE_PER_TENANT", 16)), help="jobs queued per tenant [VISAGE_QUEUE_PER_TENANT]")
    a("--direction-storage", choices=("cache", "regenerate"), default=_env("DIRECTION_STORAGE", "cache"),
      help="hold directions in memory, or regenerate random ones from the seed at each switch [VISAGE_DIRECTION_STORAGE]")
    a("--registry", default=_env("REGISTRY", ""), help="TOML file naming checkpoints and adapters clients may use [VISAGE_REGISTRY]")
    a("--prompt-set", action="append", default=[s for s in _env("PROMPT_SETS", "").split(",") if s],
      help="NAME=PATH[:harmful|benign], repeatable: a prompt file clients may name [VISAGE_PROMPT_SETS, comma-separated]")
    a("--judge-model", default=_env("JUDGE_MODEL", ""), help="a second model used as the classifier judge [VISAGE_JUDGE_MODEL]")
    a("--tokens-file", default=_env("TOKENS_FILE", ""), help="TOML file of tenants and token hashes [VISAGE_TOKENS_FILE]")
    a("--require-auth", action=argparse.BooleanOptionalAction, default=_env_bool("REQUIRE_AUTH", False),
      help="require a bearer token on every call [VISAGE_REQUIRE_AUTH]; also on when tokens are configured")
    a("--open-health", action=argparse.BooleanOptionalAction, default=_env_bool("OPEN_HEALTH", True), help="[VISAGE_OPEN_HEALTH]")
    a("--open-reflection", action=argparse.BooleanOptionalAction, default=_env_bool("OPEN_REFLECTION", True), help="[VISAGE_OPEN_REFLECTION]")
    a("--tls-cert", default=_env("TLS_CERT", ""), help="[VISAGE_TLS_CERT]")
    a("--tls-key", default=_env("TLS_KEY", ""), help="[VISAGE_TLS_KEY]")
    a("--tls-client-ca", default=_env("TLS_CLIENT_CA", ""), help="CA for client certificates: mutual TLS [VISAGE_TLS_CLIENT_CA]")
    a("--grace-seconds", type=float, default=float(_env("GRACE_SECONDS", 30)), help="drain time on SIGTERM [VISAGE_GRACE_SECONDS]")
    a("--log-format", choices=("auto", "json", "console"), default=_env("LOG_FORMAT", "auto"), help="[VISAGE_LOG_FORMAT]")
    a("--port-file", default=_env("PORT_FILE", ""), help="write the bound port here once listening (for scripts and tests)")
    return p


def config_from_args(args: argparse.Namespace):
    from .config import Limits, ServerConfig

    tokens_env = os.environ.get("VISAGE_TOKENS", "")
    prompt_sets = []
    for item in args.prompt_set:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--prompt-set {item!r}: use NAME=PATH[:harmful|benign]")
        prompt_sets.append((name, path))
    return ServerConfig(
        model=args.model,
        listen=args.listen,
        device=args.device,
        dtype=args.dtype,
        metrics_port=args.metrics_port,
        direction_storage=args.direction_storage,
        limits=Limits(
            max_batch_size=args.max_batch_size,
            max_new_tokens=args.max_new_tokens,
            max_prompts_per_request=args.max_prompts,
            max_prompt_tokens=args.max_prompt_tokens,
            max_message_bytes=args.max_message_bytes,
            max_directions=args.max_directions,
            max_directions_per_tenant=args.max_directions_per_tenant,
            max_abs_coefficient=args.max_abs_coefficient,
            max_queued_jobs=args.queue_size,
            max_queued_jobs_per_tenant=args.queue_per_tenant,
        ),
        registry=args.registry,
        prompt_sets=tuple(prompt_sets),
        judge_model=args.judge_model,
        tokens_file=args.tokens_file,
        tokens_env=tokens_env,
        require_auth=args.require_auth or bool(args.tokens_file or tokens_env),
        open_health=args.open_health,
        open_reflection=args.open_reflection,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        grace_seconds=args.grace_seconds,
        log_format=args.log_format,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .logs import configure_logging

    configure_logging(args.log_format)
    import structlog

    log = structlog.get_logger("safety_landscape.server")
    from .bootstrap import build_engine_factory, check_config
    from .errors import LandscapeError

    try:
        config = config_from_args(args)
        check_config(config)  # model, registry, prompt files, tokens: all before listening
    except (LandscapeError, ValueError) as exc:
        print(f"visage-server: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from .app import create_server

    try:
        app = create_server(config)
    except (OSError, ValueError) as exc:
        print(f"visage-server: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(str(app.port))
    http = app.metrics.start_http(config.metrics_port) if config.metrics_port else None
    log.info("listening", port=app.port, model=config.model, health="NOT_SERVING until loaded")
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info("signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        app.load(build_engine_factory(config))
    except (LandscapeError, OSError, ValueError, RuntimeError) as exc:
        log.error("model failed to load", error=str(exc))
        print(f"visage-server: the model failed to load: {exc}", file=sys.stderr)
        app.server.stop(0)
        return EXIT_LOAD_FAILED
    stop.wait()
    app.drain()
    if http is not None:
        http.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
