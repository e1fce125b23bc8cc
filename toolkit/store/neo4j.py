"""Neo4j 5 through the official driver: the production path, browsable in Neo4j Browser.

Kept thin on purpose: everything it runs is a file in `cypher/` (shared or `neo4j/`).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Mapping

import pandas as pd

from toolkit.store import queries
from toolkit.store.base import Store, StoreError, plain_strings
from toolkit.store.schema import RELS

BATCH = 10_000
# The driver logs connection failures itself; ours is the one line the user sees.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


class Neo4jStore(Store):
    backend = "neo4j"

    def __init__(self, uri: str, read_only: bool = False):
        import neo4j
        from neo4j import exceptions as nx

        self._neo4j = neo4j
        self.location = uri
        self.read_only = read_only
        user = os.environ.get("APD_NEO4J_USER", "neo4j")
        password = os.environ.get("APD_NEO4J_PASSWORD", "")
        self._db = os.environ.get("APD_NEO4J_DATABASE") or None
        try:
            self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password))
            self._driver.verify_connectivity()
        except nx.AuthError:
            raise StoreError(
                f"Neo4j at {uri} refused the credentials of user {user!r}: set APD_NEO4J_USER / APD_NEO4J_PASSWORD"
            ) from None
        except (nx.ServiceUnavailable, OSError, ValueError, nx.ConfigurationError) as exc:
            raise StoreError(f"cannot reach Neo4j at {uri}: {' '.join(str(exc).split())[:200]}") from None
        if not read_only:
            with self._errors():
                for stmt in queries.statements(queries.body("neo4j/schema")):
                    self._driver.execute_query(stmt, database_=self._db)

    @contextmanager
    def _errors(self, failed: str = "query failed"):
        """Server failures as one line: a missing database, a lost connection, a bad statement."""
        from neo4j import exceptions as nx

        try:
            yield
        except nx.Neo4jError as exc:
            if "DatabaseNotFound" in (exc.code or ""):
                db = f"database {self._db!r}" if self._db else "its default database"
                raise StoreError(f"Neo4j at {self.location} has no {db}: set APD_NEO4J_DATABASE to one it has") from None
            raise StoreError(f"{failed}: {' '.join(str(exc.message).split())}") from None
        except (nx.ServiceUnavailable, nx.SessionExpired, nx.SessionError, OSError) as exc:
            raise StoreError(f"lost the connection to Neo4j at {self.location}: {' '.join(str(exc).split())[:160]}") from None

    def _session(self, mode: str):
        return self._driver.session(database=self._db, default_access_mode=mode)

    def _run(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        with self._errors(), self._session(self._neo4j.WRITE_ACCESS) as s:
            return s.execute_write(_collect, text, dict(params or {}))

    def read(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Refuses write clauses before sending (not every Bolt server enforces read access
        mode), and maps the server's own refusal (a writing procedure) to the same line."""
        from neo4j import exceptions as nx

        refusal = "refused: `apd cypher` is read-only; writes go through apd commands"
        if queries.writes(text):
            raise StoreError(refusal)
        try:
            with self._session(self._neo4j.READ_ACCESS) as s:
                return s.execute_read(_collect, text, dict(params or {}))
        except nx.Neo4jError as exc:
            if "AccessMode" in (exc.code or "") or "read access mode" in (exc.message or ""):
                raise StoreError(refusal) from None
            with self._errors():
                raise
        except (nx.DriverError, OSError):
            with self._errors():
                raise

    def _write_all(self, steps: list[tuple[str, str, Any]]) -> None:
        if self.read_only:
            raise StoreError(f"store {self.location} is open read-only")
        with self._errors("write failed, nothing written"), self._session(self._neo4j.WRITE_ACCESS) as s:
            s.execute_write(_apply, steps)

    def close(self) -> None:
        self._driver.close()


def _collect(tx, text: str, params: dict) -> pd.DataFrame:
    result = tx.run(text, params)
    keys = list(result.keys())
    return plain_strings(pd.DataFrame([r.values() for r in result], columns=keys))


def _apply(tx, steps: list[tuple[str, str, Any]]) -> None:
    """All steps in one managed transaction; bulk frames as batched `UNWIND $rows`."""
    for kind, what, arg in steps:
        if kind == "stmt":
            tx.run(what, arg).consume()
            continue
        if kind == "nodes":
            text = queries.body("neo4j/create_nodes", table=what)
            rows = arg.to_dict("records")
        elif kind == "rels":
            rel = RELS[what]
            text = queries.body("neo4j/create_rels", table=what, src=rel.src, dst=rel.dst)
            props = arg.drop(columns=["src", "dst"]).to_dict("records")
            rows = [{"src": s, "dst": d, "props": p} for s, d, p in zip(arg["src"], arg["dst"], props)]
        else:  # update
            text = queries.body("neo4j/update_nodes", table=what)
            props = arg.drop(columns=["uid"]).to_dict("records")
            rows = [{"uid": u, "props": p} for u, p in zip(arg["uid"], props)]
        for start in range(0, len(rows), BATCH):
            tx.run(text, {"rows": rows[start : start + BATCH]}).consume()
