"""Finding what a compose names: value sets (imports and the default-valueset-version), the
code system version an include uses (force/check/system-version rules) and its provider,
and the include's filters compiled against that provider.
"""

from __future__ import annotations

from typing import Any

from terminology.errors import FhirError, NotFound, Unprocessable
from terminology.providers.base import CodeSystemProvider, ConceptFilter
from terminology.registry import Registry, split_canonical, version_matches
from terminology.valuesets.options import ComposeOptions

FILTER_OP_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ValueSet.compose.include.filter.op"


HIERARCHY_OPS = frozenset({"is-a", "descendent-of"})


def resolve_value_set(
    registry: Registry, url: str, version: str | None, options: ComposeOptions | None = None
) -> dict[str, Any]:
    """The ValueSet for url (+version, or the default-valueset-version); NotFound otherwise."""
    base, embedded = split_canonical(url)
    version = version or embedded
    if version is None and options is not None:
        version = options.default_valueset_versions.get(base)
    found = registry.value_set(base, version)
    if found is None:
        shown = f"{base}|{version}" if version else base
        raise NotFound(
            f"A definition for the value Set '{shown}' could not be found",
            message_id="Unable_to_resolve_value_Set_", tx_code="not-found",
        )
    return found


def resolve_import(
    registry: Registry, ref: str, options: ComposeOptions
) -> dict[str, Any]:
    """An imported value set (compose.include.valueSet); NotFound names the import."""
    base, version = split_canonical(ref)
    version = version or options.default_valueset_versions.get(base)
    found = registry.value_set(base, version)
    if found is not None:
        return found
    if version:
        raise NotFound(
            f"Unable to find included value set '{base}' version '{version}'",
            message_id="VS_EXP_IMPORT_UNK_PINNED", tx_code="not-found",
        )
    raise NotFound(
        f"Unable to find included value set '{base}'",
        message_id="VS_EXP_IMPORT_UNK", tx_code="not-found",
    )


def choose_version(
    system: str, include_version: str | None, options: ComposeOptions,
    coding_version: str | None = None, used: list[tuple[str, str]] | None = None,
) -> str | None:
    """The code system version an include uses.

    force-system-version beats everything; then the include's own version, the coding's,
    check-system-version (its pattern picks the newest matching version), system-version,
    and finally the newest. `used` collects the version parameters that made the choice.
    """
    def note(name: str, version: str) -> str:
        if used is not None and (name, f"{system}|{version}") not in used:
            used.append((name, f"{system}|{version}"))
        return version

    if system in options.force_versions:
        return note("force-system-version", options.force_versions[system])
    if include_version or coding_version:
        return include_version or coding_version
    if system in options.check_versions:
        return note("check-system-version", options.check_versions[system])
    if system in options.system_versions:
        return note("system-version", options.system_versions[system])
    return None


def _known_versions(registry: Registry, system: str) -> str:
    versions = [v for v in registry.code_system_versions(system) if v]
    return " or ".join(versions) if versions else "(none)"


def resolve_include_provider(
    registry: Registry, system: str, version: str | None, *, purpose: str = "expanded"
) -> CodeSystemProvider:
    """The provider for an include's system|version, or a NotFound worded as tx.fhir.org's.

    purpose: 'expanded' ($expand: "...so the value set cannot be expanded") or 'validated'.
    """
    provider = registry.code_system(system, version)
    if provider is not None:
        return provider
    what = "the value set cannot be expanded" if purpose == "expanded" else "the code cannot be validated"
    if version is not None and registry.has_code_system(system):
        raise NotFound(
            f"A definition for CodeSystem '{system}' version '{version}' could not be found, "
            f"so {what}. Valid versions: {_known_versions(registry, system)}",
            message_id="UNKNOWN_CODESYSTEM_VERSION_EXP" if purpose == "expanded" else "UNKNOWN_CODESYSTEM_VERSION",
            tx_code="not-found",
        )
    raise NotFound(
        f"A definition for CodeSystem '{system}' could not be found, so {what}",
        message_id="UNKNOWN_CODESYSTEM_EXP" if purpose == "expanded" else "UNKNOWN_CODESYSTEM",
        tx_code="not-found",
    )


def check_version(provider: CodeSystemProvider, options: ComposeOptions) -> None:
    """check-system-version: the version used must match the one the client requires."""
    wanted = options.check_versions.get(provider.url)
    if wanted is None or provider.url in options.force_versions:
        return
    if version_matches(wanted, provider.version) or wanted == provider.version:
        return
    raise Unprocessable(
        f"The version '{provider.version}' is not allowed for system '{provider.url}': "
        f"required to be '{wanted}' by a version-check parameter",
        code="exception", message_id="VALUESET_VERSION_CHECK", tx_code="version-error",
    )


def filter_op(raw: dict[str, Any]) -> str | None:
    """A filter's operator, including R5 operators sent as the R4 `_op` extension."""
    op = raw.get("op")
    if op:
        return str(op)
    for ext in (raw.get("_op") or {}).get("extension", []):
        if ext.get("url") == FILTER_OP_EXT:
            return ext.get("valueCode")
    return None


def compile_filters(
    provider: CodeSystemProvider, include: dict[str, Any], where: str
) -> list[ConceptFilter]:
    """The include's filters compiled against `provider`; 400 for a malformed filter."""
    out = []
    for j, raw in enumerate(include.get("filter", [])):
        prop, op, value = raw.get("property"), filter_op(raw), raw.get("value")
        if value is None or value == "":
            raise FhirError(
                f"The system {provider.url} filter with property = {prop}, op = {op} has no value",
                expression=f"{where}.filter[{j}]", tx_code="vs-invalid",
                message_id="UNABLE_TO_HANDLE_SYSTEM_FILTER_WITH_NO_VALUE",
            )
        if not prop or not op:
            raise FhirError(
                f"The filter {where}.filter[{j}] needs a property and an op",
                expression=f"{where}.filter[{j}]", tx_code="vs-invalid",
            )
        out.append(provider.filter(str(prop), op, str(value)))
    return out
