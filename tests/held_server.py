"""A real ``visage-server`` process whose loading the test holds back: a test hook, nothing mocked.

``python tests/held_server.py RELEASE_FILE [visage-server flags]`` runs the server's own ``main``.
It listens at once (health NOT_SERVING, every RPC UNAVAILABLE "still loading", as any server while
it loads), loads the model, and only turns SERVING once RELEASE_FILE exists. SIGUSR1 puts it back
into that loading state (the host slot emptied, health NOT_SERVING) until RELEASE_FILE exists again,
so that one process gives a test many "server still starting" moments without a reload each time.

:class:`HeldServer` runs it: ``hold()`` re-enters the loading state, ``release()`` lets it serve.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)


def _hook(release: Path) -> None:
    """Patch the server's start-up so loading ends only at ``release``; SIGUSR1 holds it again."""
    from safety_landscape.server import app as app_module
    from safety_landscape.server import bootstrap

    build = bootstrap.build_engine_factory
    create = app_module.create_server
    apps = []

    def held_factory(config):
        real = build(config)

        def load():
            engine = real()  # the real model load; SERVING waits for the release file
            _wait_for(release)
            return engine

        return load

    def capture(*args, **kwargs):
        apps.append(create(*args, **kwargs))
        return apps[-1]

    def hold(signum, frame):
        app = apps[0]
        host = app.host_slot.host
        app.set_status(False)
        app.host_slot.set(None)  # RPCs: UNAVAILABLE "the model is still loading", as before the first load

        def serve_again() -> None:
            _wait_for(release)
            app.host_slot.set(host)
            app.set_status(True)

        threading.Thread(target=serve_again, daemon=True).start()

    bootstrap.build_engine_factory = held_factory
    app_module.create_server = capture
    signal.signal(signal.SIGUSR1, hold)


class HeldServer:
    """The held server as a subprocess (tiny-random unless ``--model`` is given); starts held."""

    def __init__(self, *args: str) -> None:
        self._dir = tempfile.TemporaryDirectory()
        folder = Path(self._dir.name)
        self.release_file, self.port_file, self.log_file = folder / "release", folder / "port", folder / "server.log"
        cmd = [sys.executable, __file__, str(self.release_file), "--listen", "127.0.0.1:0", "--port-file",
               str(self.port_file), "--log-format", "json", "--device", "cpu", "--dtype", "float32", *args]
        if "--model" not in args:
            cmd += ["--model", "tiny-random"]
        self._log = open(self.log_file, "w")  # noqa: SIM115 (open for the process's life; closed with it)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))
        self.target = self._listening()

    def _listening(self, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text:
                return f"127.0.0.1:{text}"
            if self.proc.poll() is not None:
                raise RuntimeError(f"held server exited with {self.proc.returncode}: {self.log_file.read_text()}")
            time.sleep(0.05)
        raise TimeoutError("held server did not listen: " + self.log_file.read_text())

    def health(self) -> str:
        from safety_landscape.client.client import Client
        from safety_landscape.client.errors import UnavailableError

        with Client(self.target, retries=1) as client:
            try:
                return client.health(timeout=5)
            except UnavailableError:
                return "UNAVAILABLE"

    def _until(self, status: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.health() != status:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"held server never reported {status}: {self.log_file.read_text()}")
            time.sleep(0.05)

    def release(self, *, wait: bool = True) -> None:
        self.release_file.touch()
        if wait:
            self._until("SERVING")

    def hold(self) -> None:
        """Back to "still loading" (must be SERVING now); returns once health says NOT_SERVING."""
        self.release_file.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        self._until("NOT_SERVING")

    def __enter__(self) -> HeldServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._dir.cleanup()


if __name__ == "__main__":
    _hook(Path(sys.argv[1]))
    from safety_landscape.server.cli import main

    sys.exit(main(sys.argv[2:]))
