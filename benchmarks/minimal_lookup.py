"""The ceiling: the least a `$lookup` of ours must do, as a bare WSGI app under granian.

    cd benchmarks && python minimal_lookup.py --cpt DB --port 8092    # then wrk it as full_size.py does

Parses the query, finds the code in a dict, builds a Parameters of the size our `$lookup`
answers (name, version, display and 36 property parameters), serializes it with orjson,
hashes it for an ETag and sends it with a request id: no pipeline, no validation, no
licensed-text bound, no access log, no metrics. What it reaches, as a fraction of the raw
floor (raw_floor.py), bounds what any Python implementation of the operation can reach
under this server (benchmarks/README.md, issue 28).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl


def _concepts() -> dict[str, str]:
    """code -> display of the release named by MINIMAL_LOOKUP_CPT (set by main; granian's
    workers import this module by name, so the table is loaded at import)."""
    db = os.environ.get("MINIMAL_LOOKUP_CPT")
    if not db:
        return {}
    from terminology.cpt.release import read_cpt_db

    return {c.code: c.display for c in read_cpt_db(db).concepts.values()}


CONCEPTS = _concepts()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A $lookup without the server around it."""
    import orjson

    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    display = CONCEPTS.get(query.get("code", ""), "")
    params: list[dict[str, Any]] = [{"name": "name", "valueString": "CPT"},
                                    {"name": "version", "valueString": "2026"},
                                    {"name": "display", "valueString": display}]
    for i in range(36):
        params.append({"name": "property", "part": [{"name": "code", "valueCode": f"p{i}"},
                                                    {"name": "value", "valueString": display[:10]}]})
    body = orjson.dumps({"resourceType": "Parameters", "parameter": params})
    etag = hashlib.sha1(body, usedforsecurity=False).hexdigest()[:24]
    start_response("200 OK", [("Content-Type", "application/fhir+json"), ("Content-Length", str(len(body))),
                              ("ETag", f'"{etag}"'), ("X-Request-Id", os.urandom(16).hex())])
    return [body]


def main(argv: list[str] | None = None) -> int:
    from granian.constants import Interfaces
    from granian.server import Server

    from terminology.settings import Settings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpt", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    os.environ["MINIMAL_LOOKUP_CPT"] = args.cpt
    s = Settings.from_env()
    Server("minimal_lookup:app", address="127.0.0.1", port=args.port, interface=Interfaces.WSGI,
           workers=s.workers, blocking_threads=s.threads + s.body_threads, log_access=False).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
