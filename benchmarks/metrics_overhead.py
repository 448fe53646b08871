"""What the metrics cost per request: the calls the app makes, in multiprocess mode.

    python benchmarks/metrics_overhead.py

Times record_cache + record_request (what a response-cache hit adds) over 200,000 calls, in
the multiprocess mode the production launcher uses (values in mmap'd files), and prints the
median of 5 runs in microseconds per request.
"""

from __future__ import annotations

import statistics
import time

from terminology.http.server.multiproc import prepare_metrics_dir

prepare_metrics_dir()  # before prometheus_client is imported, as the launcher does

from terminology.http import metrics  # noqa: E402

N = 200_000


def run() -> float:
    started = time.perf_counter()
    for _ in range(N):
        metrics.record_cache(True)
        metrics.record_request("/fhir/CodeSystem/$lookup", 200, 0.0004)
    return (time.perf_counter() - started) / N * 1e6


if __name__ == "__main__":
    runs = [run() for _ in range(5)]
    print(f"metrics per request (cache hit): median {statistics.median(runs):.2f} us "
          f"(runs: {', '.join(f'{r:.2f}' for r in runs)})")
