"""Code system providers: one class per kind of code system, chosen by make_provider."""

from __future__ import annotations

from typing import Any

from terminology.providers.base import CodeSystemProvider
from terminology.providers.fhir import FhirCodeSystemProvider

CPT_URL = "http://www.ama-assn.org/go/cpt"


def make_provider(resource: dict[str, Any]) -> CodeSystemProvider:
    """The provider for a CodeSystem resource (CPT gets the CPT provider)."""
    if resource.get("url") == CPT_URL:
        from terminology.providers.cpt import CptProvider  # imports cpt_data; kept lazy

        return CptProvider.from_codesystem(resource)
    return FhirCodeSystemProvider(resource)


__all__ = ["CPT_URL", "CodeSystemProvider", "FhirCodeSystemProvider", "make_provider"]
