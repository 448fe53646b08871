"""POST /fhir with a batch Bundle: many requests in one, each answered on its own.

FHIR R4 (http.html#transaction, "batch"): the server answers a `batch-response` Bundle with
one entry per request entry, in the same order, each with its own `response.status` and
resource. A failing entry's answer is its OperationOutcome and the other entries are still
run. HL7's Java validator sends its code checks this way.

Each entry's `request.url` (relative, `/`-rooted or absolute; the host is not checked) is routed as
the HTTP face routes it: `{type}/$op` and `{type}/{id}/$op` by GET (parameters in the query)
or POST (a Parameters `resource`, plus any query), `{type}/{id}` reads and `{type}` searches
by GET. Each runs through the same handler table, error model and tx-resource/cache-id
scoping as a single request (terminology/http/fhir/invoke.py). The whole batch shares the
request time limit, and more than `max_batch_entries` entries is too costly.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from terminology.errors import (
    BadRequest,
    FhirError,
    Issue,
    MethodNotAllowed,
    NotFound,
    TooCostly,
    operation_outcome,
)
from terminology.http.fhir.invoke import Server, instance_for, known_type, run_operation
from terminology.operations.search import read, search
from terminology.params import ParamBag, bag_from_parameters, bag_from_query

log = logging.getLogger("terminology")


@dataclass
class EntryRequest:
    """One batch entry's request, routed: `op` for operations, else a read (rid) or search."""

    method: str
    rtype: str
    rid: str | None = None
    op: str | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    body: dict[str, Any] | None = None


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def parse_entry(entry: Any, i: int) -> EntryRequest:
    """The routed request of entry `i`; a FhirError naming the entry when it cannot be run."""
    where = f"Bundle.entry[{i}]"
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} must be an object", expression=where)
    req = entry.get("request")
    if not isinstance(req, dict):
        raise BadRequest(f"{where} has no request", expression=f"{where}.request")
    method, url = req.get("method"), req.get("url")
    if not isinstance(method, str) or not isinstance(url, str) or not url:
        raise BadRequest(f"{where}.request needs a method and a url", expression=f"{where}.request")
    method = method.upper()
    parts = urlsplit(url)  # an absolute url is taken as this server's, whatever its host
    segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
    if segments and segments[0] == "fhir":
        segments = segments[1:]
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as e:
        raise BadRequest(f"{where}.request.url has a query that is not UTF-8",
                         expression=f"{where}.request.url") from e
    resource = entry.get("resource")
    body = resource if isinstance(resource, dict) else None
    if not segments:
        raise NotFound(f"{where}.request.url '{url}' names no resource type; batches do not nest",
                       expression=f"{where}.request.url")
    rtype, rest = segments[0], segments[1:]
    known_type(rtype)
    if rest and rest[-1].startswith("$") and len(rest) <= 2:
        if method not in ("GET", "POST"):
            raise MethodNotAllowed(f"{method} is not allowed for an operation", expression=f"{where}.request.method")
        return EntryRequest(method, rtype, rest[0] if len(rest) == 2 else None, rest[-1][1:], query, body)
    if len(rest) > 1:
        raise NotFound(f"No route for {method} {url}", expression=f"{where}.request.url")
    if method != "GET":
        raise MethodNotAllowed(f"{method} on {url} is not supported: this server is read-only",
                               expression=f"{where}.request.method")
    return EntryRequest(method, rtype, rest[0] if rest else None, None, query)


def run_entry(server: Server, req: EntryRequest, base_url: str, accept_language: str | None,
              headers: dict[str, str]) -> dict[str, Any]:
    """The answer of one routed entry (a resource dict); FhirError for an error answer."""
    bag = bag_from_query(req.query)
    if req.op is None:
        if req.rid is not None:
            return read(server.registry, req.rtype, req.rid)
        return search(server.registry, req.rtype, bag, base_url)
    if req.method == "POST":
        if req.body is None and not req.query:
            raise BadRequest("A POST entry needs a Parameters resource", expression="resource")
        if req.body is not None:
            bag = ParamBag(bag.params + bag_from_parameters(req.body).params)
    instance = instance_for(server, req.rtype, req.rid) if req.rid is not None else None
    return run_operation(server, req.rtype, req.op, instance, bag, accept_language, headers)


def check_bundle(bundle: Any, max_entries: int) -> list[Any]:
    """The entries of a batch Bundle; 400 for anything else, too-costly past `max_entries`."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        shown = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise BadRequest(f"POST to the base needs a Bundle of type batch, not {shown!r}",
                         expression="resourceType")
    if bundle.get("type") != "batch":
        raise BadRequest(f"Only Bundles of type 'batch' are processed here, not {bundle.get('type')!r}",
                         code="not-supported", expression="Bundle.type")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be a list", expression="Bundle.entry")
    if len(entries) > max_entries:
        raise TooCostly(f"The batch has {len(entries)} entries; this server runs at most {max_entries} "
                        "in one batch", expression="Bundle.entry", message_id=None)
    return entries


def run_batch(server: Server, bundle: Any, base_url: str, accept_language: str | None,
              headers: dict[str, str], request_id: str = "") -> dict[str, Any]:
    """The batch-response Bundle: one entry per request entry, in order."""
    entries = check_bundle(bundle, server.settings.max_batch_entries)
    out = []
    for i, entry in enumerate(entries):
        try:
            resource = run_entry(server, parse_entry(entry, i), base_url,
                                 accept_language, headers)
            status = 200
        except FhirError as e:
            resource, status = e.outcome(), e.status
        except Exception:  # one entry's failure never fails the batch
            log.exception("unexpected error in batch entry %d of request %s", i, request_id)
            resource = operation_outcome([Issue(
                "error", "exception", f"An unexpected error occurred handling entry {i} of this "
                f"batch (request id {request_id})")])
            status = 500
        out.append({"resource": resource, "response": {"status": _status(status)}})
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "batch-response", "entry": out}
