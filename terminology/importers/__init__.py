"""Importers: licensed distribution files -> the in-memory CPT release and its database."""
