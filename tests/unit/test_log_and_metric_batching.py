"""Access lines and request counts are batched off the request path (logs.py, metrics.py):
the lines are the ones the JSON formatter writes, nothing is lost, and writes never split a
line."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from prometheus_client import REGISTRY

from terminology import logs
from terminology.http import metrics
from terminology.logs import ATOMIC_WRITE, AccessLog, BufferedJsonHandler, JsonFormatter, pieces


def handler_on(logger_name: str) -> tuple[BufferedJsonHandler, io.StringIO, logging.Logger]:
    stream = io.StringIO()
    handler = BufferedJsonHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return handler, stream, logger


def test_an_access_line_is_the_object_the_formatter_writes() -> None:
    handler, stream, logger = handler_on("test.access.direct")
    fields = {"request_id": "r1", "method": "GET", "path": "/fhir/x", "status": 200, "duration_ms": 0.5}
    AccessLog("test.access.direct").write("GET /fhir/x 200", fields)
    handler.flush()
    direct = orjson.loads(stream.getvalue())
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "GET /fhir/x 200", (), None,
                               extra={"fields": fields})
    formatted = orjson.loads(JsonFormatter().format(record))
    assert direct.keys() == formatted.keys()
    assert {k: v for k, v in direct.items() if k != "time"} == {
        k: v for k, v in formatted.items() if k != "time"}
    assert direct["time"].endswith("Z") and len(direct["time"]) == len(formatted["time"])


def test_access_lines_wait_for_a_batch_and_other_records_are_written_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "FLUSH_SECONDS", 60.0)  # the flusher stays asleep in this test
    handler, stream, logger = handler_on("test.access.batch")
    access = AccessLog("test.access.batch")
    access.write("GET /a 200", {"status": 200})
    access.write("GET /b 200", {"status": 200})
    assert stream.getvalue() == ""  # waiting for the flusher
    logger.info("reloaded")  # written at once, the waiting access lines before it
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["GET /a 200", "GET /b 200", "reloaded"]


def test_a_capturing_handler_gets_access_records_through_logging() -> None:
    _, stream, logger = handler_on("test.access.captured")
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    logger.addHandler(Capture())
    AccessLog("test.access.captured").write("GET /c 404", {"status": 404})
    assert [r.getMessage() for r in captured] == ["GET /c 404"]
    assert orjson.loads(stream.getvalue())["status"] == 404  # written at once, as a record


def test_batches_are_written_in_whole_lines_of_at_most_one_atomic_write() -> None:
    lines = [f'{{"n":{i},"pad":"{"x" * (i % 300)}"}}' for i in range(400)] + ["y" * 5000, "é" * 10]
    out = pieces(lines)
    assert "".join(out) == "\n".join(lines) + "\n"
    for piece in out:
        assert piece.endswith("\n")
        assert len(piece.encode()) <= ATOMIC_WRITE or piece.count("\n") == 1  # a long line alone


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_request_counts_are_exact_once_flushed() -> None:
    path = "/fhir/CodeSystem/$subsumes"
    labels = {"operation": "CodeSystem/$subsumes", "status": "418"}
    before = sample("tx_requests_total", **labels)
    bucket_before = sample("tx_request_duration_seconds_bucket", operation="CodeSystem/$subsumes", le="0.005")
    sum_before = sample("tx_request_duration_seconds_sum", operation="CodeSystem/$subsumes")
    for seconds in (0.001, 0.004, 0.2):
        metrics.record_request(path, 418, seconds)
    metrics.PENDING.flush()
    assert sample("tx_requests_total", **labels) == before + 3
    # buckets are cumulative: 0.001 and 0.004 are at most 0.005, 0.2 is not
    assert sample("tx_request_duration_seconds_bucket", operation="CodeSystem/$subsumes",
                  le="0.005") == bucket_before + 2
    assert abs(sample("tx_request_duration_seconds_sum", operation="CodeSystem/$subsumes")
               - sum_before - 0.205) < 1e-9


def test_cache_lookups_are_counted_once_flushed() -> None:
    hits = sample("tx_response_cache_total", result="hit")
    misses = sample("tx_response_cache_total", result="miss")
    metrics.record_cache(True)
    metrics.record_cache(True)
    metrics.record_cache(False)
    metrics.PENDING.flush()
    assert sample("tx_response_cache_total", result="hit") == hits + 2
    assert sample("tx_response_cache_total", result="miss") == misses + 1
