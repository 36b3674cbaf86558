"""Load test of one visage-server: N Generate calls from T threads, no client retries.

Prints how many calls were accepted and refused (RESOURCE_EXHAUSTED), p50/p99 latency of the
accepted ones, whether every accepted answer equals a single-threaded reference, and the server's
metrics scraped afterwards.

    python bench/load_test.py                          # starts an in-process tiny-random server, 8 jobs queued
    python bench/load_test.py --server HOST:PORT --token-file TOKEN --metrics-url http://HOST:9090/metrics

Without --server the script starts the server itself (create_server + the model, as
visage-server does) with --queue-size jobs queued per tenant (and one more in all: a per-tenant
limit must be below the queue's size), and reads its metrics registry directly.
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from safety_landscape.client import errors
from safety_landscape.client.client import Client, generation
from safety_landscape.client.credentials import resolve_token
from safety_landscape.common.command_line import StrictArgumentParser

SHOWN = (
    "visage_requests_total", "visage_rejected_total", "visage_queue_depth", "visage_batch_size_count",
    "visage_batch_size_sum", "visage_generated_tokens_total", "visage_weight_switches_total",
    "visage_cancelled_jobs_total", "visage_oom_splits_total", "visage_serving", "visage_decode_tokens_per_second",
)


@dataclass
class LoadResult:
    accepted_latencies: list[float] = field(default_factory=list)
    rejected: int = 0
    failed: list[str] = field(default_factory=list)
    mismatched: int = 0
    wall_seconds: float = 0.0
    tokens: int = 0

    def percentile(self, q: float) -> float:
        data = sorted(self.accepted_latencies)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, max(0, round(q * (len(data) - 1))))]


def variants(count: int, prompts: int) -> list[list[str]]:
    return [[f"Request {v}, prompt {i}: tell me about topic {v * 10 + i}" for i in range(prompts)] for v in range(count)]


def run_load(target: str, *, requests: int, threads: int, max_new_tokens: int, prompts: int,
             token: str | None = None, backoff: float = 0.0) -> LoadResult:
    reqs = variants(4, prompts)
    settings = generation(max_new_tokens)
    with Client(target, token=token, retries=1) as c:
        reference = [[x.text for x in c.generate(p, settings=settings).completions] for p in reqs]
    result, lock = LoadResult(), threading.Lock()
    counter = iter(range(requests))
    barrier = threading.Barrier(threads)

    def worker() -> None:
        with Client(target, token=token, retries=1) as client:
            barrier.wait()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                try:
                    r = client.generate(reqs[i % len(reqs)], settings=settings, timeout=600)
                except errors.ResourceExhaustedError:
                    with lock:
                        result.rejected += 1
                    time.sleep(backoff)  # a polite client waits before its next call (0: none)
                except errors.VisageError as exc:
                    with lock:
                        result.failed.append(str(exc))
                else:
                    elapsed = time.perf_counter() - started
                    with lock:
                        result.accepted_latencies.append(elapsed)
                        result.tokens += r.generated_tokens
                        if [x.text for x in r.completions] != reference[i % len(reqs)]:
                            result.mismatched += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    result.wall_seconds = time.perf_counter() - t0
    return result


def metric_lines(text: str) -> list[str]:
    always = ("visage_queue_depth ", "visage_weight_switches_total ")  # shown even at 0
    return [line for line in text.splitlines()
            if line.startswith(SHOWN) and (not line.endswith(" 0.0") or line.startswith(always))]


def main() -> int:
    p = StrictArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", help="HOST:PORT of a running server (default: start a tiny-random one here)")
    p.add_argument("--token"), p.add_argument("--token-file")
    p.add_argument("--metrics-url", help="the server's /metrics URL (with --server)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--threads", type=int, default=20)
    p.add_argument("--queue-size", type=int, default=8, help="jobs the in-process server queues per tenant (one more in all)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--prompts", type=int, default=4, help="prompts per call")
    p.add_argument("--backoff", type=float, default=0.0, help="seconds a thread waits after a refusal (default 0)")
    args = p.parse_args()

    app = None
    target = args.server
    if target is None:
        import dataclasses

        from safety_landscape.server.app import create_server
        from safety_landscape.server.bootstrap import build_engine_factory
        from safety_landscape.server.config import Limits, ServerConfig

        limits = dataclasses.replace(Limits(), max_queued_jobs=args.queue_size + 1, max_queued_jobs_per_tenant=args.queue_size)
        config = ServerConfig(model="tiny-random", listen="127.0.0.1:0", device="cpu", dtype="float32", limits=limits,
                              log_format="json")
        from safety_landscape.server.logs import configure_logging

        configure_logging("json", level=40)  # errors only: a warning per refused call would drown the figures
        app = create_server(config)
        app.load(build_engine_factory(config))
        target = f"127.0.0.1:{app.port}"
    try:
        token = resolve_token(args.token, args.token_file)
        r = run_load(target, requests=args.requests, threads=args.threads, max_new_tokens=args.max_new_tokens,
                     prompts=args.prompts, token=token, backoff=args.backoff)
        with Client(target, token=token) as c:
            health = c.health()
        if app is not None:
            scraped = app.metrics.render().decode()
        elif args.metrics_url:
            with urllib.request.urlopen(args.metrics_url, timeout=10) as response:
                scraped = response.read().decode()
        else:
            scraped = ""
    finally:
        if app is not None:
            app.drain(grace=5.0)
    lat = r.accepted_latencies
    print(f"target          {target} ({'in-process tiny-random, queue ' + str(args.queue_size) if app else 'remote'})")
    print(f"load            {args.requests} Generate calls from {args.threads} threads, {args.prompts} prompts x "
          f"{args.max_new_tokens} new tokens each, no client retries, {args.backoff:g} s pause after a refusal")
    print(f"accepted        {len(lat)}  (answers equal to the serial reference: {len(lat) - r.mismatched}/{len(lat)})")
    print(f"rejected        {r.rejected}  (RESOURCE_EXHAUSTED, queue full)")
    print(f"other failures  {len(r.failed)}" + (f"  first: {r.failed[0]}" if r.failed else ""))
    if lat:
        print(f"latency         p50 {r.percentile(0.5) * 1000:.0f} ms, p99 {r.percentile(0.99) * 1000:.0f} ms, "
              f"mean {statistics.mean(lat) * 1000:.0f} ms (accepted calls)")
    print(f"wall            {r.wall_seconds:.2f} s, {r.tokens} tokens generated by accepted calls "
          f"({r.tokens / r.wall_seconds:.0f} tokens/s)")
    print(f"health after    {health}")
    if scraped:
        print("metrics after (non-zero samples):")
        for line in metric_lines(scraped):
            print("  " + line)
    return 0 if not r.failed and not r.mismatched and health == "SERVING" else 1


if __name__ == "__main__":
    raise SystemExit(main())
