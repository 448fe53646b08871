"""What the WSGI layers in front of Flask share (response cache, conditional GET, gzip, the
operation dispatch, the store's freshness check): the WSGI types, and closing an answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Headers = list[tuple[str, str]]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# The gzip layer (server/compression.py) marks the strong ETag of a gzipped body with it;
# conditional GET (fhir/conditional.py) strips it when comparing.
GZIP_SUFFIX = "-gzip"


def close(result: Iterable[bytes]) -> None:
    """Close an inner app's answer, as PEP 3333 asks of whoever consumes it."""
    closer = getattr(result, "close", None)
    if closer is not None:
        closer()


def drain(result: Iterable[bytes]) -> bytes:
    """An inner app's whole answer body, the answer closed after."""
    try:
        return b"".join(result)
    finally:
        close(result)
