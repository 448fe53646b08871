"""Soak: a full-size (synthetic) CPT release under steady load for minutes, errors counted and
worker memory sampled, to show that nothing leaks and nothing fails.

    python -m terminology.cpt.synthetic /tmp/synth16
    python -m terminology.cli import-cpt /tmp/synth16 --version 2026 --out /tmp/cpt16.db
    python benchmarks/soak.py --cpt /tmp/cpt16.db [--duration 120] [--connections 16] [--json FILE]

Starts `terminology serve --cpt FILE` on 127.0.0.1 (a free port) with the response cache off
(TX_RESPONSE_CACHE_BYTES=0, so every request is computed), then runs wrk for --duration
seconds: each request is a random code of the release, in turn $lookup, CodeSystem
$validate-code and ValueSet $validate-code (cpt-all). Every --sample seconds it records each
worker's RSS and PSS. Prints requests/s, latency, errors (non-2xx answers and socket errors)
and the memory series; memory growth is counted from the first sample after --warmup s.
wrk is the Debian package `wrk`. Bounded in time; talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from load import (
    free_port,
    machine,
    memory_mib,
    process_tree,
    serve_command,
    start_server,
    stop_server,
)

CPT = "http://www.ama-assn.org/go/cpt"
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
PATHS = (f"/fhir/CodeSystem/$lookup?system={CPT}&code=%s",
         f"/fhir/CodeSystem/$validate-code?url={CPT}&code=%s",
         f"/fhir/ValueSet/$validate-code?url={CPT_ALL}&system={CPT}&code=%s")
LUA = """
local codes = {%(codes)s}
local paths = {%(paths)s}
local n = 0
function setup(thread) thread:set("seed", math.random(1, 1000000)) end
function init(args) math.randomseed(os.time() + seed) end
function request()
  n = n + 1
  local path = string.format(paths[(n %% #paths) + 1], codes[math.random(#codes)])
  return wrk.format("GET", path)
end
"""


def release_codes(db: Path) -> list[str]:
    """Every code of the CPT database (modifiers included)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [row[0] for row in conn.execute("SELECT code FROM Concepts")]


def check_answers(base: str, codes: list[str]) -> None:
    """Each kind of request answers 200 once before the load starts."""
    for path in PATHS:
        with urllib.request.urlopen(base + path % codes[0], timeout=10) as resp:
            if resp.status != 200:
                raise SystemExit(f"{path % codes[0]}: {resp.status}")


def sample_memory(root: int, every: float, stop: threading.Event, out: list[dict[str, Any]],
                  started: float) -> None:
    """Append {t, workers: {pid: {rss, pss}}} every `every` seconds until `stop`."""
    while not stop.wait(every):
        workers = [p for p in process_tree(root) if p != root]
        out.append({"t": round(time.monotonic() - started), "workers": {p: memory_mib(p) for p in workers}})


def run_wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    """wrk's figures: requests, requests/s, p50/p99 ms, non-2xx and socket errors."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return 0.0
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": int(total.group(1)) if total else 0,
            "requests_per_s": float(rate.group(1)) if rate else 0.0,
            "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
            "wrk_output": out}


def growth(samples: list[dict[str, Any]], warmup: float) -> dict[str, float]:
    """Per worker: RSS at the first sample after warm-up, at the end, and the change (MiB)."""
    after = [s for s in samples if s["t"] >= warmup]
    if len(after) < 2:
        return {}
    first, last = after[0]["workers"], after[-1]["workers"]
    return {str(pid): round(last[pid].get("rss", 0) - first[pid].get("rss", 0), 1)
            for pid in first if pid in last}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpt", type=Path, required=True, help="the CPT SQLite database to serve")
    p.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--sample", type=float, default=10, help="seconds between memory samples (default 10)")
    p.add_argument("--warmup", type=float, default=20, help="seconds before memory growth is counted")
    p.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 1800:
        p.error("--duration must be between 1 and 1800 s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    codes = release_codes(args.cpt)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TX_RESPONSE_CACHE_BYTES": "0", "TX_LOG_LEVEL": "warning",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = start_server(serve_command("default", port, [args.cpt]), env, base)
    samples: list[dict[str, Any]] = []
    try:
        check_answers(base, codes)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA % {"codes": ",".join(f'"{c}"' for c in codes),
                                "paths": ",".join(f'"{p}"' for p in PATHS)})
        stop = threading.Event()
        started = time.monotonic()
        sampler = threading.Thread(target=sample_memory, args=(proc.pid, args.sample, stop, samples, started))
        sampler.start()
        try:
            figures = run_wrk(base + "/", Path(script.name), args.duration, args.connections, args.threads)
        finally:
            stop.set()
            sampler.join()
            os.unlink(script.name)
        alive = proc.poll() is None
    finally:
        stop_server(proc)
    result = {"machine": machine(), "codes": len(codes), "duration_s": args.duration,
              "connections": args.connections, "server_alive_at_end": alive,
              **{k: v for k, v in figures.items() if k != "wrk_output"},
              "rss_growth_after_warmup_mib": growth(samples, args.warmup), "memory": samples}
    print(figures["wrk_output"])
    print(f"codes {len(codes)}; {figures['requests']} requests, {figures['requests_per_s']:.0f}/s, "
          f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms; "
          f"errors: {figures['non_2xx']} non-2xx, {figures['socket_errors']} socket")
    for s in samples:
        print(f"t={s['t']:>4}s " + "  ".join(f"worker {pid}: rss {m.get('rss', 0):.1f} pss {m.get('pss', 0):.1f} MiB"
                                          for pid, m in s["workers"].items()))
    print(f"RSS growth after {args.warmup:g} s warm-up (MiB): {result['rss_growth_after_warmup_mib']}")
    print(f"machine: {result['machine']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if figures["non_2xx"] == figures["socket_errors"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
