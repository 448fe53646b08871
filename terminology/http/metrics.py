"""Prometheus metrics: what every worker counts, exposed at GET /metrics (off the /fhir base).

The launcher points PROMETHEUS_MULTIPROC_DIR at a fresh folder before this module is first
imported and before the workers fork (multiproc.py), so each process writes its counts
there and whichever worker answers /metrics adds them all up. Without it (the Flask test
client, `serve --dev`) the counts are this process's own.

Labels are bounded: `operation` is one of the routes this server has (an unknown resource
type or operation in a URL counts as "other"), `status` an HTTP status code.

The per-request counts (requests, latency, response-cache lookups) are added up in the
worker's memory and written to the shared values in one batch every FLUSH_SECONDS by a
flusher thread (and before this process answers /metrics): a request costs a few dict
and list operations, not a lock and an mmap write per series. A scrape may so miss the
last FLUSH_SECONDS of another worker's requests; the next scrape counts them.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import threading
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

from terminology.http.exchange import OPERATION_ENDPOINTS, Exchange
from terminology.logs import every
from terminology.operations import HANDLERS

OPERATIONS = frozenset(f"{rtype}/${op}" for rtype, op in HANDLERS)
_OPERATION_PATH = re.compile(r"^/fhir/(\w+)/(?:[^/]+/)?\$([\w-]+)$")
_READ_PATH = re.compile(r"^/fhir/(CodeSystem|ValueSet|ConceptMap)(/[^/$]+)?$")
PLAIN_ROUTES = {"/fhir/metadata": "metadata", "/fhir/openapi.json": "openapi",
                "/fhir/$versions": "versions", "/healthz": "healthz", "/readyz": "readyz",
                "/metrics": "metrics"}

REQUESTS = Counter("tx_requests", "HTTP requests answered, by operation and status",
                   ["operation", "status"])
LATENCY = Histogram("tx_request_duration_seconds", "Time to answer a request, by operation",
                    ["operation"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
CACHE = Counter("tx_response_cache", "Response cache lookups of operation GETs, by result",
                ["result"])
EXPANSION_SIZE = Histogram("tx_expansion_size", "Codes in an $expand answer's total (or page)",
                           buckets=(0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000))
CONTENT_LOADS = Counter("tx_content_loads", "Content loads, by result (start-up and reloads)",
                        ["result"])
CONTENT_INFO = Gauge("tx_content_info", "The content served: 1 for the current version",
                     ["version"], multiprocess_mode="mostrecent")
CONTENT_LOAD_SECONDS = Gauge("tx_content_load_seconds", "Seconds the last successful load took",
                             multiprocess_mode="mostrecent")
CONTENT_LOADED_AT = Gauge("tx_content_loaded_timestamp_seconds",
                          "Unix time of the last successful load", multiprocess_mode="mostrecent")
CONTENT_RESOURCES = Gauge("tx_content_resources", "Resources served, by type",
                          ["type"], multiprocess_mode="mostrecent")
WORKER_STARTS = Counter("tx_worker_starts", "Worker processes started (the first ones included)")
WORKER_RESTARTS = Counter("tx_worker_restarts",
                          "Worker processes started to replace another (crash, reload)")
STORE_WRITES = Counter("tx_store_writes", "Writes to the resource store, by type and action",
                       ["resource_type", "action"])


@functools.lru_cache(maxsize=4096)  # paths are client-controlled: bounded
def operation_label(path: str) -> str:
    """The bounded `operation` label of a request path."""
    if path in PLAIN_ROUTES:
        return PLAIN_ROUTES[path]
    m = _OPERATION_PATH.match(path)
    if m:
        name = f"{m.group(1)}/${m.group(2)}"
        return name if name in OPERATIONS else "other"
    m = _READ_PATH.match(path)
    if m:
        return "read" if m.group(2) else "search"
    if not path.startswith("/fhir"):
        return "web"
    return "other"


FLUSH_SECONDS = 0.5  # how late another worker's requests may show in /metrics
LATENCY_BOUNDS = LATENCY._upper_bounds  # ends with +Inf: every duration has a bucket


class PendingCounts:
    """This process's request counts not yet written to the shared metric values.

    Per (operation, status): [requests, seconds summed, requests per latency bucket]; and
    the response-cache [misses, hits]. Fork-safe: a new worker starts with nothing pending
    and its own flusher thread.
    """

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], list[Any]] = {}
        self.cache = [0, 0]
        self.flusher: threading.Thread | None = None

    def request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (operation_label(path), status)
        bucket = bisect.bisect_left(LATENCY_BOUNDS, seconds)  # the first bound >= seconds
        with self.lock:
            counts = self.requests.get(key)
            if counts is None:
                counts = self.requests[key] = [0, 0.0, [0] * len(LATENCY_BOUNDS)]
            counts[0] += 1
            counts[1] += seconds
            counts[2][bucket] += 1
        if self.flusher is None:
            self._start_flusher()

    def cache_lookup(self, hit: bool) -> None:
        """Count one response-cache lookup."""
        with self.lock:
            self.cache[hit] += 1
        if self.flusher is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self.lock:
            if self.flusher is None:
                self.flusher = every(FLUSH_SECONDS, self.flush, "metrics-flusher")

    def discard(self) -> None:
        """Forget what is pending (a worker's warm-up requests, which are not counted)."""
        with self.lock:
            self.requests = {}
            self.cache = [0, 0]

    def flush(self) -> None:
        """Write everything pending to the metric values (and the multiprocess files)."""
        with self.lock:
            requests, self.requests = self.requests, {}
            misses, hits = self.cache
            self.cache = [0, 0]
        for (op, status), (count, total, buckets) in requests.items():
            series = _series.get((op, status))
            if series is None:
                series = _series.setdefault((op, status), (REQUESTS.labels(op, str(status)),
                                                           LATENCY.labels(op)))
            series[0].inc(count)
            # Histogram.observe, for many observations at once (its values: _sum, _buckets)
            series[1]._sum.inc(total)
            for i, n in enumerate(buckets):
                if n:
                    series[1]._buckets[i].inc(n)
        for result, n in ((0, misses), (1, hits)):
            if n:
                _CACHE_SERIES[result].inc(n)


# The labelled series, found once each (.labels() takes a lock and builds a key every call);
# keys are bounded: operation labels times HTTP statuses.
_series: dict[tuple[str, int], tuple[Any, Any]] = {}
_CACHE_SERIES = (CACHE.labels("miss"), CACHE.labels("hit"))
PENDING = PendingCounts()


def record_request(path: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency (written within FLUSH_SECONDS)."""
    PENDING.request(path, status, seconds)


def request_metrics(x: Exchange) -> None:
    """Stage: count the answered request and its latency."""
    record_request(x.path, x.status, time.perf_counter() - x.started)


def count_expansion(x: Exchange, body: dict[str, Any]) -> dict[str, Any]:
    """Stage (resource): the size of a successful $expand answer."""
    if x.status == 200 and x.view_args.get("op") == "expand" and x.endpoint in OPERATION_ENDPOINTS:
        record_expansion(body)
    return body


def record_cache(hit: bool) -> None:
    """Count one response-cache lookup (written within FLUSH_SECONDS)."""
    PENDING.cache_lookup(hit)


def record_expansion(body: dict[str, Any]) -> None:
    """Observe the size of an $expand answer: its total, else the codes it lists."""
    expansion = body.get("expansion") or {}
    total = expansion.get("total")
    EXPANSION_SIZE.observe(total if isinstance(total, int) else len(expansion.get("contains", [])))


def record_content(version: str, seconds: float, counts: dict[str, int],
                   previous: str | None = None) -> None:
    """A successful content load: its version, how long it took and what it holds."""
    CONTENT_LOADS.labels("ok").inc()
    if previous is not None and previous != version:
        CONTENT_INFO.labels(previous).set(0)
    CONTENT_INFO.labels(version).set(1)
    CONTENT_LOAD_SECONDS.set(seconds)
    CONTENT_LOADED_AT.set(time.time())
    for rtype, n in counts.items():
        CONTENT_RESOURCES.labels(rtype).set(n)


def record_failed_load() -> None:
    """A reload that failed (the old content stays)."""
    CONTENT_LOADS.labels("failed").inc()


def record_worker_start(restart: bool) -> None:
    """A worker process began serving; `restart` when it replaces another one."""
    WORKER_STARTS.inc()
    if restart:
        WORKER_RESTARTS.inc()


def record_store_write(resource_type: str, action: str) -> None:
    """Count one write to the resource store (action: create, update, delete)."""
    STORE_WRITES.labels(resource_type, action).inc()


def exposition() -> tuple[bytes, str]:
    """The metrics of every process (multiprocess mode) or of this one, and their media type."""
    PENDING.flush()  # this process's own counts are exact; the others' within FLUSH_SECONDS
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_separately(host: str, port: int) -> None:
    """Answer /metrics on its own port from a thread of this (the main) process."""
    from prometheus_client import start_http_server

    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
