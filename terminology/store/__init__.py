"""Authored resources: schema, migrations, every version, and the change feed.

SQLite (a file under the data directory, WAL mode) by default; PostgreSQL when replicas must
share writes. The store knows nothing about the registry or HTTP: it keeps versions and tells
followers what changed (feed.py); content.py puts stored resources into the registry.
The database code (store.py, schema.py) is imported only where a store is opened; model.py
holds what the rest of the server needs to know of it.
"""

from terminology.store.model import (
    NotStored,
    StoredVersion,
    StoreError,
    UniqueCanonical,
    VersionConflict,
    store_url,
)

__all__ = ["NotStored", "StoreError", "StoredVersion", "UniqueCanonical", "VersionConflict",
           "store_url"]
