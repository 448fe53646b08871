"""Memory and start time of many CPT releases side by side.

    python -m terminology.cpt.synthetic_history /tmp/cpt-history --releases 2017..2026 --databases
    python benchmarks/releases_memory.py --history /tmp/cpt-history [--json FILE]

Starts `terminology serve` (default server and workers) three times, one after the other:
without licensed CPT, with the newest release alone, and with every release of the folder.
For each it records the time from start to `/readyz` and, after a `$lookup` of one code in
each release and a `$validate-code` (so that what a request builds lazily is counted too),
each worker's resident memory (RSS) and PSS. The figure the issue asks for is the worker
RSS above the server without licensed CPT: ten releases against one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import (  # noqa: E402  (the sibling script's server helpers)
    free_port,
    memory_mib,
    process_tree,
    serve_command,
    start_server,
    stop_server,
)

CPT = "http://www.ama-assn.org/go/cpt"


def warm(base: str, versions: list[str]) -> None:
    """One $lookup per release and one $validate-code, each answered 200 or 404."""
    for v in versions:
        url = f"{base}/fhir/CodeSystem/$lookup?system={CPT}&code=72126&version={v}"
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
    url = f"{base}/fhir/CodeSystem/$validate-code?url={CPT}&code=72126"
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()


def one_server(name: str, databases: list[Path], versions: list[str]) -> dict[str, Any]:
    """Start, time to ready, warm, measure the workers, stop."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, TX_RESPONSE_CACHE_BYTES="0")
    started = time.monotonic()
    proc = start_server(serve_command("default", port, databases), env, base)
    ready = round(time.monotonic() - started, 2)
    try:
        if versions:
            warm(base, versions)
        time.sleep(0.5)
        workers = [memory_mib(pid) for pid in process_tree(proc.pid) if pid != proc.pid]
    finally:
        stop_server(proc)
    workers = [w for w in workers if w.get("rss", 0) > 40]  # the server's own workers only
    return {"name": name, "releases": len(databases), "start_to_ready_s": ready,
            "worker_rss_mib": statistics.median(w["rss"] for w in workers),
            "worker_pss_mib": statistics.median(w.get("pss", 0) for w in workers),
            "workers": len(workers)}


def main(argv: list[str] | None = None) -> int:
    """Run the three servers and print (and optionally save) the figures."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", type=Path, required=True,
                   help="a folder of cpt-<version>.db files (synthetic --releases --databases)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    dbs = sorted(args.history.glob("cpt-*.db"))
    if len(dbs) < 2:
        raise SystemExit(f"{args.history}: fewer than two cpt-<version>.db files")
    versions = [d.stem.removeprefix("cpt-") for d in dbs]
    runs = [one_server("no licensed CPT", [], []),
            one_server("newest release", dbs[-1:], versions[-1:]),
            one_server(f"{len(dbs)} releases", dbs, versions)]
    floor = runs[0]["worker_rss_mib"]
    for r in runs:
        r["above_floor_mib"] = round(r["worker_rss_mib"] - floor, 1)
        print(f"{r['name']:20s} ready {r['start_to_ready_s']:5.2f} s  worker RSS "
              f"{r['worker_rss_mib']:6.1f} MiB (PSS {r['worker_pss_mib']:6.1f}), "
              f"{r['above_floor_mib']:6.1f} MiB above no CPT")
    one, many = runs[1]["above_floor_mib"], runs[2]["above_floor_mib"]
    ratio = round(many / one, 2) if one > 0 else None
    print(f"{len(dbs)} releases cost {ratio}x one release (worker RSS above no CPT)")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "ratio": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
