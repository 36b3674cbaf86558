"""``visage-server``: read the settings (flags, else ``VISAGE_*`` variables: ``config_parser.py``), check
the model, listen, load, serve until SIGTERM/SIGINT, then drain and exit 0.

Exit codes: 0 clean shutdown; 2 a bad or unknown flag or variable, settings that contradict each
other, an unknown/unreadable model, a memory plan that does not fit, the server extra not
installed, or an address it cannot listen on (all before loading); 3 the model failed to load
after listening started. ``--memory-plan`` prints the plan and exits 0 when it fits, 1 when it
does not. Each error is one line on stderr, never a traceback.

A signal gives the drain ``--grace-seconds``; the process exits at the latest
``EXIT_BOUND_SECONDS`` later, whatever still runs (a last resort: the drain itself cancels
running work, so it normally returns well within that bound). A signal while the model loads
ends the process at once (exit 0): nothing is served yet.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from .config import ServerConfig
from .config_parser import SettingError, build_parser, config_from_args, parse_flags

__all__ = [
    "EXIT_BAD_CONFIG", "EXIT_LOAD_FAILED", "EXIT_PLANNED", "EXIT_PLAN_DOES_NOT_FIT", "build_parser", "config_from_args", "main",
]

EXIT_BAD_CONFIG = 2
EXIT_LOAD_FAILED = 3
EXIT_PLANNED = 0  # --memory-plan: the plan fits
EXIT_PLAN_DOES_NOT_FIT = 1  # --memory-plan: it does not
EXIT_BOUND_SECONDS = 4.5  # past the grace period, at most, until the process has exited
# The modules of pyproject's `server` extra (distribution -> module): checked before anything imports them.
SERVER_EXTRA = {
    "torch": "torch", "transformers": "transformers", "safetensors": "safetensors", "accelerate": "accelerate",
    "gguf": "gguf", "prometheus-client": "prometheus_client", "grpcio-reflection": "grpc_reflection",
}


def _parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.add_argument(
        "--memory-plan", action="store_true",
        help="print the memory plan (bytes per device: model, pristine copy, directions, scratch, KV cache, "
        "activations) for these settings and exit: 0 if it fits, 1 if not; nothing is loaded",
    )
    return parser


def _checked_config(argv: list[str] | None) -> ServerConfig | int:
    """The config of the flags and variables, checked before listening; or the exit code."""
    args = parse_flags(_parser(), argv)  # a bad or unknown flag: one line naming it, exit 2
    missing = [dist for dist, module in SERVER_EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(f"visage-server: the server's dependencies are not installed (missing: {', '.join(missing)}); "
              "install the server extra: pip install '.[server]' (in a clone) or pip install 'safety-landscape[server]'",
              file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        config = config_from_args(args)
    except SettingError as exc:
        print(f"visage-server: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    from .logs import configure_logging

    configure_logging(config.log_format)
    from .bootstrap import check_config, plan_for_config
    from .errors import LandscapeError

    try:
        if args.memory_plan:
            plan = plan_for_config(config)
            assert plan is not None
            print(plan.table())
            if not plan.fits:
                print(f"visage-server: {plan.refusal()}", file=sys.stderr)
            return EXIT_PLANNED if plan.fits else EXIT_PLAN_DOES_NOT_FIT
        source = check_config(config)  # model, registry, prompt files, tokens, memory plan: all before listening
        if source.note:
            import structlog

            structlog.get_logger("safety_landscape.server").warning("model", note=source.note, model=source.name)
    except (LandscapeError, ValueError) as exc:
        print(f"visage-server: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return config


def _serve(config: ServerConfig) -> int:
    """Listen, load the model, serve until a signal, drain. A signal while the model loads ends the
    process at once: nothing is served yet, so there is nothing to drain."""
    import structlog

    from .app import create_server
    from .bootstrap import build_engine_factory
    from .errors import LandscapeError

    log = structlog.get_logger("safety_landscape.server")
    try:
        app = create_server(config)
    except (OSError, ValueError) as exc:
        print(f"visage-server: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if config.port_file:
        with open(config.port_file, "w") as handle:
            handle.write(str(app.port))
    http = app.metrics.start_http(config.metrics_port) if config.metrics_port else None
    log.info("listening", port=app.port, model=config.model, health="NOT_SERVING until loaded")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal", signal=signal.Signals(signum).name)
        if not app.ready.is_set():
            # Python runs this between the loader's bytecodes, or when a blocking call it made
            # returns EINTR (a stalled read included): the load is abandoned where it stands.
            log.info("stopped while the model was loading")
            _exit_now(0)
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
    _exit_at_the_latest(config.grace_seconds + EXIT_BOUND_SECONDS, log)
    app.drain()
    if http is not None:
        http.stop()
    log.info("stopped")
    _exit_now(0)
    return 0  # pragma: no cover


def _exit_now(code: int) -> None:
    """End the process at once: what a stopped server holds needs no clean-up, and tearing down
    the interpreter (torch, transformers, grpc) takes seconds that would count against the
    pod's termination grace period."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_at_the_latest(seconds: float, log: Any) -> None:
    """End the process ``seconds`` from now if it has not ended by then (a daemon timer)."""

    def force() -> None:
        log.error("forced exit: the drain did not finish within the grace period", seconds=seconds)
        _exit_now(0)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> int:
    config = _checked_config(argv)
    return config if isinstance(config, int) else _serve(config)


if __name__ == "__main__":
    sys.exit(main())
