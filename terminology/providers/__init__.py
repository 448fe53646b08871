"""Code system providers: one class per kind of code system, chosen by make_provider.

The concrete providers are imported where they are chosen, so that importing the protocol
(`terminology.providers.base`) never pulls in a provider and its dependencies (the generic
filters in terminology.filters use the protocol, and the FHIR provider uses those filters).
"""

from __future__ import annotations

from typing import Any

from terminology.cpt_data import CPT_URL
from terminology.providers.base import CodeSystemProvider


def make_provider(resource: dict[str, Any]) -> CodeSystemProvider:
    """The provider for a CodeSystem resource (CPT gets the CPT provider)."""
    if resource.get("url") == CPT_URL:
        from terminology.providers.cpt import CptProvider

        return CptProvider.from_codesystem(resource)
    from terminology.providers.fhir import FhirCodeSystemProvider

    return FhirCodeSystemProvider(resource)


__all__ = ["CPT_URL", "CodeSystemProvider", "make_provider"]
