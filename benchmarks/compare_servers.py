"""Compare WSGI servers serving the same create_app() on the same runs.

    python benchmarks/compare_servers.py [--duration 4] [--rounds 3] [--json FILE]

Starts one server of each kind (same content, same settings, two processes where the server
forks: 2 cores), all at once on free ports, then runs wrk against each in turn, interleaved
round by round, so that a noisy neighbour slows every server alike. Each is measured on the
floor (/healthz, through Flask), a cached $lookup (the response cache answers in front of
Flask: mostly server overhead) and an uncached $lookup (a POST: Flask and the operation).
Prints median requests/s and p50/p99 per server and request, and each server's memory.

`--serve KIND --port P` is the launcher it uses: serves create_app() with KIND.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from load import (
    CPT,
    free_port,
    machine,
    memory_mib,
    process_tree,
    report,
    run_wrk,
    start_server,
    stop_server,
)

KINDS = {
    "gunicorn-sync": "gunicorn, 2 sync workers",
    "gunicorn-gthread": "gunicorn, 2 gthread workers x 4 threads (the former default)",
    "waitress": "waitress, 1 process x 8 threads",
    "granian-1": "granian WSGI, 2 workers x 1 blocking thread",
    "granian-2": "granian WSGI, 2 workers x 2 blocking threads",
    "granian-4": "granian WSGI, 2 workers x 4 blocking threads (the default)",
}
LOOKUP = f"/fhir/CodeSystem/$lookup?system={CPT}&code=72126"
POST_BODY = json.dumps({"resourceType": "Parameters", "parameter": [
    {"name": "system", "valueUri": CPT}, {"name": "code", "valueCode": "72126"}]}, separators=(",", ":"))


def serve(kind: str, port: int) -> None:
    """Serve create_app() (default settings, bundled content) with `kind` on `port`."""
    import logging

    from terminology.content import load_content
    from terminology.http.app import create_app
    from terminology.http.server.workers import serve_production
    from terminology.settings import Settings

    settings = Settings.from_env()
    settings.port = port
    logging.basicConfig(level=settings.log_level.upper(), format="%(message)s")
    app = create_app(settings, load_content(settings))
    if kind.startswith("granian-"):
        settings.server, settings.threads = "granian", int(kind.split("-")[1])
        serve_production(app, settings)
    elif kind == "gunicorn-gthread":
        settings.server = "gunicorn"
        serve_production(app, settings)
    elif kind == "gunicorn-sync":
        serve_gunicorn_sync(app, settings)
    elif kind == "waitress":
        import waitress

        waitress.serve(app, host=settings.host, port=port, threads=8, _quiet=True)
    else:
        raise SystemExit(f"unknown server kind {kind}")


def serve_gunicorn_sync(app: Any, settings: Any) -> None:
    """gunicorn with sync workers (one request at a time per process), preloaded."""
    from gunicorn.app.base import BaseApplication

    class _Sync(BaseApplication):
        def load_config(self) -> None:
            for key, value in (("bind", f"{settings.host}:{settings.port}"), ("workers", settings.workers),
                               ("worker_class", "sync"), ("preload_app", True), ("loglevel", "warning")):
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return app

    _Sync().run()


def post_script(tmp: Path) -> Path:
    """A wrk Lua script that POSTs the $lookup Parameters (never cached)."""
    path = tmp / "post-lookup.lua"
    body = POST_BODY.replace('"', '\\"')
    path.write_text(f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                    'wrk.headers["Content-Type"] = "application/fhir+json"\n')
    return path


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Start every server, measure them round by round, stop them; the figures."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="compare-servers-"))
    script = post_script(tmp)
    requests = {"healthz (floor)": ("/healthz", []), "$lookup cached GET": (LOOKUP, []),
                "$lookup uncached POST": ("/fhir/CodeSystem/$lookup", ["-s", str(script)])}
    servers: dict[str, tuple[str, Any]] = {}
    try:
        for kind in args.kinds:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
            servers[kind] = (base, start_server(cmd, dict(os.environ), base))
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for base, _ in servers.values():  # warm-up
            for path, extra in requests.values():
                run_wrk(base + path, args.warmup, args.connections, 2, extra)
        for r in range(args.rounds):
            for kind, (base, _) in servers.items():
                for name, (path, extra) in requests.items():
                    result = run_wrk(base + path, args.duration, args.connections, 2, extra)
                    runs.setdefault((kind, name), []).append(result)
                    print(f"  round {r + 1}/{args.rounds} {kind:17s} {name:22s} {result['rps']:8.0f} req/s",
                          flush=True)
        memory = {kind: [memory_mib(pid) for pid in process_tree(proc.pid)] for kind, (_, proc) in servers.items()}
    finally:
        for _, proc in servers.values():
            stop_server(proc)
    return summarize(runs, memory, list(requests))


def summarize(runs: dict[tuple[str, str], list[dict[str, float]]], memory: dict[str, Any],
              names: list[str]) -> dict[str, Any]:
    """Medians per server and request, printed as a table."""
    table: dict[str, dict[str, Any]] = {}
    print(f"\n{'server':18s} " + " ".join(f"{n:>30s}" for n in names) + "   rss MiB (all processes)")
    for kind in dict.fromkeys(k for k, _ in runs):
        row = {}
        for name in names:
            rs = runs[(kind, name)]
            row[name] = {"requests_per_s": round(statistics.median(x["rps"] for x in rs)),
                         "p50_ms": round(statistics.median(x["p50"] for x in rs), 2),
                         "p99_ms": round(statistics.median(x["p99"] for x in rs), 2),
                         "errors": int(sum(x["errors"] for x in rs))}
        rss = round(sum(m.get("rss", 0) for m in memory[kind]), 1)
        table[kind] = {"figures": row, "rss_mib_total": rss, "processes": len(memory[kind])}
        cells = [f"{row[n]['requests_per_s']:7d}/s p50 {row[n]['p50_ms']:5.2f} p99 {row[n]['p99_ms']:6.2f}"
                 for n in names]
        print(f"{kind:18s} " + " ".join(f"{c:>30s}" for c in cells) + f"   {rss:.0f} ({len(memory[kind])})")
    return {"machine": machine(), "servers": {k: KINDS[k] for k in table}, "figures": table}


def main(argv: list[str] | None = None) -> int:
    """Entry point: compare, or (--serve) be one of the servers compared."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", choices=sorted(KINDS), help="(internal) serve with this server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    p.add_argument("--duration", type=float, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    started = time.monotonic()
    report(compare(args), started, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
