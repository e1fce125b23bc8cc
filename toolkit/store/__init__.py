"""Graph stores behind one interface: LadybugDB (embedded, default) and Neo4j 5."""
from __future__ import annotations

import os

from toolkit.store.base import Store, StoreError

DEFAULT_STORE = "apd.lbug"
_NEO4J_SCHEMES = ("neo4j://", "neo4j+s://", "neo4j+ssc://", "bolt://", "bolt+s://", "bolt+ssc://")


def store_location(location: str | None = None) -> str:
    """`--store`, else `APD_STORE`, else `./apd.lbug`."""
    return location or os.environ.get("APD_STORE") or DEFAULT_STORE


def open_store(location: str | None = None, read_only: bool = False) -> Store:
    """Open the store at a file path (LadybugDB) or a neo4j:// / bolt:// URI (Neo4j)."""
    where = store_location(location)
    if where.startswith(_NEO4J_SCHEMES):
        from toolkit.store.neo4j import Neo4jStore

        return Neo4jStore(where, read_only=read_only)
    if "://" in where:
        raise StoreError(f"unsupported store URI {where}: use a file path, neo4j:// or bolt://")
    from toolkit.store.ladybug import LadybugStore

    return LadybugStore(where, read_only=read_only)


__all__ = ["Store", "StoreError", "open_store", "store_location", "DEFAULT_STORE"]
