"""Search as you type: the $expand text filter over each code system's all-codes value set.

A code system's all-codes value set is the one it declares (CodeSystem.valueSet) or a loaded
value set that includes the whole system and nothing else; failing both, an inline value set
of that shape is POSTed, as a client would. Either way $expand does the matching.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminology.errors import FhirError
from terminology.http.web.calls import FhirCall, operation, run
from terminology.providers.base import CodeSystemProvider
from terminology.registry import Registry

PAGE = 50  # matches shown per code system; the total says how many more there are


@dataclass
class Hit:
    """One search result: a code and its display."""

    code: str
    display: str | None


@dataclass
class SearchGroup:
    """The matches in one code system, with the $expand request that found them."""

    provider: CodeSystemProvider
    call: FhirCall
    total: int
    hits: list[Hit] = field(default_factory=list)
    error: str | None = None  # why this code system could not be searched (too costly...)

    @property
    def label(self) -> str:
        """The code system's title (or name or url) and version."""
        p = self.provider
        name = p.title or p.name or p.url
        return f"{name} ({p.version})" if p.version else name


def _includes_whole_system(value_set: dict[str, Any], provider: CodeSystemProvider) -> bool:
    compose = value_set.get("compose") or {}
    includes = compose.get("include", [])
    if compose.get("exclude") or len(includes) != 1:
        return False
    include = includes[0]
    return (set(include) <= {"system", "version"} and include.get("system") == provider.url
            and include.get("version") in (None, provider.version))


def all_codes_value_set(registry: Registry, provider: CodeSystemProvider) -> str | None:
    """The url of a loaded value set holding every code of `provider`, if there is one."""
    declared = provider.resource.get("valueSet")
    if declared and registry.value_set(declared) is not None:
        return str(declared)
    for value_set in registry.resources("ValueSet"):
        if value_set.get("url") and _includes_whole_system(value_set, provider):
            return str(value_set["url"])
    return None


def expand_call(registry: Registry, provider: CodeSystemProvider, text: str,
                count: int = PAGE) -> FhirCall:
    """The $expand request that searches `provider` for `text`."""
    url = all_codes_value_set(registry, provider)
    if url is not None:
        # Several versions loaded: say which one, or $expand would take the newest.
        pin = (f"{provider.url}|{provider.version}"
               if provider.version and len(registry.code_system_versions(provider.url)) > 1 else None)
        return operation("ValueSet", "expand", ("url", url), ("filter", text),
                         ("count", str(count)), ("system-version", pin))
    include: dict[str, Any] = {"system": provider.url}
    if provider.version:
        include["version"] = provider.version
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": {"resourceType": "ValueSet", "status": "active",
                                          "compose": {"include": [include]}}},
        {"name": "filter", "valueString": text},
        {"name": "count", "valueInteger": count},
    ]}
    return FhirCall("/fhir/ValueSet/$expand", body=body)


def search(registry: Registry, text: str, system: str | None = None) -> list[SearchGroup]:
    """Matches for `text` in every loaded code system (or only `system`), by code system."""
    groups = []
    for provider in registry.providers():
        if system and provider.url != system:
            continue
        call = expand_call(registry, provider, text)
        try:
            expansion = run(call).get("expansion", {})
        except FhirError as e:  # one code system failing does not hide the others' matches
            groups.append(SearchGroup(provider, call, 0, error="; ".join(i.text for i in e.issues)))
            continue
        hits = [Hit(c["code"], c.get("display")) for c in expansion.get("contains", [])
                if c.get("system") == provider.url]
        if hits:
            groups.append(SearchGroup(provider, call, int(expansion.get("total", len(hits))), hits))
    return groups
