"""Everything that knows AMA CPT, and nothing else.

CPT support is five pieces:
- release.py: the release model (concepts, designations, properties) and tx.fhir.org's
  SQLite format (tables Information, Concepts, Designations, Properties), read and written;
- provider.py: `CptProvider`, the CodeSystemProvider over a release (a database or the
  bundled fragment), with CPT's filters and copyright;
- rules.py: modifier expressions (`72126:26`) and the rules that make one valid;
- facets.py: the imaging facets (modality, body region, contrast) derived from descriptors;
- ama_import.py and synthetic.py: AMA distribution files -> a release database, and the
  generator of a full-size synthetic release for tests and benchmarks.

The rest of the server reaches CPT only through the provider (chosen in
terminology.content) and the CLI (`terminology import-cpt`).
"""

CPT_URL = "http://www.ama-assn.org/go/cpt"

__all__ = ["CPT_URL"]
