"""Canonical resources by url|version, with request-scoped overlays for tx-resource.

The loaded registry is built once at start-up and never changed by a request. A request that
carries `tx-resource` parameters gets an overlay: a child registry that sees its own resources
first and the loaded content underneath. A tx-resource never replaces a code system the server
itself holds (issue: hardening), so a request cannot change what `$lookup` of CPT answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from terminology.providers.base import CodeSystemProvider

_NUM = re.compile(r"(\d+)")


def version_key(version: str | None) -> tuple[Any, ...]:
    """A sort key that orders versions the way people read them (1.10 after 1.9)."""
    if version is None:
        return ()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _NUM.split(version) if p)


def split_canonical(url: str) -> tuple[str, str | None]:
    """'url|version' -> (url, version)."""
    if "|" in url:
        base, _, version = url.partition("|")
        return base, version or None
    return url, None


def version_matches(pattern: str, version: str | None) -> bool:
    """Whether `version` satisfies `pattern` ('1.0.x' / '1.x' wildcards allowed)."""
    if version is None:
        return False
    if pattern == version:
        return True
    if "x" not in pattern and "*" not in pattern:
        return False
    want = pattern.split(".")
    have = version.split(".")
    for i, part in enumerate(want):
        if part in ("x", "*"):
            continue
        if i >= len(have) or have[i] != part:
            return False
    return True


class _Canonicals:
    """url -> {version -> item}, in load order."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str | None, Any]] = {}
        self._newest: dict[str, Any] = {}  # url -> the item of its newest version

    def add(self, url: str, version: str | None, item: Any) -> None:
        self.items.setdefault(url, {})[version] = item
        self._newest.pop(url, None)

    def get(self, url: str, version: str | None) -> Any | None:
        # the memo first, then the items: a replace() in between leaves this reader writing
        # into the memo it discards, never a stale newest into the fresh one
        newest = self._newest
        if version is None:
            found = newest.get(url)
            if found is not None:
                return found
        versions = self.items.get(url)
        if not versions:
            return None
        if version is None:
            found = newest[url] = versions[max(versions, key=version_key)]
            return found
        if version in versions:
            return versions[version]
        matching = [v for v in versions if version_matches(version, v)]
        return versions[max(matching, key=version_key)] if matching else None

    def versions(self, url: str) -> list[str | None]:
        return sorted(self.items.get(url, {}), key=version_key)

    def replace(self, url: str, version: str | None, old: Any, new: Any) -> None:
        """Swap `old` (when it is the item held) for `new` (None: remove), copy-on-write.

        Request threads read these dicts without a lock; building new ones and assigning
        them means a reader iterating sees the old dict or the new one, never a half-change.
        """
        held = dict(self.items.get(url, {}))
        if old is not None and held.get(version) is old:
            del held[version]
        if new is not None:
            held[version] = new
        items = dict(self.items)
        if held:
            items[url] = held
        else:
            items.pop(url, None)
        self.items = items
        self._newest = {}  # the newest version of `url` may have changed


class Registry:
    """Code systems (providers), value sets and concept maps by canonical url and version."""

    def __init__(self, parent: Registry | None = None) -> None:
        self.parent = parent
        self._code_systems = _Canonicals()
        self._value_sets = _Canonicals()
        self._concept_maps = _Canonicals()
        self._all_concept_maps: list[dict[str, Any]] = []  # every map, even two with one url|version
        self._by_id: dict[tuple[str, str], dict[str, Any]] = {}
        self._supplements = _Canonicals()  # by the supplement's own url
        self._deleted: frozenset[tuple[str, str]] = frozenset()  # authored, then deleted (410)

    # -- adding ----------------------------------------------------------------------------

    def add_code_system(self, provider: CodeSystemProvider) -> None:
        """Register a provider under its url and version."""
        self._code_systems.add(provider.url, provider.version, provider)
        rid = provider.resource.get("id")
        if rid and self.parent is None:
            self._by_id[("CodeSystem", rid)] = provider.resource

    def add_supplement(self, resource: dict[str, Any]) -> None:
        """Register a CodeSystem with content=supplement under the system it supplements."""
        self._supplements.add(resource.get("url", ""), resource.get("version"), resource)

    def add_value_set(self, resource: dict[str, Any]) -> None:
        """Register a ValueSet resource dict."""
        self._value_sets.add(resource.get("url", ""), resource.get("version"), resource)
        if resource.get("id") and self.parent is None:
            self._by_id[("ValueSet", resource["id"])] = resource

    def add_concept_map(self, resource: dict[str, Any]) -> None:
        """Register a ConceptMap resource dict."""
        self._concept_maps.add(resource.get("url", ""), resource.get("version"), resource)
        self._all_concept_maps.append(resource)
        if resource.get("id") and self.parent is None:
            self._by_id[("ConceptMap", resource["id"])] = resource

    def replace_resource(self, resource_type: str, rid: str, resource: dict[str, Any] | None,
                         provider: CodeSystemProvider | None = None) -> None:
        """Put (or, with None, remove) the resource with this type and id: authored content.

        A CodeSystem comes with its provider (a supplement without one). Only the old
        version's entries are touched, copy-on-write, while requests keep reading.
        """
        key = (resource_type, rid)
        old = self._by_id.get(key)
        if old is not None:
            self._unplace(resource_type, old)
        if resource is not None:
            self._place(resource_type, resource, provider)
        by_id = dict(self._by_id)
        if resource is None:
            by_id.pop(key, None)
            self._deleted = self._deleted | {key}
        else:
            by_id[key] = provider.resource if provider is not None else resource
            self._deleted = self._deleted - {key}
        self._by_id = by_id

    def deleted(self, resource_type: str, rid: str) -> bool:
        """Whether resource_type/rid was authored here and then deleted (a read is 410)."""
        root = self
        while root.parent is not None:
            root = root.parent
        return (resource_type, rid) in root._deleted

    def _table(self, resource_type: str, resource: dict[str, Any]) -> _Canonicals:
        if resource_type == "CodeSystem":
            return self._supplements if resource.get("content") == "supplement" else self._code_systems
        return self._value_sets if resource_type == "ValueSet" else self._concept_maps

    def _unplace(self, resource_type: str, resource: dict[str, Any]) -> None:
        """Remove one resource (a code system by its provider's resource) from its table."""
        url, version = resource.get("url", ""), resource.get("version")
        table = self._table(resource_type, resource)
        held = table.items.get(url, {}).get(version)
        if held is resource or getattr(held, "resource", None) is resource:
            table.replace(url, version, held, None)
        if resource_type == "ConceptMap":
            self._all_concept_maps = [m for m in self._all_concept_maps if m is not resource]

    def _place(self, resource_type: str, resource: dict[str, Any],
               provider: CodeSystemProvider | None) -> None:
        """Add one resource (a code system as its provider) to its table."""
        url, version = resource.get("url", ""), resource.get("version")
        table = self._table(resource_type, resource)
        item: Any = provider if provider is not None else resource
        table.replace(url, version, None, item)
        if resource_type == "ConceptMap":
            self._all_concept_maps = [*self._all_concept_maps, resource]

    # -- finding ---------------------------------------------------------------------------

    def code_system(self, url: str, version: str | None = None) -> CodeSystemProvider | None:
        """The provider for url (and version; newest when None), overlay first."""
        url, embedded = split_canonical(url)
        version = version or embedded
        found = self._code_systems.get(url, version)
        if found is None and self.parent is not None:
            return self.parent.code_system(url, version)
        return found

    def has_code_system(self, url: str) -> bool:
        """Whether any version of `url` is known (here or underneath)."""
        url, _ = split_canonical(url)
        if url in self._code_systems.items:
            return True
        return self.parent is not None and self.parent.has_code_system(url)

    def code_system_versions(self, url: str) -> list[str | None]:
        """Every known version of a code system, oldest first."""
        own = self._code_systems.versions(url)
        below = self.parent.code_system_versions(url) if self.parent else []
        return sorted(set(own) | set(below), key=version_key)

    def supplement(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """The supplement CodeSystem whose own url (and version) is given, overlay first."""
        url, embedded = split_canonical(url)
        found = self._supplements.get(url, version or embedded)
        if found is None and self.parent is not None:
            return self.parent.supplement(url, version or embedded)
        return found

    def value_set(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """The ValueSet resource for url (and version; newest when None), overlay first.

        An implicit value set url (`{code system}?fhir_vs[=isa/{code}]`) that no resource
        defines is answered with a ValueSet built for it (see `implicit_value_set`).
        """
        url, embedded = split_canonical(url)
        version = version or embedded
        found = self._explicit_value_set(url, version)
        if found is None and IMPLICIT_VS_MARK in url:
            return implicit_value_set(self, url, version)
        return found

    def _explicit_value_set(self, url: str, version: str | None) -> dict[str, Any] | None:
        found = self._value_sets.get(url, version)
        if found is None and self.parent is not None:
            return self.parent._explicit_value_set(url, version)
        return found

    def value_set_versions(self, url: str) -> list[str | None]:
        """Every known version of a value set, oldest first."""
        own = self._value_sets.versions(url)
        below = self.parent.value_set_versions(url) if self.parent else []
        return sorted(set(own) | set(below), key=version_key)

    def concept_map(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """The ConceptMap for url (and version), overlay first."""
        url, embedded = split_canonical(url)
        found = self._concept_maps.get(url, version or embedded)
        if found is None and self.parent is not None:
            return self.parent.concept_map(url, version or embedded)
        return found

    def concept_maps(self) -> Iterator[dict[str, Any]]:
        """Every ConceptMap, overlay first ($translate searches them all)."""
        yield from self._all_concept_maps
        if self.parent is not None:
            yield from self.parent.concept_maps()

    def by_id(self, resource_type: str, rid: str) -> dict[str, Any] | None:
        """A loaded resource by type and id (the server's own content only)."""
        root = self
        while root.parent is not None:
            root = root.parent
        return root._by_id.get((resource_type, rid))

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """Every loaded resource of a type (server content), in load order."""
        root = self
        while root.parent is not None:
            root = root.parent
        return [r for (t, _), r in root._by_id.items() if t == resource_type]

    def providers(self) -> list[CodeSystemProvider]:
        """Every loaded code system provider (server content)."""
        return [p for vs in self._code_systems.items.values() for p in vs.values() if p]

    def overlay(self) -> Registry:
        """A request-scoped child registry; adding to it never changes this one."""
        return Registry(parent=self)


IMPLICIT_VS_MARK = "?fhir_vs"


def implicit_value_set(registry: Registry, url: str, version: str | None) -> dict[str, Any] | None:
    """The implicit value set (FHIR R4 "Implicit value sets") `url` names, or None.

    `{cs}?fhir_vs` is every code of the code system; `{cs}?fhir_vs=isa/{code}` the code and
    its descendants (a filter `concept is-a code`; on a flat code system just the code). The
    value set's version is the code system's: a version the code system lacks names nothing.
    Everything else (expansion, membership, caps) treats the result as any other compose.
    """
    system, _, query = url.partition("?")
    provider = registry.code_system(system, version)
    if provider is None:
        return None
    include: dict[str, Any] = {"system": provider.url}
    if provider.version:
        include["version"] = provider.version
    if query != "fhir_vs":
        kind, _, code = query.removeprefix("fhir_vs=").partition("/")
        if not query.startswith("fhir_vs=") or kind != "isa" or not code:
            return None  # refset/..., a bare `isa`: not a form this server defines
        if provider.hierarchical:
            include["filter"] = [{"property": "concept", "op": "is-a", "value": code}]
        else:
            include["concept"] = [{"code": code}]
    name = (provider.name or "CodeSystem") + (" all codes" if query == "fhir_vs" else f" is-a {code}")
    out: dict[str, Any] = {"resourceType": "ValueSet", "url": url, "name": name,
                           "status": provider.resource.get("status", "active"),
                           "compose": {"include": [include]}}
    if provider.version:
        out["version"] = provider.version
    return out
