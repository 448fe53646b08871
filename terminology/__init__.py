"""FHIR R4 terminology server for CPT."""

__version__ = "0.1.0"
