"""FHIR Parameters / query strings -> a ParamBag -> typed request objects. Strict.

A parameter sent twice where the operation allows one, `count=abc`, a `valueInteger` where a
code is expected: each is a 400 OperationOutcome naming the parameter, never a silent default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from terminology.errors import BadRequest

PRIMITIVE_KEYS = (
    "valueString", "valueCode", "valueUri", "valueUrl", "valueCanonical", "valueBoolean",
    "valueInteger", "valueDecimal", "valueDateTime", "valueDate", "valueInstant", "valueId",
    "valueMarkdown", "valueOid", "valueUuid", "valuePositiveInt", "valueUnsignedInt",
)
FHIR_INTEGER_MAX = 2_147_483_647  # FHIR integer: a signed 32-bit number
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() also takes '²'
# FHIR string: no control characters other than tab, CR and LF.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CODING_TEXT_FIELDS = ("system", "version", "code", "display")
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
    # name -> its parameters, built on first use (an operation asks for 20 names or so);
    # rebuilt when `params` has changed length
    _by_name: dict[str, list[Param]] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

    def all(self, name: str) -> list[Param]:
        """Every parameter called `name`."""
        if self._indexed != len(self.params):
            by_name: dict[str, list[Param]] = {}
            for p in self.params:
                by_name.setdefault(p.name, []).append(p)
            self._by_name, self._indexed = by_name, len(self.params)
        return list(self._by_name.get(name, ()))

    def has(self, name: str) -> bool:
        """Whether `name` was sent."""
        return bool(self.all(name))

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
            text = value.strip()
            if not _INTEGER_TEXT.fullmatch(text):
                value = None
            elif len(text.lstrip("+-").lstrip("0")) > 10:  # past 32 bits; int() refuses 5,000 digits
                value = -FHIR_INTEGER_MAX - 1 if text.startswith("-") else FHIR_INTEGER_MAX + 1
            else:
                value = int(text)
        elif not isinstance(value, int):
            value = None
        if value is None:
            raise BadRequest(f"The parameter '{name}' must be an integer, not '{p.value}'", expression=name)
        if value < minimum:
            raise BadRequest(f"The parameter '{name}' must be at least {minimum}, not {p.value}", expression=name)
        if value > FHIR_INTEGER_MAX:
            raise BadRequest(f"The parameter '{name}' must be at most {FHIR_INTEGER_MAX}, not {p.value}",
                             expression=name)
        return int(value)

    def coding(self, name: str) -> dict[str, Any] | None:
        """A Coding parameter (valueCoding); a query string gives 'system|code'."""
        p = self.one(name)
        if p is None:
            return None
        if p.key == "valueCoding" and isinstance(p.value, dict):
            return check_coding(p.value, name)
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
            codings = p.value.get("coding", [])
            if not isinstance(codings, list):
                raise BadRequest(f"{name}.coding must be a list of Codings", expression=f"{name}.coding")
            for i, coding in enumerate(codings):
                check_coding(coding, f"{name}.coding[{i}]")
            if not isinstance(p.value.get("text", ""), str):
                raise BadRequest(f"{name}.text must be a string", expression=f"{name}.text")
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


def check_coding(value: Any, where: str) -> dict[str, Any]:
    """A Coding's shape (an object whose system, version, code, display are strings); else 400."""
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a Coding (a JSON object)", expression=where)
    for key in CODING_TEXT_FIELDS:
        if key in value and not isinstance(value[key], str):
            raise BadRequest(f"{where}.{key} must be a string", expression=f"{where}.{key}")
    return value


def check_text(name: str, value: Any) -> None:
    """400 for a control character (a NUL, ...) in a parameter value: FHIR strings forbid them."""
    if isinstance(value, str):
        if _CONTROL_CHARS.search(value):
            raise BadRequest(f"The parameter '{name}' contains a control character, which FHIR "
                             "strings may not hold", expression=name)
    elif isinstance(value, dict):
        for item in value.values():
            check_text(name, item)
    elif isinstance(value, list):
        for item in value:
            check_text(name, item)


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
        check_text(name, p.value)
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
    for k, v in items:
        check_text(k, v)
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
    use_supplements: list[str] = field(default_factory=list)


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
    return LookupRequest(system, code, version, bag.text("displayLanguage"), props, bag.text("date"),
                         bag.texts("useSupplement"))


# -- ValueSet/$expand -------------------------------------------------------------------------

# Parameters an expansion echoes in expansion.parameter (R4 $expand: "parameters used").
EXPAND_ECHOED = (
    "activeOnly", "count", "offset", "filter", "includeDesignations", "designation",
    "includeDefinition", "displayLanguage", "excludeNested", "excludeNotForUI",
    "excludePostCoordinated", "system-version", "check-system-version",
    "force-system-version", "default-valueset-version",
)


@dataclass
class ExpandRequest:
    """ValueSet/$expand inputs."""

    url: str | None = None
    value_set: dict[str, Any] | None = None
    value_set_version: str | None = None
    text_filter: str | None = None
    count: int | None = None
    offset: int | None = None
    active_only: bool = False
    include_designations: bool = False
    designations: list[str] = field(default_factory=list)
    include_definition: bool = False
    display_language: str | None = None
    exclude_nested: bool | None = None
    exclude_not_for_ui: bool = False
    properties: list[str] = field(default_factory=list)
    system_versions: dict[str, str] = field(default_factory=dict)
    check_versions: dict[str, str] = field(default_factory=dict)
    force_versions: dict[str, str] = field(default_factory=dict)
    default_valueset_versions: dict[str, str] = field(default_factory=dict)
    echo: list[dict[str, Any]] = field(default_factory=list)  # expansion.parameter entries
    use_supplements: list[str] = field(default_factory=list)  # useSupplement canonicals
    versions_match: bool | None = None  # versionsMatch (None: not sent)


def canonical_map(bag: ParamBag, name: str) -> dict[str, str]:
    """'url|version' values of a repeating parameter as {url: version}; 400 without a version."""
    out: dict[str, str] = {}
    for value in bag.texts(name):
        url, sep, version = value.partition("|")
        if not sep or not url or not version:
            raise BadRequest(f"The parameter '{name}' must be 'url|version', not '{value}'", expression=name)
        out[url] = version
    return out


_ECHO_KEYS = {"count": "valueInteger", "offset": "valueInteger", "filter": "valueString",
              "displayLanguage": "valueCode", "designation": "valueString"}


def _echo(bag: ParamBag) -> list[dict[str, Any]]:
    """The request parameters an expansion reports, typed as tx.fhir.org reports them."""
    out: list[dict[str, Any]] = []
    for p in bag.params:
        if p.name not in EXPAND_ECHOED or p.name.endswith("-version"):
            continue  # version parameters are reported only when they applied (by the engine)
        if p.name in _ECHO_KEYS:
            key = _ECHO_KEYS[p.name]
        elif p.name.endswith("-version"):
            key = "valueUri"
        else:
            key = "valueBoolean"
        value: Any = p.value
        if key == "valueBoolean":
            value = bag.boolean(p.name)
        elif key == "valueInteger":
            value = bag.integer(p.name)
        out.append({"name": p.name, key: value})
    return out


def expand_request(bag: ParamBag) -> ExpandRequest:
    """Parse $expand parameters (strict: count=abc or a repeated url is a 400)."""
    props: list[str] = []
    for p in bag.texts("property"):
        props.extend(x.strip() for x in p.split(",") if x.strip())
    return ExpandRequest(
        url=bag.text("url"),
        value_set=bag.resource("valueSet"),
        value_set_version=bag.text("valueSetVersion"),
        text_filter=bag.text("filter"),
        count=bag.integer("count"),
        offset=bag.integer("offset"),
        active_only=bool(bag.boolean("activeOnly")),
        include_designations=bool(bag.boolean("includeDesignations")),
        designations=bag.texts("designation"),
        include_definition=bool(bag.boolean("includeDefinition")),
        display_language=bag.text("displayLanguage"),
        exclude_nested=bag.boolean("excludeNested"),
        exclude_not_for_ui=bool(bag.boolean("excludeNotForUI")),
        properties=props,
        system_versions=canonical_map(bag, "system-version"),
        check_versions=canonical_map(bag, "check-system-version"),
        force_versions=canonical_map(bag, "force-system-version"),
        default_valueset_versions=canonical_map(bag, "default-valueset-version"),
        echo=_echo(bag),
        use_supplements=bag.texts("useSupplement"),
        versions_match=bag.boolean("versionsMatch"),
    )


# -- $validate-code ---------------------------------------------------------------------------


@dataclass
class ValidateCodeRequest:
    """CodeSystem/$validate-code and ValueSet/$validate-code inputs.

    The thing validated is always held as a CodeableConcept (`coded`); `mode` says how it was
    sent ('code', 'coding' or 'codeableConcept'), which decides the issue paths.
    """

    mode: str
    coded: dict[str, Any]
    url: str | None = None
    value_set: dict[str, Any] | None = None
    value_set_version: str | None = None
    code_system: dict[str, Any] | None = None
    version: str | None = None  # CodeSystem/$validate-code: the code system version
    display_language: str | None = None
    abstract_ok: bool = True
    active_only: bool = False
    infer_system: bool = False
    lenient_display: bool = False
    membership_only: bool = False
    date: str | None = None
    system_versions: dict[str, str] = field(default_factory=dict)
    check_versions: dict[str, str] = field(default_factory=dict)
    force_versions: dict[str, str] = field(default_factory=dict)
    default_valueset_versions: dict[str, str] = field(default_factory=dict)
    use_supplements: list[str] = field(default_factory=list)


def _coded_value(bag: ParamBag, for_code_system: bool) -> tuple[str, dict[str, Any]] | None:
    """(mode, CodeableConcept) from codeableConcept, coding, or code (+system/url)."""
    cc = bag.codeable_concept("codeableConcept")
    if cc is not None:
        return "codeableConcept", cc
    coding = bag.coding("coding")
    if coding is not None:
        return "coding", {"coding": [coding]}
    code = bag.text("code")
    if code is None:
        return None
    if for_code_system:
        system, version = bag.text("url") or bag.text("system"), bag.text("version")
        inline = bag.resource("codeSystem") if bag.has("codeSystem") else None
        if not system and inline is not None:  # R4: the code is in the codeSystem sent
            system, version = inline.get("url"), version or inline.get("version")
    else:
        system, version = bag.text("system"), bag.text("systemVersion")
    if not system and not bag.boolean("inferSystem") and not for_code_system:
        return None
    out: dict[str, Any] = {"code": code}
    if system:
        out["system"] = system
    if version:
        out["version"] = version
    display = bag.text("display")
    if display:
        out["display"] = display
    return "code", {"coding": [out]}


def validate_code_request(bag: ParamBag, for_code_system: bool) -> ValidateCodeRequest:
    """Parse $validate-code parameters; 400 when nothing to validate was sent."""
    found = _coded_value(bag, for_code_system)
    if found is None:
        raise BadRequest(
            "Unable to find code to validate (looked for coding | codeableConcept | code+system "
            "| code+inferSystem in parameters",
        )
    mode, coded = found
    return ValidateCodeRequest(
        mode=mode, coded=coded, url=bag.text("url"),
        value_set=None if for_code_system else bag.resource("valueSet"),
        value_set_version=bag.text("valueSetVersion"),
        code_system=bag.resource("codeSystem") if for_code_system else None,
        version=bag.text("version") if for_code_system else None,
        display_language=bag.text("displayLanguage"),
        abstract_ok=bag.boolean("abstract") is not False,
        active_only=bool(bag.boolean("activeOnly")),
        infer_system=bool(bag.boolean("inferSystem")),
        lenient_display=bool(bag.boolean("lenient-display-validation")),
        membership_only=bool(bag.boolean("valueset-membership-only")),
        date=bag.text("date"),
        system_versions=canonical_map(bag, "system-version"),
        check_versions=canonical_map(bag, "check-system-version"),
        force_versions=canonical_map(bag, "force-system-version"),
        default_valueset_versions=canonical_map(bag, "default-valueset-version"),
        use_supplements=bag.texts("useSupplement"),
    )
