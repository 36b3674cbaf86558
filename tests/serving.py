"""Test helpers that run the REAL server: in-process on a loopback port 0, or as a subprocess.

``running_server(**config)`` builds the server exactly as ``visage-server`` does (create_server,
then load the engine) and yields a ``RunningServer`` with its target and a client factory.
``ServerProcess`` starts ``visage-server`` itself (for signals, exit codes, two-process checks).
``worker_held`` holds the server's one worker thread with a job that waits on an event, exactly
like a long GPU job, so a queue fills behind it deterministically (no sleeps); ``wait_for`` polls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from safety_landscape.client import client as client_mod
from safety_landscape.server.app import ServerApp, create_server
from safety_landscape.server.bootstrap import build_engine_factory
from safety_landscape.server.config import Limits, ServerConfig
from safety_landscape.server.host import Job


@dataclass
class RunningServer:
    app: ServerApp
    target: str

    def client(self, **kwargs) -> client_mod.Client:
        return client_mod.Client(self.target, **kwargs)

    @property
    def engine(self):
        return self.app.host.engine  # type: ignore[union-attr]


def make_config(*, limits: dict | None = None, **overrides) -> ServerConfig:
    base = ServerConfig(model="tiny-random", listen="127.0.0.1:0", device="cpu", dtype="float32", log_format="json", grace_seconds=5.0)
    if limits:
        overrides["limits"] = dataclasses.replace(Limits(), **limits)
    return dataclasses.replace(base, **overrides)


@contextlib.contextmanager
def running_server(*, limits: dict | None = None, **overrides) -> Iterator[RunningServer]:
    config = make_config(limits=limits, **overrides)
    app = create_server(config)
    try:
        app.load(build_engine_factory(config))
        yield RunningServer(app=app, target=f"127.0.0.1:{app.port}")
    finally:
        app.drain(grace=1.0)


class ServerProcess:
    """``visage-server`` as a subprocess; ``target`` once listening."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.port_file = Path(self._dir.name) / "port"
        self.log_file = Path(self._dir.name) / "server.log"
        cmd = [sys.executable, "-m", "safety_landscape.server.cli", "--listen", "127.0.0.1:0",
               "--port-file", str(self.port_file), "--log-format", "json", *args]
        if "--model" not in args:
            cmd += ["--model", "tiny-random"]
        full_env = {**os.environ, **(env or {})}
        self._log = open(self.log_file, "w")  # noqa: SIM115 (open for the process's life; closed with it)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)
        self.target = ""

    def wait_listening(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port_file.exists() and self.port_file.read_text().strip():
                self.target = f"127.0.0.1:{self.port_file.read_text().strip()}"
                return self.target
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        raise TimeoutError("server did not listen in time: " + self.log())

    def wait_serving(self, timeout: float = 120.0) -> str:
        target = self.wait_listening(timeout)
        with client_mod.Client(target) as c:
            c.wait_until_serving(timeout)
        return target

    def log(self) -> str:
        self._log.flush()
        return self.log_file.read_text()

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self._dir.cleanup()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def worker_held(host):
    release, started = threading.Event(), threading.Event()

    def work(engine, cancel):
        started.set()
        release.wait(60)

    gate = Job(tenant="test-gate", terms=None, work=work)
    future = host.submit(gate)
    assert started.wait(30), "the worker never picked the gate job"
    try:
        yield gate
    finally:
        release.set()
        future.result(30)
