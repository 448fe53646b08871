"""Authored resources: schema, migrations, every version, and the change feed.

SQLite (a file under the data directory, WAL mode) by default; PostgreSQL when replicas must
share writes. The store knows nothing about the registry or HTTP: it keeps versions and tells
followers what changed (feed.py); content.py puts stored resources into the registry.
"""

from terminology.store.store import (
    NotStored,
    Store,
    StoredVersion,
    StoreError,
    UniqueCanonical,
    VersionConflict,
    store_url,
)

__all__ = ["NotStored", "Store", "StoreError", "StoredVersion", "UniqueCanonical",
           "VersionConflict", "store_url"]
