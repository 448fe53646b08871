"""FHIR Parameters / query strings -> a ParamBag -> typed request objects. Strict.

A parameter sent twice where the operation allows one, `count=abc`, a `valueInteger` where a
code is expected: each is a 400 OperationOutcome naming the parameter, never a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import BadRequest

PRIMITIVE_KEYS = (
    "valueString", "valueCode", "valueUri", "valueUrl", "valueCanonical", "valueBoolean",
    "valueInteger", "valueDecimal", "valueDateTime", "valueDate", "valueInstant", "valueId",
    "valueMarkdown", "valueOid", "valueUuid", "valuePositiveInt", "valueUnsignedInt",
)
TEXT_KEYS = frozenset(
    {"valueString", "valueCode", "valueUri", "valueUrl", "valueCanonical", "valueId",
     "valueMarkdown", "valueOid", "valueUuid", "valueDateTime", "valueDate", "valueInstant"}
)


@dataclass(slots=True)
class Param:
    """One parameter: its value[x] key and value, a resource, or parts."""

    name: str
    key: str | None = None  # e.g. "valueCode"; None for resource/part parameters
    value: Any = None
    resource: dict[str, Any] | None = None
    part: list[Param] | None = None
    from_query: bool = False


@dataclass
class ParamBag:
    """All parameters of one request, by name, in order."""

    params: list[Param] = field(default_factory=list)

    def all(self, name: str) -> list[Param]:
        """Every parameter called `name`."""
        return [p for p in self.params if p.name == name]

    def has(self, name: str) -> bool:
        """Whether `name` was sent."""
        return any(p.name == name for p in self.params)

    def one(self, name: str) -> Param | None:
        """The single parameter `name`; 400 when repeated."""
        found = self.all(name)
        if len(found) > 1:
            raise BadRequest(f"The parameter '{name}' may appear only once", expression=name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        """A string-like parameter (code, uri, string, ...); 400 for another type."""
        p = self.one(name)
        if p is None:
            return None
        if p.key in TEXT_KEYS or p.from_query:
            return str(p.value)
        raise BadRequest(
            f"The parameter '{name}' must be a string, code or uri, not {p.key or 'a resource'}",
            expression=name,
        )

    def texts(self, name: str) -> list[str]:
        """Every string-like value of a repeating parameter (comma lists are not split)."""
        out = []
        for p in self.all(name):
            if p.key not in TEXT_KEYS and not p.from_query:
                raise BadRequest(f"The parameter '{name}' must be a string or code", expression=name)
            out.append(str(p.value))
        return out

    def boolean(self, name: str) -> bool | None:
        """A boolean parameter; 'true'/'false' in a query string."""
        p = self.one(name)
        if p is None:
            return None
        if p.key == "valueBoolean" and isinstance(p.value, bool):
            return p.value
        if p.from_query or p.key in TEXT_KEYS:
            low = str(p.value).strip().lower()
            if low in ("true", "false"):
                return low == "true"
        raise BadRequest(f"The parameter '{name}' must be true or false, not '{p.value}'", expression=name)

    def integer(self, name: str, minimum: int = 0) -> int | None:
        """A non-negative integer parameter; 400 for 'abc', '-1' or another type."""
        p = self.one(name)
        if p is None:
            return None
        value = p.value
        if isinstance(value, bool):
            value = None
        elif isinstance(value, str) and (p.from_query or p.key in TEXT_KEYS):
            value = int(value) if value.strip().lstrip("-").isdigit() else None
        elif not isinstance(value, int):
            value = None
        if value is None:
            raise BadRequest(f"The parameter '{name}' must be an integer, not '{p.value}'", expression=name)
        if value < minimum:
            raise BadRequest(f"The parameter '{name}' must be at least {minimum}, not {value}", expression=name)
        return int(value)

    def coding(self, name: str) -> dict[str, Any] | None:
        """A Coding parameter (valueCoding); a query string gives 'system|code'."""
        p = self.one(name)
        if p is None:
            return None
        if p.key == "valueCoding" and isinstance(p.value, dict):
            return p.value
        if p.from_query and isinstance(p.value, str):
            system, sep, code = p.value.rpartition("|")
            return {"system": system, "code": code} if sep else {"code": p.value}
        raise BadRequest(f"The parameter '{name}' must be a Coding", expression=name)

    def codeable_concept(self, name: str) -> dict[str, Any] | None:
        """A CodeableConcept parameter (valueCodeableConcept)."""
        p = self.one(name)
        if p is None:
            return None
        if p.key == "valueCodeableConcept" and isinstance(p.value, dict):
            return p.value
        raise BadRequest(f"The parameter '{name}' must be a CodeableConcept", expression=name)

    def resource(self, name: str) -> dict[str, Any] | None:
        """A resource parameter (e.g. valueSet, codeSystem)."""
        p = self.one(name)
        if p is None:
            return None
        if isinstance(p.resource, dict):
            return p.resource
        raise BadRequest(f"The parameter '{name}' must carry a resource", expression=name)

    def resources(self, name: str) -> list[dict[str, Any]]:
        """Every resource sent as `name` (tx-resource)."""
        out = []
        for p in self.all(name):
            if not isinstance(p.resource, dict):
                raise BadRequest(f"The parameter '{name}' must carry a resource", expression=name)
            out.append(p.resource)
        return out


def _param_from_json(raw: Any, where: str) -> Param:
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be a JSON object", expression=where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where} has no name", expression=f"{where}.name")
    p = Param(name=name)
    value_keys = [k for k in raw if k.startswith("value") and k != "value"]
    if len(value_keys) > 1:
        raise BadRequest(f"The parameter '{name}' has more than one value[x]", expression=name)
    if value_keys:
        p.key = value_keys[0]
        p.value = raw[p.key]
    if "resource" in raw:
        if not isinstance(raw["resource"], dict) or "resourceType" not in raw["resource"]:
            raise BadRequest(f"The parameter '{name}' has a resource without resourceType", expression=name)
        p.resource = raw["resource"]
    if "part" in raw:
        parts = raw["part"]
        if not isinstance(parts, list):
            raise BadRequest(f"The parameter '{name}' has a part that is not a list", expression=name)
        p.part = [_param_from_json(x, f"{where}.part[{i}]") for i, x in enumerate(parts)]
    if p.key is None and p.resource is None and p.part is None:
        raise BadRequest(
            f"The parameter '{name}' has neither a value, a resource nor parts", expression=name
        )
    return p


def bag_from_parameters(body: Any) -> ParamBag:
    """A ParamBag from a Parameters resource (dict); 400 for anything else."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a FHIR Parameters resource (a JSON object)")
    if body.get("resourceType") != "Parameters":
        raise BadRequest(
            f"The request body must be a Parameters resource, not {body.get('resourceType')!r}",
            expression="resourceType",
        )
    raw = body.get("parameter", [])
    if not isinstance(raw, list):
        raise BadRequest("Parameters.parameter must be a list", expression="Parameters.parameter")
    return ParamBag([_param_from_json(x, f"Parameters.parameter[{i}]") for i, x in enumerate(raw)])


def bag_from_query(items: list[tuple[str, str]]) -> ParamBag:
    """A ParamBag from query-string (or form) pairs; `_format` and friends are not parameters."""
    return ParamBag(
        [Param(name=k, key="valueString", value=v, from_query=True)
         for k, v in items if k not in ("_format", "_pretty")]
    )


# -- $lookup ----------------------------------------------------------------------------------


@dataclass(slots=True)
class LookupRequest:
    """CodeSystem/$lookup inputs."""

    system: str
    code: str
    version: str | None = None
    display_language: str | None = None
    properties: list[str] = field(default_factory=list)
    date: str | None = None


def lookup_request(bag: ParamBag, instance_url: str | None = None) -> LookupRequest:
    """Parse $lookup parameters: code+system, or coding; not both."""
    code = bag.text("code")
    coding = bag.coding("coding")
    if code is not None and coding is not None:
        raise BadRequest("Use either 'code' (with 'system') or 'coding', not both", expression="coding")
    system = bag.text("system")
    version = bag.text("version")
    if coding is not None:
        code = coding.get("code")
        system = coding.get("system") or system
        version = coding.get("version") or version
        if not code:
            raise BadRequest("The coding has no code", expression="coding.code")
    system = system or instance_url
    if not code:
        raise BadRequest("The parameter 'code' (or 'coding') is required", expression="code")
    if not system:
        raise BadRequest("The parameter 'system' is required with 'code'", expression="system")
    props: list[str] = []
    for p in bag.texts("property"):
        props.extend(x.strip() for x in p.split(",") if x.strip())
    return LookupRequest(system, code, version, bag.text("displayLanguage"), props, bag.text("date"))
