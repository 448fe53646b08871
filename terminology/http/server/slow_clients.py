"""Slow and stalled clients, handled by the production server itself (no proxy needed).

granian hands a WSGI app the request once its headers are in, and the body as a blocking
stream with no read timeout: a client that declares a body and stops sending would hold a
server thread for as long as it keeps the connection open, and a few dozen such clients
would hold them all. Two parts bound that:

- **Headers**: granian closes a connection whose header block is not complete within
  `header_timeout` (server.py passes it on as its HTTP/1 header read timeout); such a
  request never reaches Python.
- **Bodies** (`BodyDeadline`, the outermost WSGI layer): a request with a body has it read
  whole by one of `body_threads` reader threads of the worker while the server thread
  waits at most `body_timeout`. A body complete in time is handed to the app as an
  in-memory stream; one that is not gets a 408 OperationOutcome (with `Connection: close`)
  and the app never runs. Past the size limit nothing is read: the app answers its 413
  from Content-Length.

The server runs `threads + body_threads` threads per worker so that waiting bodies never
take the threads that compute answers, and a gate (`threads` at once) keeps the number of
requests computing in a worker where it was. A reader stays blocked until its client sends
or closes (granian cannot interrupt a read): after more than `body_threads` clients per
worker stall mid-body and keep their connections open, further uploads to that worker wait
for a reader and get the 408 (GETs are not affected). README.md says so.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import orjson

from terminology.errors import FhirError
from terminology.http.fhir.negotiation import EVERY_ANSWER_HEADERS, FHIR_JSON
from terminology.http.wsgi import StartResponse, WsgiApp

CHUNK = 64 * 1024


def declared_length(environ: dict[str, Any]) -> int | None:
    """The body's Content-Length; None when absent or not a number (chunked or no body)."""
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def has_body(environ: dict[str, Any]) -> bool:
    """Whether the request declares a body (a positive Content-Length, or chunked)."""
    length = declared_length(environ)
    if length is not None:
        return length > 0
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def read_body(stream: Any, length: int | None, limit: int) -> bytes:
    """`length` bytes of `stream` (as many as arrive); a chunked body up to `limit` + 1
    bytes (one more than the app accepts, so that it answers the 413)."""
    if length is not None:
        return stream.read(length)
    chunks: list[bytes] = []
    size = 0
    while size <= limit and (chunk := stream.read(min(CHUNK, limit + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def timeout_outcome(seconds: float) -> bytes:
    """The 408 OperationOutcome of a body that did not arrive in time."""
    error = FhirError(f"The request body did not arrive within {seconds:g} s (setting "
                      "body_timeout); send the whole body at once", code="timeout", status=408)
    return orjson.dumps(error.outcome())


class Readers:
    """Up to `size` daemon threads that run submitted reads (a thread pool that, unlike
    concurrent.futures', never holds up the process's exit on a read that never ends)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: queue.SimpleQueue[tuple[Future[bytes], Callable[..., bytes], tuple[Any, ...]]] = (
            queue.SimpleQueue())
        self.lock = threading.Lock()
        self.started = 0
        self.idle = 0

    def submit(self, read: Callable[..., bytes], *args: Any) -> Future[bytes]:
        """`read(*args)` on a reader thread; its future."""
        future: Future[bytes] = Future()
        self.jobs.put((future, read, args))
        with self.lock:
            start = self.idle == 0 and self.started < self.size
            if start:
                self.started += 1
        if start:
            threading.Thread(target=self._run, name=f"body-reader-{self.started}", daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            with self.lock:
                self.idle += 1
            future, read, args = self.jobs.get()
            with self.lock:
                self.idle -= 1
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            try:
                future.set_result(read(*args))
            except BaseException as e:  # noqa: BLE001  (handed to the waiting request)
                future.set_exception(e)


class HeldUntilRead:
    """The 408 answer, sent at once, whose end waits for the reader to let the body go.

    granian hangs (holding the GIL) when its thread finishes a request while another
    thread is still blocked reading that request's body; so the server thread sends the
    whole 408 (the client has all of it: Content-Length) and then waits in this iterator
    until the read ends (the client sends the rest or closes the connection).
    """

    def __init__(self, answer: Iterable[bytes], reading: Future[bytes]) -> None:
        self.chunks = iter(answer)
        self.reading = reading

    def __iter__(self) -> HeldUntilRead:
        return self

    def __next__(self) -> bytes:
        chunk = next(self.chunks, None)
        if chunk is not None:
            return chunk
        # a read that failed has let the body go too
        with contextlib.suppress(Exception):
            self.reading.result()
        raise StopIteration


class Gate:
    """At most `n` threads inside at once: a pool of tokens in a C queue (a get and a put,
    ~0.2 us; threading's semaphore, in Python over a Condition, cost ~3 us a request)."""

    def __init__(self, n: int) -> None:
        self.tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(n):
            self.tokens.put(None)

    def __enter__(self) -> None:
        self.tokens.get()

    def __exit__(self, *exc: object) -> None:
        self.tokens.put(None)


class BodyDeadline:
    """WSGI middleware: the body read whole within `timeout` seconds, else a 408."""

    def __init__(self, app: WsgiApp, timeout: float, readers: int, computing: int,
                 max_body_bytes: int, on_timeout: Callable[[dict[str, Any], float], None] | None = None) -> None:
        self.app = app
        self.timeout = timeout
        self.readers = readers
        self.computing = computing
        self.limit = max_body_bytes
        self.on_timeout = on_timeout  # e.g. the access-log line of the 408
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Fresh readers and gate in each worker (threads do not survive a fork)."""
        self.pool = Readers(self.readers)
        self.gate = Gate(self.computing)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if has_body(environ):
            length = declared_length(environ)
            if length is None or length <= self.limit:  # larger: the app's 413, unread
                future = self.pool.submit(
                    read_body, environ["wsgi.input"], length, self.limit)
                try:
                    body = future.result(timeout=self.timeout)
                except FutureTimeout:
                    if future.cancel():  # still queued: never read
                        return self.too_slow(environ, start_response)
                    return HeldUntilRead(self.too_slow(environ, start_response), future)
                if length is not None and len(body) < length:  # the client went away
                    return self.too_slow(environ, start_response)
                environ["wsgi.input"] = io.BytesIO(body)
        with self.gate:
            return self.app(environ, start_response)

    def too_slow(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The 408 answer; the connection is closed after it."""
        body = timeout_outcome(self.timeout)
        start_response("408 Request Timeout", [
            ("Content-Type", FHIR_JSON), ("Content-Length", str(len(body))),
            ("Connection", "close"), *EVERY_ANSWER_HEADERS.items()])
        if self.on_timeout is not None:
            self.on_timeout(environ, self.timeout)
        return [body]
