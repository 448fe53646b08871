"""The raw floor: a trivial WSGI app that answers every request with one fixed, small FHIR
Parameters, served by granian with the settings `terminology serve` gives it (workers,
threads + body_threads server threads, the header timeout). What the server alone can do on
this machine; full_size.py reports every figure as a ratio of it.

    python benchmarks/raw_floor.py --port 8081     # or: granian --interface wsgi raw_floor:app
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

BODY = (b'{"resourceType":"Parameters","parameter":[{"name":"result","valueBoolean":true},'
        b'{"name":"display","valueString":"A fixed answer"}]}')
HEADERS = [("Content-Type", "application/fhir+json; charset=utf-8"),
           ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Every request: 200 and BODY."""
    start_response("200 OK", HEADERS)
    return [BODY]


def main(argv: list[str] | None = None) -> int:
    """Serve `app` with granian as `terminology serve` would (default settings)."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    from terminology.settings import Settings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    s = Settings.from_env()
    Server("raw_floor:app", address="127.0.0.1", port=args.port, interface=Interfaces.WSGI,
           workers=s.workers, blocking_threads=s.threads + s.body_threads,
           http1_settings=HTTP1Settings(header_read_timeout=int(s.header_timeout * 1000)),
           log_access=False).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
