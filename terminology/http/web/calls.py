"""Calling a FHIR operation from a page, exactly as the FHIR API would, and saying how.

A page never reimplements an operation: it builds the parameters a client would send, runs
them through the HANDLERS table (the same handler `/fhir/{type}/${op}` uses) and keeps the
request (`FhirCall`) so the page can show it as a link or a curl command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import current_app, g

from terminology.http.answers import screened
from terminology.operations import HANDLERS, OperationContext
from terminology.params import ParamBag, bag_from_parameters, bag_from_query
from terminology.registry import Registry
from terminology.settings import Settings

# Characters a FHIR canonical or code keeps readable in a link (all are legal in a query).
_SAFE = ":/|"


@dataclass
class FhirCall:
    """One FHIR request: GET with query parameters, or POST with a Parameters body."""

    path: str  # e.g. /fhir/CodeSystem/$lookup
    query: list[tuple[str, str]] = field(default_factory=list)
    body: dict[str, Any] | None = None  # a Parameters resource: sent as POST

    @property
    def method(self) -> str:
        """GET, or POST when the request carries a body."""
        return "POST" if self.body is not None else "GET"

    @property
    def url(self) -> str:
        """The path with its query string (what a link points at)."""
        if not self.query:
            return self.path
        return f"{self.path}?{urlencode(self.query, safe=_SAFE)}"

    def curl(self, host_url: str) -> str:
        """A curl command that repeats this request against `host_url`."""
        target = shlex.quote(host_url.rstrip("/") + self.url)
        if self.body is None:
            return f"curl {target}"
        data = shlex.quote(orjson.dumps(self.body).decode())
        return f"curl -X POST {target} -H 'Content-Type: application/fhir+json' -d {data}"


def registry() -> Registry:
    """The registry this request runs on (the app's, as it was when the request started)."""
    return g.get("registry") or current_app.extensions["tx_registry"]


def settings() -> Settings:
    """The settings of the running app."""
    return current_app.extensions["tx_settings"]


def writes_enabled() -> bool:
    """Whether this server accepts writes (write tokens or JWTs are configured)."""
    return bool(current_app.extensions.get("tx_writes", False))


def has_operation(rtype: str, op: str) -> bool:
    """Whether the server routes /fhir/{rtype}/${op} (operations land one by one)."""
    return (rtype, op) in HANDLERS


def run(call: FhirCall, accept_language: str | None = None) -> dict[str, Any]:
    """The operation's answer to `call`; FhirErrors propagate as the API would answer them."""
    _, rtype, op = call.path.rsplit("/", 2)
    handler = HANDLERS[(rtype, op.lstrip("$"))]
    bag = bag_from_query(call.query)
    if call.body is not None:
        bag = ParamBag(bag.params + bag_from_parameters(call.body).params)
    ctx = OperationContext(registry(), bag, settings(), None, accept_language)
    g.last_fhir_call = call  # an error page shows the request that failed
    return screened(handler(ctx))


def operation(rtype: str, op: str, *pairs: tuple[str, str | None]) -> FhirCall:
    """A GET call of /fhir/{rtype}/${op}; pairs whose value is None are left out."""
    return FhirCall(f"/fhir/{rtype}/${op}", [(k, v) for k, v in pairs if v is not None])


def parameter(params: dict[str, Any], name: str) -> Any:
    """The value[x] of the first parameter called `name` in a Parameters dict (or None)."""
    for p in params.get("parameter", []):
        if p.get("name") == name:
            return next((v for k, v in p.items() if k.startswith("value")), None)
    return None
