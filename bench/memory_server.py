"""The server path of ``bench/memory.py``: a real ``visage-server`` process driven over gRPC, its
memory read from the kernel (``/proc/PID/status``), beside the engine path measured in-process.

What a user runs: ``visage evaluate --set harmful-mini --at seed:S=0.25`` three times (S = 1, 2, 3:
a per-tensor random direction, layer-normalised, 128 new tokens, the keyword judge), against a
server started with the defaults but ``--device``/``--dtype bfloat16``. The figure is the peak
resident memory of that server (VmHWM) above the peak of a tiny-random server that served the
same three calls (the runtime: Python, torch, gRPC, the tokenizer's and generation's own
buffers), as a multiple of the model's bytes. Each call's peak is read alone (VmHWM reset with
``/proc/PID/clear_refs`` before it), and a fourth direction is split into its two halves: the
switch (``SetCoefficients``) and the evaluation at the weights already applied.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safety_landscape.client import client as C
from safety_landscape.v1 import landscape_pb2 as pb

__all__ = ["measure_server"]

SEEDS = (1, 2, 3)
SPLIT_SEED = 4
COEFFICIENT = 0.25
NEW_TOKENS = 128
PROMPT_SET = "harmful-mini"


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class _Server:
    """``visage-server`` as a subprocess, serving once ``__enter__`` returns."""

    def __init__(self, model: str, device: str, extra: tuple[str, ...]) -> None:
        self._dir = tempfile.TemporaryDirectory()
        port_file = Path(self._dir.name) / "port"
        self._log = open(Path(self._dir.name) / "log", "w")  # noqa: SIM115 (the process's life)
        cmd = [sys.executable, "-m", "safety_landscape.server.cli", "--model", model, "--device", device,
               "--dtype", "bfloat16", "--listen", "127.0.0.1:0", "--port-file", str(port_file), "--log-format", "json",
               *extra]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 1800
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"visage-server {model} did not start:\n{Path(self._log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        self.client = C.Client(f"127.0.0.1:{port_file.read_text().strip()}", timeouts=C.Timeouts(generate=7200.0))
        self.client.wait_until_serving(1800)

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait()
        self._log.close()
        self._dir.cleanup()

    def peak_of(self, call: object) -> tuple[int, float]:
        """(VmHWM during ``call()``, its seconds)."""
        _reset_peak(self.proc.pid)
        started = time.monotonic()
        call()  # type: ignore[operator]
        return _status(self.proc.pid, "VmHWM:"), time.monotonic() - started


def _at(seed: int) -> pb.Perturbation:
    return C.perturbation([(C.random_direction(seed), COEFFICIENT)])


def _evaluate(server: _Server, seed: int, limit: int, referee: bool = True) -> None:
    settings = C.evaluation_settings(prompt_set=PROMPT_SET, limit=limit, max_new_tokens=NEW_TOKENS)
    settings.disable_referee = not referee
    server.client.evaluate(settings, at=_at(seed))


def _calls(server: _Server, limit: int, referee: bool = True) -> dict[str, object]:
    peaks = {f"evaluate seed:{s}": server.peak_of(lambda s=s: _evaluate(server, s, limit, referee)) for s in SEEDS}
    peaks[f"switch seed:{SPLIT_SEED}"] = server.peak_of(lambda: server.client.set_coefficients(_at(SPLIT_SEED)))
    peaks[f"evaluate seed:{SPLIT_SEED}, no switch"] = server.peak_of(lambda: _evaluate(server, SPLIT_SEED, limit, referee))
    return {"peaks": {k: v[0] for k, v in peaks.items()}, "seconds": {k: round(v[1], 1) for k, v in peaks.items()}}


def measure_server(folder: str, device: str = "cpu", extra: tuple[str, ...] = (), limit: int = 0,
                   referee: bool = True) -> dict[str, object]:
    """The server path's figures for the model in ``folder`` (see the module docstring); ``referee``:
    the evaluations with the coherence referee on (a request's default) or off."""
    with _Server("tiny-random", device, extra) as tiny:
        _calls(tiny, limit, referee)
        runtime = _status(tiny.proc.pid, "VmHWM:")
    with _Server(folder, device, extra) as server:
        info = server.client.info()
        loaded = _status(server.proc.pid, "VmRSS:")
        calls = _calls(server, limit, referee)
        model_bytes = info.memory.model_bytes
        storage, pristine = info.memory_plan.direction_storage, info.memory_plan.pristine
    peaks: dict[str, int] = calls["peaks"]  # type: ignore[assignment]
    evaluate_peak = max(v for k, v in peaks.items() if k.startswith("evaluate seed:") and "no switch" not in k)
    return {
        "model_bytes": model_bytes, "runtime_peak": runtime, "loaded_rss": loaded, "storage": storage,
        "pristine": pristine, "peaks": peaks, "seconds": calls["seconds"],
        "loaded_x": (loaded - runtime) / model_bytes, "evaluate_x": (evaluate_peak - runtime) / model_bytes,
        "split_x": {k: (v - runtime) / model_bytes for k, v in peaks.items()},
    }
