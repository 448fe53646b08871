"""Everything that knows AMA CPT, and nothing else.

CPT support is six pieces:
- release.py: the release model (concepts, designations, properties) and tx.fhir.org's
  SQLite format (tables Information, Concepts, Designations, Properties), read and written;
- provider.py: `CptProvider`, the CodeSystemProvider over a release (a database or the
  bundled fragment), with CPT's filters and copyright;
- rules.py: modifier expressions (`72126:26`) and the two rule sets that make one valid
  (`cpt`, the default, from CPT/CMS guidance; `tx.fhir.org`, its rules exactly);
- facets.py: the imaging facets (modality, body region, contrast) derived from descriptors;
- concept_maps.py: the ConceptMaps derived from the facets at load (contrast alternatives,
  CPT to DICOM modality), registered by terminology.content like any other ConceptMap;
- ama_import.py and synthetic.py: AMA distribution files -> a release database, and the
  generator of a full-size synthetic release for tests and benchmarks.

The rest of the server reaches CPT only through the provider (chosen in
terminology.content) and the CLI (`terminology import-cpt`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminology.registry import Registry

CPT_URL = "http://www.ama-assn.org/go/cpt"

__all__ = ["CPT_URL", "served_releases"]


def served_releases(registry: Registry) -> str:
    """The CPT releases a registry serves, oldest first: "2025 (complete, 11071 codes and
    modifiers)"; empty when it serves none. The start-up log and the CapabilityStatement say it."""
    out = []
    for version in registry.code_system_versions(CPT_URL):
        provider = registry.code_system(CPT_URL, version)
        if provider is not None:
            out.append(f"{version} ({provider.content}, {provider.total()} codes and modifiers)")
    return "; ".join(out)
