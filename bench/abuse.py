"""Abuse bench: each attack of a hostile or careless tenant against a fresh server, while another
tenant's small calls are timed.

For every attack in ``bench/abuse_attacks.py``: start ``visage-server`` (tiny-random, CPU, three
tenants: mallory attacks, victor is the victim, ops is an admin), wait until it serves, then run
the attack as mallory while a victim thread calls, as victor, a small Generate (one prompt, four
new tokens, 10 s deadline) and the health Check (3 s deadline) every 0.2 s. Prints one row per
attack: the status mallory got and after how many seconds, the victim's Generate p50/p99 (a call
that failed counts at its deadline) and how many of his calls failed, the slowest health check,
and the server's peak resident memory (VmHWM of its process).

    python bench/abuse.py                      # every attack (about 10 minutes on 2 CPU cores)
    python bench/abuse.py --only "1 MB" --only Score
    python bench/abuse.py --markdown           # the table as Markdown (docs/operations.md)
"""

from __future__ import annotations

import functools
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from abuse_attacks import ATTACKS, TOKENS_ENV, VICTOR, Attack, Outcome, Target
from grpc_health.v1 import health_pb2, health_pb2_grpc

from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.v1 import landscape_pb2 as pb
from safety_landscape.v1 import landscape_pb2_grpc as pb_grpc

GENERATE_DEADLINE, HEALTH_DEADLINE = 10.0, 3.0


@dataclass
class VictimTimes:
    generate: list[float] = field(default_factory=list)  # seconds; a failed call counts at its deadline
    failed: list[str] = field(default_factory=list)
    health: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        data = sorted(self.generate)
        return data[min(len(data) - 1, round(q * (len(data) - 1)))] if data else float("nan")


class Victim:
    """Victor's small calls, timed in a thread until ``stop``."""

    def __init__(self, address: str) -> None:
        self.times = VictimTimes()
        self._stop = threading.Event()
        self._channel = grpc.insecure_channel(address)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Victim:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(GENERATE_DEADLINE + HEALTH_DEADLINE + 5)
        self._channel.close()

    def _loop(self) -> None:
        landscape = pb_grpc.LandscapeServiceStub(self._channel)
        health = health_pb2_grpc.HealthStub(self._channel)
        request = pb.GenerateRequest(prompts=["Hello"], generation=pb.GenerationSettings(max_new_tokens=4))
        metadata = (("authorization", f"Bearer {VICTOR}"),)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                landscape.Generate(request, timeout=GENERATE_DEADLINE, metadata=metadata)
                self.times.generate.append(time.monotonic() - started)
            except grpc.RpcError as exc:
                self.times.generate.append(max(time.monotonic() - started, GENERATE_DEADLINE)
                                           if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED else time.monotonic() - started)
                self.times.failed.append(exc.code().name)
            started = time.monotonic()
            try:
                health.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_DEADLINE)
                self.times.health.append(time.monotonic() - started)
            except grpc.RpcError:
                self.times.health.append(HEALTH_DEADLINE)
            self._stop.wait(0.2)


class ServerUnderTest:
    """A fresh ``visage-server`` process; its peak RSS read from /proc before it goes."""

    def __init__(self, attack: Attack, grace: float) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.port_file = Path(self._dir.name) / "port"
        self.log_path = Path(self._dir.name) / "server.log"
        cmd = [sys.executable, "-m", "safety_landscape.server.cli", "--model", "tiny-random", "--device", "cpu",
               "--dtype", "float32", "--listen", "127.0.0.1:0", "--port-file", str(self.port_file),
               "--log-format", "json", "--grace-seconds", str(grace), *attack.server_args,
               *_known_flags(attack.server_args_if_known)]
        cap = attack.address_space_mib * (1 << 20)

        def limit() -> None:
            if cap:
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        self._log = open(self.log_path, "w")  # noqa: SIM115 (open for the process's life)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=limit,
                                     env={**os.environ, "VISAGE_TOKENS": TOKENS_ENV})
        self.exited_at: float | None = None
        self.peak_rss = 0

    def wait_serving(self, timeout: float = 120) -> str | None:
        """The address once it serves; None if it exited first (a start-up refusal)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return None
            if self.port_file.exists() and self.port_file.read_text().strip():
                address = f"127.0.0.1:{self.port_file.read_text().strip()}"
                with grpc.insecure_channel(address) as channel:
                    try:
                        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            return address
                    except grpc.RpcError:
                        pass
            time.sleep(0.2)
        raise TimeoutError("the server did not serve in time:\n" + self.log_path.read_text()[-2000:])

    def sample_rss(self) -> None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)
        except OSError:
            pass

    def signal(self, signum: int) -> None:
        self.sample_rss()
        self._signalled = time.monotonic()
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> float | None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - self._signalled

    def stop(self) -> None:
        self.sample_rss()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def startup_refusal(self) -> str:
        lines = [line for line in self.log_path.read_text().splitlines() if line.startswith("visage-server:")]
        return lines[-1][:110] if lines else self.log_path.read_text()[-110:]


@functools.cache
def _server_help() -> str:
    return subprocess.run([sys.executable, "-m", "safety_landscape.server.cli", "--help"], capture_output=True,
                          text=True, timeout=120).stdout


def _known_flags(pairs: tuple[str, ...]) -> list[str]:
    """The (flag, value) pairs of ``pairs`` whose flag this server's --help lists."""
    out: list[str] = []
    for flag, value in zip(pairs[::2], pairs[1::2], strict=True):
        if f"{flag} " in _server_help():
            out += [flag, value]
    return out


@dataclass
class Row:
    attack: str
    outcome: Outcome
    victim: VictimTimes | None
    peak_rss: int


def run_attack(attack: Attack, grace: float) -> Row:
    server = ServerUnderTest(attack, grace)
    try:
        address = server.wait_serving()
        if address is None:
            return Row(attack.name, Outcome(f"exit {server.proc.returncode}", 0.0, server.startup_refusal()), None, 0)
        target = Target(address=address, pid=server.proc.pid, signal_server=server.signal,
                        wait_exit=server.wait_exit, grace_seconds=grace)
        sampler = threading.Event()

        def sample() -> None:
            while not sampler.wait(0.2):
                server.sample_rss()

        threading.Thread(target=sample, daemon=True).start()
        if attack.victim:
            with Victim(address) as victim:
                time.sleep(1.0)  # a baseline before the attack
                outcome = attack.run(target)
                time.sleep(2.0)  # and the recovery after it
            times: VictimTimes | None = victim.times
        else:
            outcome, times = attack.run(target), None
        sampler.set()
        return Row(attack.name, outcome, times, server.peak_rss)
    finally:
        server.stop()


def _cells(row: Row) -> list[str]:
    v = row.victim
    victim = ("-", "-", "-", "-") if v is None or not v.generate else (
        f"{v.percentile(0.5):.2f}", f"{v.percentile(0.99):.2f}", f"{len(v.failed)}/{len(v.generate)}",
        f"{max(v.health):.2f}" if v.health else "-")
    rss = f"{row.peak_rss / (1 << 20):.0f}" if row.peak_rss else "-"
    return [row.attack, row.outcome.status, f"{row.outcome.seconds:.1f}", *victim, rss, row.outcome.note]


HEADER = ["attack", "status", "s", "victim p50 s", "victim p99 s", "victim failed", "health max s", "RSS peak MiB", "note"]


def print_table(rows: list[Row], markdown: bool) -> None:
    table = [HEADER, *(_cells(r) for r in rows)]
    if markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for cells in table[1:]:
            print("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        return
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER) - 1)]
    for cells in table:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1])


def main() -> int:
    p = StrictArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[], help="run the attacks whose name contains this (repeatable)")
    p.add_argument("--grace", type=float, default=10.0, help="the servers' --grace-seconds (default 10)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args()
    chosen = [a for a in ATTACKS if not args.only or any(o.lower() in a.name.lower() for o in args.only)]
    rows = []
    for attack in chosen:
        print(f"... {attack.name}", file=sys.stderr, flush=True)
        rows.append(run_attack(attack, args.grace))
        print_table(rows[-1:], markdown=False) if not args.markdown else None
    print()
    print_table(rows, args.markdown)
    slow = [r for r in rows if r.victim and r.victim.generate and r.victim.percentile(0.99) > 3.0]
    bad = [r for r in rows if r.outcome.status in ("UNKNOWN", "INTERNAL")]
    print(f"\n{len(rows)} attacks; victim p99 over 3 s in {len(slow)}; UNKNOWN/INTERNAL answers: {len(bad)}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
