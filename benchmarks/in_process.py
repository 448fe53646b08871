"""CPU time per request of the production WSGI stack, in one process (no sockets, no wrk).

    python benchmarks/in_process.py --cpt DB [--op lookup|cs-validate] [--profile]

Builds the app as `terminology serve` does (response cache off, content frozen with
`gc.freeze()`), wraps it in the same layers the granian workers run (the body deadline and
compute gate, the X-Forwarded-For switch) and calls it with granian-like environs (the
process environment included, as granian puts it there) for random codes of the release.
Prints the thread CPU time per request, best of five runs of 3,000; `--profile` adds
cProfile's top functions. Steadier than wrk on a shared machine: it measures what our code
costs per request, not what the server and the client around it cost.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

CPT = "http://www.ama-assn.org/go/cpt"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpt", type=Path, required=True)
    p.add_argument("--op", choices=("lookup", "cs-validate"), default="lookup")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    os.environ["TX_RESPONSE_CACHE_BYTES"] = "0"
    os.environ["TX_CPT_DATABASES"] = str(args.cpt)
    from terminology import logs
    from terminology.content import prepare_request_models
    from terminology.cpt.release import read_cpt_db
    from terminology.http.server.multiproc import prepare_metrics_dir
    from terminology.settings import Settings

    prepare_metrics_dir()
    from terminology.http.app import create_app
    from terminology.http.server.workers import forwarded_only, guarded

    settings = Settings.from_env()
    logs.configure("info")
    app = create_app(settings)
    prepare_request_models()
    stack = guarded(forwarded_only(app, app), settings)
    gc.collect()
    gc.freeze()
    codes = [c.code for c in read_cpt_db(args.cpt).concepts.values()]
    rng = random.Random(1)
    system = urllib.parse.quote(CPT, safe="")
    path = "/fhir/CodeSystem/$lookup" if args.op == "lookup" else "/fhir/CodeSystem/$validate-code"
    name = "system" if args.op == "lookup" else "url"
    base = dict(os.environ)
    environs = []
    for _ in range(3000):
        env: dict[str, Any] = dict(base)
        env.update({"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "",
                    "QUERY_STRING": f"{name}={system}&code={urllib.parse.quote(rng.choice(codes))}",
                    "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
                    "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8080",
                    "HTTP_USER_AGENT": "wrk", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
                    "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0)})
        environs.append(env)
    statuses: set[str] = set()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.add(status)

    def run() -> float:
        started = time.thread_time()
        for env in environs:
            request = dict(env)
            request["wsgi.input"] = io.BytesIO(b"")
            b"".join(stack(request, start_response))
        return (time.thread_time() - started) / len(environs) * 1e6

    run()
    print(f"{args.op}: {min(run() for _ in range(5)):.1f} us CPU per request (best of 5 x 3,000); "
          f"statuses {sorted(statuses)}")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        run()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
