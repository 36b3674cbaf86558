"""Load on a REAL server: 200 Generate calls from 20 threads against a queue of 8 jobs (per tenant).

The excess is refused with RESOURCE_EXHAUSTED (naming the limit, with a retry hint), every
accepted call returns exactly what a single-threaded reference run returned, the server stays
SERVING, and the metrics scraped afterwards add up (counts, tokens, batch sizes, queue depth).
Speed figures are not asserted here: ``bench/load_test.py`` prints them.
"""

from __future__ import annotations

import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving import running_server

from safety_landscape.client import errors
from safety_landscape.client.client import generation

THREADS, PER_THREAD = 20, 10
MAX_NEW_TOKENS = 64
# Four distinct requests, several prompts each, long enough (64 new tokens) that the queue fills.
VARIANTS = [
    [f"Request {v}, prompt {i}: tell me about topic {v * 10 + i}" for i in range(4)] for v in range(4)
]
GENERATE = "/safety_landscape.v1.LandscapeService/Generate"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scraped, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def server():
    # One tenant may queue 8 jobs; the queue holds 9, as a per-tenant limit must leave room for others.
    with running_server(limits={"max_queued_jobs": 9, "max_queued_jobs_per_tenant": 8}) as s:
        yield s


def test_200_requests_20_threads_queue_of_8(server) -> None:
    with server.client(retries=1) as c:  # retries=1: a refusal is reported, not retried
        reference = [tuple((x.text, x.completion_tokens) for x in c.generate(p, settings=generation(MAX_NEW_TOKENS)).completions)
                     for p in VARIANTS]
    ref_tokens = len(VARIANTS) * 4 * MAX_NEW_TOKENS
    accepted: list[tuple[int, tuple, int]] = []
    rejected: list[errors.ResourceExhaustedError] = []
    other: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        with server.client(retries=1) as client:
            start.wait()
            for i in range(PER_THREAD):
                v = (t + i) % len(VARIANTS)
                try:
                    r = client.generate(VARIANTS[v], settings=generation(MAX_NEW_TOKENS), timeout=300)
                except errors.ResourceExhaustedError as exc:
                    with lock:
                        rejected.append(exc)
                except BaseException as exc:
                    with lock:
                        other.append(exc)
                else:
                    with lock:
                        accepted.append((v, tuple((x.text, x.completion_tokens) for x in r.completions), r.generated_tokens))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not other, other[:3]
    assert len(accepted) + len(rejected) == THREADS * PER_THREAD
    assert rejected, "the queue never filled: make the requests longer"
    assert len(accepted) >= 9  # at least one running + a full queue of 8
    for exc in rejected:
        assert "max_queued_jobs" in exc.details and exc.retry_after_seconds > 0
    for v, result, _ in accepted:
        assert result == reference[v]  # concurrency never changes an answer

    with server.client() as c:
        assert c.health() == "SERVING"
        assert c.generate(VARIANTS[0], settings=generation(MAX_NEW_TOKENS)).completions[0].text == reference[0][0][0]

    scraped = samples(server.app.metrics.render().decode())
    ok = len(accepted) + len(VARIANTS) + 1
    assert value(scraped, "visage_requests_total", method=GENERATE, code="OK", tenant="anonymous") == ok
    assert value(scraped, "visage_requests_total", method=GENERATE, code="RESOURCE_EXHAUSTED", tenant="anonymous") == len(rejected)
    assert value(scraped, "visage_rejected_total", reason="queue_full") + value(
        scraped, "visage_rejected_total", reason="tenant_queue_full") == len(rejected)
    tokens = sum(g for _, _, g in accepted) + ref_tokens + 4 * MAX_NEW_TOKENS
    assert value(scraped, "visage_generated_tokens_total") == tokens
    assert value(scraped, "visage_batch_size_count") == ok  # four prompts: one batch per call
    assert value(scraped, "visage_batch_size_sum") == 4 * ok
    assert value(scraped, "visage_queue_depth") == 0  # drained after the storm
    assert value(scraped, "visage_request_seconds_count", method=GENERATE) == ok + len(rejected)
    assert ("visage_weight_switches_total", ()) in scraped  # exported (0: every call at theta0)
    assert value(scraped, "visage_serving") == 1
    assert server.engine.weights.switches == value(scraped, "visage_weight_switches_total") == 0
