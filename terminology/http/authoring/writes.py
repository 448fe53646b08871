"""The FHIR write API: create, update, conditional create/update, delete, history, vread.

Every write is authorized here (auth.py), validated all or nothing (the loader's checks and
operations/write_checks.py), stored as one transaction (store/), applied to this worker and
announced to the others (http/authoring/state.py), and logged as one JSON audit line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from flask import Blueprint, Response, current_app, g, request

from terminology.errors import (
    BadRequest,
    Conflict,
    FhirError,
    Gone,
    Issue,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    UnsupportedMediaType,
    operation_outcome,
)
from terminology.http.answers import screened
from terminology.http.authoring.auth import Authorizer, Principal
from terminology.http.fhir.body import fhir_body
from terminology.http.fhir.conditional import instant_http_date
from terminology.operations.write_checks import write_issues
from terminology.providers.filters import request_deadline
from terminology.registry import IMPLICIT_VS_MARK
from terminology.store import NotStored, StoredVersion, UniqueCanonical, VersionConflict

if TYPE_CHECKING:  # for annotations only: the store is opened where writes are enabled
    from sqlalchemy.exc import DBAPIError

    from terminology.http.authoring.state import Authoring

audit_log = logging.getLogger("terminology.audit")
FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
WRITABLE = ("CodeSystem", "ValueSet", "ConceptMap")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')
CONDITIONAL_PARAMS = ("url", "version", "_id")


def _respond(body: dict[str, Any] | None, status: int) -> Response:
    """A write's answer (always FHIR JSON), its resource through the pipeline's RESOURCE stages."""
    return Response(orjson.dumps(screened(body, status)) if body is not None else b"", status=status,
                    content_type=FHIR_JSON)


def version_headers(base: str, v: StoredVersion) -> dict[str, str]:
    """ETag, Last-Modified and Location of a stored version."""
    return {"ETag": f'W/"{v.version_id}"', "Last-Modified": instant_http_date(v.last_updated),
            "Location": f"{base}/{v.resource_type}/{v.id}/_history/{v.version_id}"}


def parse_if_match(value: str | None) -> int | None:
    """The version in an If-Match header (W/"3", "3" or 3); 400 when it names none."""
    if value is None:
        return None
    m = _ETAG.match(value)
    if m is None:
        raise BadRequest(f"If-Match '{value}' is not a version ETag such as W/\"1\"", expression="If-Match")
    return int(m.group(1))


def _prefer() -> str:
    for part in request.headers.get("Prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return":
            return value.strip().strip('"')
    return "representation"


def _read_resource(rtype: str) -> dict[str, Any]:
    """The request body as a resource of type `rtype`; 400/415 otherwise."""
    ctype = (request.mimetype or "").lower()
    if ctype and ctype not in JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type '{request.mimetype}' is not supported; "
                                   "send application/fhir+json")
    # the one body reader: size, Content-Encoding and nesting limits (fhir/body.py)
    body = fhir_body(f"a {rtype} resource")
    if not isinstance(body, dict) or body.get("resourceType") != rtype:
        got = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise BadRequest(f"The body must be a {rtype} resource, not {got!r}", expression="resourceType")
    return body


def db_errors() -> ModuleType:
    """SQLAlchemy's exceptions, loaded when an except clause meets an exception (Python
    evaluates the clause's class only then), so a server with writes off never imports it."""
    import sqlalchemy.exc

    return sqlalchemy.exc


def store_unavailable(e: DBAPIError) -> FhirError:
    """503 when the database cannot be reached (the reason is logged, not sent)."""
    logging.getLogger("terminology.store").error("store unavailable: %s", type(e.orig).__name__)
    return FhirError("The store of authored resources is unavailable; nothing was written. "
                     "Try again shortly", code="transient", status=503)


writes = Blueprint("writes", __name__)


def _authoring() -> Authoring | None:
    found: Authoring | None = current_app.extensions.get("tx_authoring")
    return found


def _authorizer() -> Authorizer:
    found: Authorizer = current_app.extensions["tx_authorizer"]
    return found


def base_url() -> str:
    return request.host_url.rstrip("/") + "/fhir"


def enabled(rtype: str, what: str) -> Authoring:
    """The authored-content state; 404 for a type not served, 405 while writes are off."""
    if rtype not in WRITABLE:
        raise NotFound(f"The resource type '{rtype}' is not served here (CodeSystem, ValueSet, "
                       "ConceptMap)", expression="resourceType")
    authoring = _authoring()
    if authoring is None or not _authorizer().writes_enabled:
        raise MethodNotAllowed(f"{request.method} on {what} is not supported: this server is "
                               "read-only (writes are enabled by TX_WRITE_TOKENS or TX_JWT_*)")
    return authoring


def audited(action: str, rtype: str, rid: str | None, run: Any) -> Response:
    """Run a write, then log one audit line whatever its outcome."""
    entry: dict[str, Any] = {"action": action, "resourceType": rtype, "id": rid}
    g.audit = entry
    status = 500
    try:
        try:
            resp: Response = run()
        except db_errors().DBAPIError as e:
            raise store_unavailable(e) from None
        status = resp.status_code
        return resp
    except FhirError as e:
        status = e.status
        entry["reason"] = e.text
        raise
    finally:
        entry.update(status=status, outcome="success" if status < 400 else "failure",
                     request_id=g.get("request_id", ""), who=g.get("who", "anonymous"),
                     time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        # one JSON line: the log formatter (terminology/logs.py) merges the fields into it
        audit_log.info(f"{action} {rtype}/{entry.get('id')} {status}", extra={"fields": entry})


def authenticated() -> Principal:
    """Who the token speaks for (401 without a valid one): the first thing every write route
    does, before it reads the body or matches anything (a conditional write's match would
    otherwise tell a caller without a token which stored resource exists)."""
    who = _authorizer().authenticate(request.headers.get("Authorization"))
    g.who = who.who
    return who


def check_id(rid: str, where: str) -> None:
    """400 unless `rid` is a FHIR id (1-64 of A-Z a-z 0-9 - .) other than '.' and '..'."""
    if not FHIR_ID.match(rid):
        raise BadRequest(f"'{rid}' is not a FHIR id (1-64 of A-Z a-z 0-9 - .)", expression=where)
    if rid in (".", ".."):
        raise BadRequest(f"'{rid}' is not accepted as an id: the FHIR id rule allows it, but in a "
                         "URL it is a path segment that clients normalise away, so the resource "
                         "could not be addressed", expression=where)


def principal(rtype: str, interaction: str) -> Principal:
    """The token's principal, allowed `interaction` on `rtype`; 401/403 otherwise."""
    authorizer = _authorizer()
    who = authorizer.authenticate(request.headers.get("Authorization"))
    g.who = who.who
    authorizer.require(who, rtype, interaction)
    return who


def principal_first(rtype: str) -> None:
    """Before a PUT's body is read or its match run: 401 without a valid token, 403 when it
    may neither create nor update `rtype` (which one applies is decided later)."""
    who = authenticated()
    if not (who.may(rtype, "c") or who.may(rtype, "u")):
        _authorizer().require(who, rtype, "update")


def _refused_url(a: Authoring, rtype: str, resource: dict[str, Any]) -> list[Issue]:
    """A missing url, or one the server computes or serves itself, which no write may take."""
    url = resource.get("url")
    if not url:
        return [Issue("error", "required", f"A stored {rtype} needs a url (its canonical "
                      "identity)", [f"{rtype}.url"])]
    reason = reserved_url(a, str(url))
    if reason:
        return [Issue("error", "business-rule", f"'{url}' {reason}; an authored resource may "
                      "not replace or shadow it", [f"{rtype}.url"])]
    return []


def reserved_url(a: Authoring, url: str) -> str | None:
    """Why `url` is the server's own, or None: an implicit value set (`{code system}?fhir_vs`,
    computed from the code system), or the url of bundled, derived or hosted content (a hosted
    code system's url in any version, and whatever the type written)."""
    canonical = url.partition("|")[0]
    if IMPLICIT_VS_MARK in canonical:
        return "is an implicit value set, which the server computes from its code system"
    if canonical in a.reserved_urls:
        return "is bundled or hosted content"
    return None


def check_writable(a: Authoring, rtype: str, rid: str, resource: dict[str, Any]) -> None:
    """422 with every issue when the resource may not be stored; its warnings kept for the answer."""
    if (rtype, rid) in a.protected_ids:
        raise MethodNotAllowed(f"{rtype}/{rid} is bundled content and read-only", expression="id")
    issues = _refused_url(a, rtype, resource)
    if not issues:
        settings = current_app.extensions["tx_settings"]
        with request_deadline(settings.request_time_limit):
            issues = write_issues(a.registry, resource, settings.max_expansion_size)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if errors:
        err = Unprocessable(f"The {rtype} was not stored: {errors[0].text}")
        err.issues = errors + [i for i in issues if i not in errors]
        raise err
    g.warnings = issues


def store_write(a: Authoring, rtype: str, rid: str, resource: dict[str, Any],
                if_match: int | None, must_not_exist: bool) -> Response:
    """Store one version (after the checks) and answer it."""
    check_writable(a, rtype, rid, resource)
    try:
        version, created = a.store.put(rtype, rid, resource, if_match=if_match,
                                       must_not_exist=must_not_exist)
    except VersionConflict as e:
        have = f"the current version is {e.current}" if e.current else f"{rtype}/{rid} does not exist"
        raise PreconditionFailed(f"{rtype}/{rid} was changed by someone else: {have}; read it "
                                 "again and apply your change to that version",
                                 expression="If-Match") from None
    except UniqueCanonical as e:
        shown = resource.get("url", "") + (f"|{resource['version']}" if resource.get("version") else "")
        raise Unprocessable(f"{shown} is already used by {rtype}/{e.other_id}; url|version "
                            "must be unique", code="duplicate", expression=f"{rtype}.url") from None
    except db_errors().IntegrityError:
        raise Conflict(f"{rtype}/{rid} was written concurrently; try again") from None
    a.feed.published(version.seq)
    g.audit.update(versionId=version.version_id, url=resource.get("url"),
                   version=resource.get("version"))
    return answer(version, 201 if created else 200, "Created" if created else "Updated")


def answer(version: StoredVersion, status: int, verb: str) -> Response:
    """A write's answer as Prefer asks: the resource, nothing, or an OperationOutcome."""
    prefer = _prefer()
    if prefer == "minimal":
        resp = _respond(None, status)
    elif prefer == "OperationOutcome":
        text = f"{verb} {version.resource_type}/{version.id} version {version.version_id}"
        resp = _respond(operation_outcome([Issue("information", "informational", text),
                                           *g.get("warnings", [])]), status)
    else:
        resp = _respond(version.resource, status)
    resp.headers.update(version_headers(base_url(), version))
    return resp


def matches(a: Authoring, rtype: str, query: list[tuple[str, str]], where: str) -> list[dict[str, Any]]:
    """The resources a conditional write's criteria (url, version, _id) match."""
    criteria = {}
    for name, value in query:
        if name not in CONDITIONAL_PARAMS:
            raise BadRequest(f"The search parameter '{name}' is not supported in a conditional "
                             "write (url, version, _id)", expression=where)
        criteria["id" if name == "_id" else name] = value
    if not criteria:
        raise BadRequest("A conditional write needs search criteria (url, version)", expression=where)
    a.feed.catch_up()  # decide on what every replica has committed
    return [r for r in a.registry.resources(rtype)
            if all(str(r.get(k, "")) == v for k, v in criteria.items())]


@writes.post("/fhir/<rtype>")
def create(rtype: str) -> Response:
    a = enabled(rtype, rtype)

    def run() -> Response:
        principal(rtype, "create")
        resource = _read_resource(rtype)
        condition = request.headers.get("If-None-Exist")
        if condition is not None:
            found = matches(a, rtype, parse_qsl(condition, keep_blank_values=True), "If-None-Exist")
            if len(found) > 1:
                raise PreconditionFailed(f"If-None-Exist matches {len(found)} resources",
                                         expression="If-None-Exist")
            if found:
                return existing(a, rtype, found[0])
        rid = str(uuid.uuid4())
        g.audit["id"] = rid
        return store_write(a, rtype, rid, {**resource, "id": rid}, None, True)

    return audited("create", rtype, None, run)


def existing(a: Authoring, rtype: str, resource: dict[str, Any]) -> Response:
    """A conditional create that matched: 200 and the resource, nothing written."""
    rid = str(resource.get("id"))
    g.audit.update(id=rid, outcome_detail="matched existing")
    head = a.store.head(rtype, rid) if (rtype, rid) in a.stored else None
    if head is None:
        return _respond(resource, 200)
    return answer(head, 200, "Found")


@writes.put("/fhir/<rtype>/<rid>")
def update(rtype: str, rid: str) -> Response:
    a = enabled(rtype, f"{rtype}/{rid}")

    def run() -> Response:
        principal_first(rtype)
        check_id(rid, "id")
        resource = _read_resource(rtype)
        if resource.get("id") != rid:
            raise BadRequest(f"The resource's id ({resource.get('id')!r}) must be the id in the "
                             f"URL ('{rid}')", expression=f"{rtype}.id")
        return put(a, rtype, rid, resource)

    return audited("update", rtype, rid, run)


def put(a: Authoring, rtype: str, rid: str, resource: dict[str, Any]) -> Response:
    """Create or update `rtype/rid` (a deleted resource is created again)."""
    if_match = parse_if_match(request.headers.get("If-Match"))
    head = a.store.head(rtype, rid)
    live = head is not None and not head.deleted
    principal(rtype, "update" if live else "create")
    if not live:
        g.audit["action"] = "create"
    return store_write(a, rtype, rid, resource, if_match, False)


@writes.put("/fhir/<rtype>")
def conditional_update(rtype: str) -> Response:
    a = enabled(rtype, rtype)

    def run() -> Response:
        principal_first(rtype)
        resource = _read_resource(rtype)
        found = matches(a, rtype, list(request.args.items(multi=True)), "url")
        if len(found) > 1:
            raise PreconditionFailed(f"The criteria match {len(found)} resources; a conditional "
                                     "update needs one", expression="url")
        if found:
            rid = str(found[0].get("id"))
            if resource.get("id") not in (None, rid):
                raise BadRequest(f"The resource's id ({resource['id']!r}) is not the id of the "
                                 f"matching resource ('{rid}')", expression=f"{rtype}.id")
        else:
            rid = str(resource.get("id") or uuid.uuid4())
            check_id(rid, f"{rtype}.id")
        g.audit["id"] = rid
        return put(a, rtype, rid, {**resource, "id": rid})

    return audited("update", rtype, None, run)


@writes.delete("/fhir/<rtype>/<rid>")
def delete(rtype: str, rid: str) -> Response:
    a = enabled(rtype, f"{rtype}/{rid}")

    def run() -> Response:
        principal(rtype, "delete")
        if (rtype, rid) in a.protected_ids:
            raise MethodNotAllowed(f"{rtype}/{rid} is bundled content and read-only", expression="id")
        try:
            version = a.store.delete(rtype, rid, if_match=parse_if_match(request.headers.get("If-Match")))
        except NotStored:
            raise NotFound(f"{rtype}/{rid} is not known to this server", expression="id") from None
        except VersionConflict as e:
            raise PreconditionFailed(f"{rtype}/{rid} is at version {e.current}, not the one "
                                     "If-Match names", expression="If-Match") from None
        a.feed.published(version.seq)
        g.audit["versionId"] = version.version_id
        if _prefer() == "OperationOutcome":
            text = f"Deleted {rtype}/{rid} (version {version.version_id})"
            resp = _respond(operation_outcome([Issue("information", "informational", text)]), 200)
        else:
            resp = _respond(None, 204)
        resp.headers["ETag"] = f'W/"{version.version_id}"'
        return resp

    return audited("delete", rtype, rid, run)


def history_store(rtype: str) -> Authoring:
    """The authored-content state for a history read; 404 when there is none."""
    if rtype not in WRITABLE:
        raise NotFound(f"The resource type '{rtype}' is not served here", expression="resourceType")
    authoring = _authoring()
    if authoring is None:
        raise NotFound("This server keeps no history: it has no store of authored resources")
    return authoring


def _history_entry(base: str, rtype: str, rid: str, v: StoredVersion) -> dict[str, Any]:
    """One entry of a history Bundle."""
    entry: dict[str, Any] = {"fullUrl": f"{base}/{rtype}/{rid}"}
    if v.resource is not None:
        entry["resource"] = v.resource
    entry["request"] = {"method": "DELETE" if v.deleted else ("POST" if v.version_id == 1 else "PUT"),
                        "url": f"{rtype}/{rid}"}
    entry["response"] = {"status": "204" if v.deleted else ("201" if v.version_id == 1 else "200"),
                         "etag": f'W/"{v.version_id}"', "lastModified": v.last_updated}
    return entry


@writes.get("/fhir/<rtype>/<rid>/_history")
def history(rtype: str, rid: str) -> Response:
    a = history_store(rtype)
    try:
        found = a.store.history(rtype, rid)
    except db_errors().DBAPIError as e:
        raise store_unavailable(e) from None
    if not found:
        raise NotFound(f"{rtype}/{rid} has no stored history", expression="id")
    base = base_url()
    entries = [_history_entry(base, rtype, rid, v) for v in found]
    return _respond({"resourceType": "Bundle", "type": "history", "total": len(entries),
                     "link": [{"relation": "self", "url": f"{base}/{rtype}/{rid}/_history"}],
                     "entry": entries}, 200)


@writes.get("/fhir/<rtype>/<rid>/_history/<vid>")
def vread(rtype: str, rid: str, vid: str) -> Response:
    a = history_store(rtype)
    if not vid.isdigit():
        raise BadRequest(f"'{vid}' is not a version id", expression="vid")
    try:
        v = a.store.version(rtype, rid, int(vid))
    except db_errors().DBAPIError as e:
        raise store_unavailable(e) from None
    if v is None:
        raise NotFound(f"{rtype}/{rid} has no version {vid}", expression="vid")
    if v.resource is None:
        err = Gone(f"{rtype}/{rid} version {vid} is a delete")
        err.headers = {"ETag": f'W/"{vid}"'}
        raise err
    resp = _respond(v.resource, 200)
    resp.headers.update(version_headers(base_url(), v))
    del resp.headers["Location"]
    return resp
