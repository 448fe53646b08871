"""CodeSystem/$subsumes: how two codes of one hierarchical code system relate.

R4 CodeSystem/$subsumes: `outcome` is equivalent, subsumes (A is an ancestor of B),
subsumed-by (B is an ancestor of A) or not-subsumed. Codes come as codeA/codeB with `system`
(or the instance), or as codingA/codingB; an unknown code or system is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terminology.errors import BadRequest, NotFound
from terminology.operations.context import OperationContext
from terminology.operations.lookup import resolve_code_system
from terminology.params import ParamBag
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry


@dataclass
class SubsumesRequest:
    """$subsumes inputs."""

    system: str
    code_a: str
    code_b: str
    version: str | None = None


def _side(bag: ParamBag, side: str, system: str | None) -> tuple[str, str | None]:
    """(code, system) for side 'A' or 'B' from code{side} or coding{side}."""
    code = bag.text(f"code{side}")
    coding = bag.coding(f"coding{side}")
    if code is not None and coding is not None:
        raise BadRequest(f"Use either 'code{side}' or 'coding{side}', not both", expression=f"coding{side}")
    if coding is not None:
        if coding.get("system") and system and coding["system"] != system:
            raise BadRequest(f"coding{side} is from '{coding['system']}', not '{system}'",
                             expression=f"coding{side}.system")
        code, system = coding.get("code"), coding.get("system") or system
    if not code:
        raise BadRequest(f"The parameter 'code{side}' (or 'coding{side}') is required",
                         expression=f"code{side}")
    return code, system


def subsumes_request(bag: ParamBag, instance_url: str | None = None) -> SubsumesRequest:
    """Parse $subsumes parameters; both codes must be from the same system."""
    system = bag.text("system") or instance_url
    code_a, system_a = _side(bag, "A", system)
    code_b, system_b = _side(bag, "B", system)
    if system_a and system_b and system_a != system_b:
        raise BadRequest("codingA and codingB must be from the same code system", expression="codingB")
    system = system_a or system_b
    if not system:
        raise BadRequest("The parameter 'system' is required with codeA/codeB", expression="system")
    return SubsumesRequest(system, code_a, code_b, bag.text("version"))


def outcome(provider: CodeSystemProvider, code_a: str, code_b: str) -> str:
    """equivalent | subsumes | subsumed-by | not-subsumed for two known codes."""
    if code_a == code_b:
        return "equivalent"
    if provider.subsumes(code_a, code_b):
        return "subsumes"
    if provider.subsumes(code_b, code_a):
        return "subsumed-by"
    return "not-subsumed"


def subsumes(registry: Registry, request: SubsumesRequest) -> dict[str, Any]:
    """The $subsumes answer."""
    provider = resolve_code_system(registry, request.system, request.version)
    found = []
    for name, code in (("codeA", request.code_a), ("codeB", request.code_b)):
        concept = provider.locate(code)
        if concept is None:
            raise NotFound(f"Unknown code '{code}' in the CodeSystem '{provider.url}'",
                           expression=name, message_id="Unknown_Code_in")
        found.append(concept.code)
    return {"resourceType": "Parameters",
            "parameter": [{"name": "outcome", "valueCode": outcome(provider, found[0], found[1])}]}


def handle_subsumes(ctx: OperationContext) -> dict[str, Any]:
    """CodeSystem/$subsumes handler (type and instance level)."""
    url = ctx.instance.get("url") if ctx.instance else None
    request = subsumes_request(ctx.bag, url)
    if ctx.instance is not None and request.version is None:
        request.version = ctx.instance.get("version")
    return subsumes(ctx.registry, request)
