"""Running one operation request: the one path shared by the routes and batch entries.

It finds the handler, checks resources sent inline, scopes the registry to the request's
`tx-resource` content (and the content remembered under its `cache-id`) and calls the
handler. Nothing here knows Flask: the caller has already turned the request into a
ParamBag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from terminology.cache_ids import CachedResources
from terminology.content import INLINE_RESOURCE_PARAMS, check_inline_resource, overlay_registry
from terminology.errors import Gone, NotFound
from terminology.operations import HANDLERS, Handler, OperationContext
from terminology.params import ParamBag
from terminology.registry import Registry
from terminology.settings import Settings

RESOURCE_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")


@dataclass
class Server:
    """What every request runs against: the loaded registry, settings, the cache-id store."""

    current: Callable[[], Registry]  # the content served now (a reload swaps it)
    settings: Settings
    cached: CachedResources

    @property
    def registry(self) -> Registry:
        """The registry this request runs on."""
        return self.current()


def known_type(rtype: str) -> None:
    """404 unless `rtype` is a resource type this server serves."""
    if rtype not in RESOURCE_TYPES:
        raise NotFound(f"The resource type '{rtype}' is not served here (CodeSystem, ValueSet, ConceptMap)",
                       expression="resourceType")


def instance_for(server: Server, rtype: str, rid: str) -> dict[str, Any]:
    """The loaded resource /{rtype}/{rid} names; 404 when there is none."""
    known_type(rtype)
    instance = server.registry.by_id(rtype, rid)
    if instance is None and server.registry.deleted(rtype, rid):
        raise Gone(f"{rtype}/{rid} was deleted", expression="id")
    if instance is None:
        raise NotFound(f"{rtype}/{rid} is not known to this server", expression="id")
    return instance


def scoped_registry(server: Server, bag: ParamBag) -> Registry:
    """The registry one request sees: its tx-resources (and its cache-id's) over the content."""
    sent = bag.resources("tx-resource")
    cache_id = bag.text("cache-id")
    if cache_id is None:
        return overlay_registry(server.registry, sent)
    return server.cached.scoped(cache_id, sent, server.registry, overlay_registry)


def handler_for(rtype: str, op: str) -> Handler:
    """The handler of $op on rtype; 404 (not-supported) when there is none."""
    known_type(rtype)
    handler = HANDLERS.get((rtype, op))
    if handler is None:
        raise NotFound(f"The operation ${op} is not supported on {rtype}",
                       code="not-supported", expression="operation")
    return handler


def run_operation(server: Server, rtype: str, op: str, instance: dict[str, Any] | None,
                  bag: ParamBag, accept_language: str | None,
                  headers: dict[str, str]) -> dict[str, Any]:
    """The answer (a resource dict) of $op on rtype (or on `instance`); FhirError otherwise."""
    handler = handler_for(rtype, op)
    for name in INLINE_RESOURCE_PARAMS:
        for p in bag.all(name):
            if p.resource is not None:
                check_inline_resource(name, p.resource)
    ctx = OperationContext(scoped_registry(server, bag), bag, server.settings, instance,
                           accept_language, headers)
    return handler(ctx)
