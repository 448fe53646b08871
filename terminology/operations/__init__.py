"""The terminology operations, one module each, and the table the HTTP layer routes by.

Each handler is a pure function of an OperationContext (the registry for this request, the
parsed parameters, the instance resource for /{type}/{id}/$op) returning a resource dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from terminology.operations.batch import handle_batch_validate
from terminology.operations.expand import handle_expand
from terminology.operations.subsumes import handle_subsumes
from terminology.operations.translate import handle_translate
from terminology.operations.validate import handle_cs_validate, handle_vs_validate
from terminology.params import ParamBag, lookup_request
from terminology.registry import Registry
from terminology.settings import Settings


@dataclass
class OperationContext:
    """Everything an operation may read for one request."""

    registry: Registry
    bag: ParamBag
    settings: Settings
    instance: dict[str, Any] | None = None  # the resource for instance-level calls
    accept_language: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[OperationContext], dict[str, Any]]


def _lookup(ctx: OperationContext) -> dict[str, Any]:
    from terminology.operations.lookup import lookup

    url = ctx.instance.get("url") if ctx.instance else None
    request = lookup_request(ctx.bag, url)
    if request.display_language is None:
        request.display_language = ctx.accept_language
    if ctx.instance is not None and request.version is None:
        request.version = ctx.instance.get("version")
    return lookup(ctx.registry, request)


# (resource type, operation name) -> handler. Operation modules add their entries here.
HANDLERS: dict[tuple[str, str], Handler] = {
    ("CodeSystem", "lookup"): _lookup,
    ("ValueSet", "expand"): handle_expand,
    ("CodeSystem", "validate-code"): handle_cs_validate,
    ("ValueSet", "validate-code"): handle_vs_validate,
    ("CodeSystem", "subsumes"): handle_subsumes,
    ("ValueSet", "batch-validate-code"): handle_batch_validate,
    ("ConceptMap", "translate"): handle_translate,
}
