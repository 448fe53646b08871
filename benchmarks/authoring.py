"""Authoring benchmark: what a write costs, and whether enabling writes slows reads.

    python benchmarks/authoring.py [--writes 200] [--duration 5] [--rounds 5] [--json FILE]

Starts two servers as the README runs them (granian, 2 workers, bundled content): one
read-only (the default), one with writes enabled (a static token, the SQLite store in a temp
data directory). Then:

1. read throughput (below, 2), measured first, while both servers hold the same content;
   then write latency: `--writes` sequential PUTs of an order-set ValueSet with If-Match (each
   validated, stored, applied and announced), client-side p50/p99, plus creates (POST);
2. read throughput: wrk against the same cached and uncached reads on both servers,
   interleaved in rounds (read-only, writes-enabled, ...); the ratio is the median of the
   per-round ratios writes-enabled / read-only;
3. the same reads on the writes-enabled server while a writer PUTs 2 times per second
   (every write empties each worker's response cache);
4. in process, without HTTP: a cached $lookup and the search, answered by a read-only app
   and by a writes-on app (the per-request freshness check in front: what enabling writes
   adds to a read), interleaved, median of the rounds. wrk on a shared 2-core machine moves by more than 5 %
   between two runs of the same server; this isolates the difference.
With `--before TREE` (a checkout of an earlier commit, e.g. `git archive BASE | tar -x -C
TREE`) it compares instead two servers with writes on: TREE's code ("before") and this tree's
("after"), each with its own store; reads interleaved in rounds as above, and write latency
measured on each in alternating halves.
wrk is the Debian package `wrk`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import free_port, machine, run_wrk, start_server, stop_server  # noqa: E402

TOKEN = "benchmark-token-8c1f2e"
ORDER_SETS = "https://terminology.cpt-imaging.org/fhir/ValueSet"
CPT = "http://www.ama-assn.org/go/cpt"
READS = {
    "$expand spine-ct (cached)": f"/fhir/ValueSet/$expand?url={ORDER_SETS}/spine-ct",
    "$lookup 72126 (cached)": f"/fhir/CodeSystem/$lookup?system={CPT}&code=72126",
    "read ValueSet (computed)": "/fhir/ValueSet?url={ORDER_SETS}/spine-ct".replace("{ORDER_SETS}", ORDER_SETS),
}
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}


def order_set(n: int, rid: str | None = None) -> dict[str, Any]:
    """An order set of CPT imaging codes ('MRI knee, right or left'), revision n."""
    vs: dict[str, Any] = {
        "resourceType": "ValueSet", "url": "http://example.test/fhir/ValueSet/bench-knee",
        "version": "1", "status": "draft", "title": f"MRI knee, revision {n}",
        "compose": {"include": [{"system": CPT, "concept": [{"code": "73721"}, {"code": "73722"},
                                                              {"code": "73723"}]}]}}
    if rid:
        vs["id"] = rid
    return vs


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))], 2)


def write_latency(base: str, writes: int) -> dict[str, Any]:
    """Client-side latency of sequential PUTs with If-Match, and of POST creates."""
    s = requests.Session()
    url = f"http://example.test/fhir/ValueSet/bench-knee-{time.time_ns()}"  # one per call
    created = s.post(f"{base}/fhir/ValueSet", json={**order_set(0), "url": url}, headers=HEADERS, timeout=30)
    created.raise_for_status()
    rid, etag = created.json()["id"], created.headers["ETag"]
    updates: list[float] = []
    for n in range(1, writes + 1):
        t = time.perf_counter()
        r = s.put(f"{base}/fhir/ValueSet/{rid}", json={**order_set(n, rid), "url": url},
                  headers={**HEADERS, "If-Match": etag}, timeout=30)
        updates.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        etag = r.headers["ETag"]
    creates: list[float] = []
    for n in range(max(20, writes // 5)):
        vs = {**order_set(n), "url": f"http://example.test/fhir/ValueSet/bench-{n}-{time.time_ns()}"}
        t = time.perf_counter()
        r = s.post(f"{base}/fhir/ValueSet", json=vs, headers={**HEADERS, "Prefer": "return=minimal"}, timeout=30)
        creates.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 201, r.text
    return {"update_p50_ms": percentile(updates, 0.5), "update_p99_ms": percentile(updates, 0.99),
            "create_p50_ms": percentile(creates, 0.5), "create_p99_ms": percentile(creates, 0.99),
            "updates": len(updates), "creates": len(creates)}


def read_rounds(bases: dict[str, str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """wrk over every read on every server, interleaved in rounds; medians and ratios."""
    for base in bases.values():
        for path in READS.values():
            run_wrk(base + path, 1, args.connections, 2)
    runs: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for name, path in READS.items():
            for role, base in bases.items():
                rps = run_wrk(base + path, args.duration, args.connections, 2)["rps"]
                runs.setdefault((name, role), []).append(rps)
                print(f"  round {r + 1}/{args.rounds} {name:28s} {role:16s} {rps:9.0f} req/s", flush=True)
    out: dict[str, dict[str, Any]] = {}
    roles = list(bases)
    for name in READS:
        entry: dict[str, Any] = {role: round(statistics.median(runs[(name, role)]), 1) for role in roles}
        for role in roles[1:]:
            entry[f"{role} / {roles[0]}"] = round(statistics.median(
                a / b for a, b in zip(runs[(name, role)], runs[(name, roles[0])], strict=True)), 3)
        out[name] = entry
    return out


class Writer(threading.Thread):
    """PUTs the order set `per_second` times a second until stopped."""

    def __init__(self, base: str, per_second: float) -> None:
        super().__init__(daemon=True)
        self.base, self.pause, self.stop = base, 1 / per_second, threading.Event()
        self.writes = 0

    def run(self) -> None:
        s = requests.Session()
        r = s.post(f"{self.base}/fhir/ValueSet", headers=HEADERS, timeout=30,
                   json={**order_set(0), "url": f"http://example.test/fhir/ValueSet/bench-live-{time.time_ns()}"})
        body = r.json()
        while not self.stop.wait(self.pause):
            body = s.put(f"{self.base}/fhir/ValueSet/{body['id']}", json={**body, "title": str(self.writes)},
                         headers=HEADERS, timeout=30).json()
            self.writes += 1


def in_process(rounds: int, n: int = 2000) -> dict[str, float]:
    """Microseconds per request, in process: a read-only app against a writes-on app (the
    freshness check in front, the write routes registered), for a cached and a computed read."""
    import logging

    from werkzeug.test import EnvironBuilder

    from terminology.content import load_content
    from terminology.http.app import create_app
    from terminology.settings import Settings

    read_only = create_app(Settings(), load_content(Settings()))
    settings = Settings(write_tokens=TOKEN, data_dir=Path(tempfile.mkdtemp(prefix="tx-bench-")))
    writes_on = create_app(settings, load_content(Settings()))
    logging.disable(logging.INFO)

    def per_request(app: Any, environ: dict[str, Any]) -> float:
        started = time.perf_counter()
        for _ in range(n):
            b"".join(app.wsgi_app(dict(environ), lambda *a: None))
        return (time.perf_counter() - started) / n * 1e6

    out: dict[str, float] = {}
    for label, name in (("cached_lookup", "$lookup 72126 (cached)"), ("search", "read ValueSet (computed)")):
        environ = EnvironBuilder(path=READS[name]).get_environ()
        per_request(read_only, environ), per_request(writes_on, environ)
        ro, rw = [], []
        for _ in range(rounds):
            ro.append(per_request(read_only, environ))
            rw.append(per_request(writes_on, environ))
        out[f"{label}_read_only_us"] = round(statistics.median(ro), 2)
        out[f"{label}_writes_on_us"] = round(statistics.median(rw), 2)
        out[f"{label}_ratio"] = round(statistics.median(w / r for w, r in zip(rw, ro, strict=True)), 3)
    logging.disable(logging.NOTSET)
    return out


def before_after(args: argparse.Namespace) -> int:
    """Writes-on servers of an earlier tree and of this one: reads in rounds, writes alternated."""
    here = str(Path(__file__).resolve().parent.parent)
    trees = {"before": str(args.before.resolve()), "after": here}
    ports = {role: free_port() for role in trees}
    bases = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TX_")}
    procs = []
    try:
        for role, tree in trees.items():
            env = {**base_env, "PYTHONPATH": tree, "TX_WRITE_TOKENS": TOKEN,
                   "TX_DATA_DIR": tempfile.mkdtemp(prefix=f"tx-bench-{role}-")}
            cmd = [sys.executable, "-m", "terminology.cli", "serve", "--port", str(ports[role])]
            procs.append(start_server(cmd, env, bases[role]))
        reads = read_rounds(bases, args)
        halves: dict[str, list[dict[str, Any]]] = {role: [] for role in trees}
        for _ in range(2):
            for role in trees:
                halves[role].append(write_latency(bases[role], max(10, args.writes // 2)))
                print(f"writes {role}: {halves[role][-1]}", flush=True)
        writes = {role: {k: round(statistics.median(h[k] for h in hs), 2)
                         for k in ("update_p50_ms", "update_p99_ms", "create_p50_ms", "create_p99_ms")}
                  for role, hs in halves.items()}
    finally:
        for proc in procs:
            stop_server(proc)
    result = {"machine": machine(), "before": trees["before"], "writes": writes, "reads": reads}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--writes", type=int, default=200)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--before", type=Path, default=None,
                   help="a checkout of an earlier commit: compare its server with this tree's")
    args = p.parse_args(argv)
    if args.before is not None:
        return before_after(args)
    data = Path(tempfile.mkdtemp(prefix="tx-bench-"))
    ports = {"read-only": free_port(), "writes enabled": free_port()}
    bases = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    env_ro = {k: v for k, v in os.environ.items() if not k.startswith("TX_")}
    env_rw = {**env_ro, "TX_WRITE_TOKENS": TOKEN, "TX_DATA_DIR": str(data)}
    procs = []
    try:
        for role, env in (("read-only", env_ro), ("writes enabled", env_rw)):
            cmd = [sys.executable, "-m", "terminology.cli", "serve", "--port", str(ports[role])]
            procs.append(start_server(cmd, env, bases[role]))
        # reads first: the writes add stored value sets, and a search scans them all
        reads = read_rounds(bases, args)
        writes = write_latency(bases["writes enabled"], args.writes)
        print(f"writes: {writes}", flush=True)
        writer = Writer(bases["writes enabled"], 2.0)
        writer.start()
        during = read_rounds({"writes enabled": bases["writes enabled"]}, argparse.Namespace(
            rounds=max(1, args.rounds // 2), duration=args.duration, connections=args.connections))
        writer.stop.set()
        writer.join()
    finally:
        for proc in procs:
            stop_server(proc)
    micro = in_process(max(9, args.rounds * 3))
    print(f"in process: {micro}", flush=True)
    result = {"machine": machine(), "writes": writes, "reads": reads, "in_process_cached_lookup": micro,
              "reads_while_writing_2_per_s": {k: v["writes enabled"] for k, v in during.items()},
              "writes_during_reads": writer.writes}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
