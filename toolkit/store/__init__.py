"""Graph stores behind one interface: LadybugDB (embedded, default) and Neo4j 5."""
from __future__ import annotations

import os

from toolkit.store.base import Store, StoreError

DEFAULT_STORE = "apd.lbug"
_NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


def store_location(location: str | None = None) -> str:
    """`--store`, else `APD_STORE`, else `./apd.lbug`."""
    return location or os.environ.get("APD_STORE") or DEFAULT_STORE


def open_store(location: str | None = None, read_only: bool = False, create: bool = True, wait: float = 0.0) -> Store:
    """Open the store at a file path (LadybugDB) or a neo4j:// / bolt:// URI (Neo4j).

    Readers: `read_only=True` (never creates a file; a missing one is `no store at PATH`).
    Writers that need an existing store: `create=False`. `wait` is how long a reader or a
    writer waits for another process's lock on a LadybugDB file, which refuses readers too
    while a writer holds it (Neo4j serialises writers itself and never locks readers out).
    """
    where = store_location(location)
    if where.startswith(_NEO4J_SCHEMES):
        from toolkit.store.neo4j import Neo4jStore

        return Neo4jStore(where, read_only=read_only)
    if "://" in where:
        raise StoreError(f"unsupported store URI {where}: use a file path, neo4j:// or bolt://")
    from toolkit.store.ladybug import LadybugStore

    return LadybugStore(where, read_only=read_only, create=create, wait=wait)


__all__ = ["Store", "StoreError", "open_store", "store_location", "DEFAULT_STORE"]
