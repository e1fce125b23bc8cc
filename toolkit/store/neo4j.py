"""Neo4j 5 through the official driver: the production path, browsable in Neo4j Browser.

Kept thin on purpose: everything it runs is a file in `cypher/` (shared or `neo4j/`).

Writes are bounded: no transaction holds more than BATCH rows, so a million-instance run
never sits whole in the server's transaction state. A run's writes are made atomic the same
way as LadybugDB's, by the PendingWrite marker (toolkit/store/pending.py): marker, then each
batch committing on its own, then the marker's removal; a cut-off write is rolled back by
the next writer. Neo4j has many clients and no file lock, so a writer also keeps one idle
transaction open, tagged with its run, for as long as its marker lives: the server ends it
when the writer's connection dies, and recovery rolls back only markers with no such
transaction (`SHOW TRANSACTIONS`), never a write still running elsewhere.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Mapping

import pandas as pd

from toolkit.errors import one_line
from toolkit.store import neo4j_config, pending, queries
from toolkit.store.base import Store, StoreError, plain_strings
from toolkit.store.schema import ALL_NODES, NODES, RELS

# Rows per write transaction: the fastest of 5k-50k in bench/bench_neo4j.py (README); a
# 1M-instance write in such batches peaks under 800 MB of a 1 GB server heap.
BATCH = 10_000
# The driver logs connection failures itself; ours is the one line the user sees.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


# Procedures that read only the graph's own schema; any other CALL is refused by `read`.
SCHEMA_PROCEDURES = frozenset({"db.labels", "db.relationshipTypes", "db.propertyKeys", "db.schema.visualization",
                               "db.schema.nodeTypeProperties", "db.schema.relTypeProperties"})


class Neo4jStore(Store):
    backend = "neo4j"
    schema_calls = frozenset(p.lower() for p in SCHEMA_PROCEDURES)

    def __init__(self, uri: str, read_only: bool = False):
        import neo4j
        from neo4j import exceptions as nx

        self._neo4j = neo4j
        self.location = neo4j_config.checked_uri(uri)
        wait = neo4j_config.timeout()
        self.read_only = read_only
        user = os.environ.get("APD_NEO4J_USER", "neo4j")
        password = os.environ.get("APD_NEO4J_PASSWORD", "")
        self._db = os.environ.get("APD_NEO4J_DATABASE") or None
        try:
            # No server notifications (e.g. "property key does not exist" for a run without
            # MBH results): the driver would log each as a warning on stderr.
            self._driver = neo4j.GraphDatabase.driver(uri, auth=(user, password), notifications_min_severity="OFF",
                                                      **neo4j_config.driver_config(wait))
            self._driver.verify_connectivity()
        except nx.AuthError:
            raise StoreError(
                f"Neo4j at {uri} refused the credentials of user {user!r}: set APD_NEO4J_USER / APD_NEO4J_PASSWORD"
            ) from None
        except (nx.ServiceUnavailable, OSError, ValueError, nx.ConfigurationError) as exc:
            if "handshake" in str(exc):
                raise StoreError(f"cannot reach Neo4j at {uri}: the port accepts connections but sent no Bolt "
                                 f"handshake within {wait:g} s (not a Neo4j server? APD_NEO4J_TIMEOUT sets the wait)"
                                 ) from None
            raise StoreError(f"cannot reach Neo4j at {uri}: {one_line(exc)}") from None
        if not read_only:
            with self._errors():
                for stmt in queries.statements(queries.body("neo4j/schema")):
                    self._driver.execute_query(stmt, database_=self._db)
                pending.recover(self)

    @contextmanager
    def _errors(self, failed: str = "query failed"):
        """Server failures as one line: a missing database, a lost connection, a bad statement."""
        from neo4j import exceptions as nx

        try:
            yield
        except MissingEnds as exc:
            raise StoreError(f"{failed}: {exc}") from None
        except nx.Neo4jError as exc:
            if "DatabaseNotFound" in (exc.code or ""):
                db = f"database {self._db!r}" if self._db else "its default database"
                raise StoreError(f"Neo4j at {self.location} has no {db}: set APD_NEO4J_DATABASE to one it has") from None
            raise StoreError(f"{failed}: {one_line(exc.message, None)}") from None
        except (nx.ServiceUnavailable, nx.SessionExpired, nx.SessionError, OSError) as exc:
            raise StoreError(f"lost the connection to Neo4j at {self.location}: {one_line(exc, 160)}") from None

    def _session(self, mode: str):
        return self._driver.session(database=self._db, default_access_mode=mode)

    def _run(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        with self._errors(), self._session(self._neo4j.WRITE_ACCESS) as s:
            return s.execute_write(_collect, text, dict(params or {}))

    def _plan_refusal(self, text: str, params: Mapping[str, Any]) -> str | None:
        """The server's own plan of `text` (EXPLAIN: nothing executes), see `_refusal`."""
        with self._read_errors(), self._session(self._neo4j.READ_ACCESS) as s:
            return _refusal(s.run("EXPLAIN " + text, params).consume())

    def _read(self, text: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """In a read transaction: the server refuses writes too."""
        with self._read_errors(), self._session(self._neo4j.READ_ACCESS) as s:
            return s.execute_read(_collect, text, params)

    @contextmanager
    def _read_errors(self):
        """The server's read-access refusal as ours; every other failure as `_errors` says."""
        from neo4j import exceptions as nx

        try:
            yield
        except nx.Neo4jError as exc:
            if "AccessMode" in (exc.code or "") or "read access mode" in (exc.message or ""):
                raise StoreError("refused: `apd cypher` is read-only; writes go through apd commands") from None
            with self._errors():
                raise
        except (nx.DriverError, OSError):
            with self._errors():
                raise

    def _write_all(self, steps: list[tuple[str, str, Any]]) -> None:
        """Statements in one transaction, a run's deletes in bounded ones, then each bulk
        batch in a transaction of its own.

        Inside a run's batch a cut anywhere is undone by its marker. Outside one (a marker's
        own statements, a roll-back, property updates of existing nodes) the deletes come
        first and the rest is one transaction: a cut-off roll-back is finished by the next.
        """
        if self.read_only:
            raise StoreError(f"store {self.location} is open read-only")
        stmts = [s for s in steps if s[0] == "stmt" and s[1] not in _DELETES]
        deletes = [(_DELETES[s[1]], s[2]) for s in steps if s[0] == "stmt" and s[1] in _DELETES]
        bulk = [s for s in steps if s[0] != "stmt"]
        failed = "write failed, nothing written" if self._batch is None else "write failed"  # the batch says the rest
        with self._errors(failed), self._session(self._neo4j.WRITE_ACCESS) as s:
            if self._batch is None:
                for text, params in deletes:
                    s.run(text, params).consume()
                s.execute_write(_apply, stmts + list(_batches(bulk)))
                return
            if stmts:  # the marker's `applied` flag commits before any change
                s.execute_write(_apply, stmts)
            for text, params in deletes:
                s.run(text, params).consume()
            for step in _batches(bulk):
                s.execute_write(_apply, [step])

    @contextmanager
    def batch(self, run: str, tables, op: str = "replace"):
        """`Store.batch`, with the writer's liveness transaction held around it (see the module)."""
        if self._batch is not None:
            with super().batch(run, tables, op):
                yield
            return
        with self._errors("write failed, nothing written"), self._session(self._neo4j.WRITE_ACCESS) as s:
            alive = s.begin_transaction(metadata={_ALIVE: run})
            try:
                alive.run("RETURN 1").consume()
                with super().batch(run, tables, op):
                    yield
            finally:
                alive.rollback()

    def live_runs(self) -> set[str] | None:
        """Runs whose writer holds its liveness transaction now; None if the server won't say."""
        from neo4j import exceptions as nx

        try:
            rows, _, _ = self._driver.execute_query("SHOW TRANSACTIONS YIELD metaData RETURN metaData",
                                                    database_=self._db)
        except nx.Neo4jError:
            return None
        return {r["metaData"][_ALIVE] for r in rows if _ALIVE in (r["metaData"] or {})}

    def drop_run(self, run: str) -> int:
        """Deletes in bounded transactions, so bracketed by a marker: a cut-off drop is finished."""
        before = self.counts(run)
        with self.batch(run, list(NODES), op="drop"):
            self._write_batch_steps([("stmt", queries.body("delete_run_nodes", table=t), {"run": run}) for t in NODES])
        return int(before.sum()) if len(before) else 0

    def close(self) -> None:
        self._driver.close()


def _collect(tx, text: str, params: dict) -> pd.DataFrame:
    result = tx.run(text, params)
    keys = list(result.keys())
    return plain_strings(pd.DataFrame([r.values() for r in result], columns=keys))


def _refusal(summary) -> str | None:
    """Why a planned statement is not a plain read of the graph, from the server's plan:
    its query type ('r' read, 'rw' / 'w' write, 's' schema or system) and its operators
    (LoadCSV reads files, Show* and procedures reach beyond the graph, @other a second
    database). None when it only reads this database's graph."""
    kinds = {"rw": "it writes", "w": "it writes", "s": "it changes the schema or the system"}
    if summary.query_type != "r":
        return kinds.get(summary.query_type, f"query type {summary.query_type!r}")
    stack = [summary.plan] if summary.plan else []
    while stack:
        op = stack.pop()
        stack.extend(op.get("children", []))
        name, _, db = op["operatorType"].partition("@")
        if db and db != summary.database:
            return f"it reads database {db!r}"
        if name == "LoadCSV":
            return "LOAD CSV reads files"
        if name.startswith(("Show", "Terminate")):
            return "SHOW commands read the server, not the graph"
        if name == "ProcedureCall":
            proc = op.get("args", {}).get("Details", "").split("(")[0].strip()
            if proc not in SCHEMA_PROCEDURES:
                return f"it calls procedure {proc}"
    return None


_ALIVE = "apd_write"  # the liveness transaction's metadata key; its value is the run
# A run's deletes (shared text) -> their bounded Neo4j variants, auto-committing.
_DELETES = {
    **{queries.body("delete_run_nodes", table=t): queries.body("neo4j/delete_run_nodes", table=t) for t in ALL_NODES},
    **{pending.delete_run(t): queries.body("neo4j/delete_run_rels", table=t, src=r.src, dst=r.dst)
       for t, r in RELS.items()},
}


def _batches(steps: list[tuple[str, str, Any]]):
    """Bulk frames as ('stmt', UNWIND statement, {"c": columns}) steps of at most BATCH rows.

    Columns are made one batch at a time, from a slice of the frame: a million-instance
    chunk's values would otherwise all sit in Python lists before the first batch is sent.
    """
    for kind, what, frame in steps:
        ends = {"nodes": [], "rels": ["src", "dst"], "update": ["uid"], "update_rels": ["src", "dst"]}[kind]
        props = queries.ColumnMap(c for c in frame.columns if c not in ends)
        if kind == "nodes":
            text = queries.body("neo4j/create_nodes", table=what, props=props)
        elif kind == "rels":
            rel = RELS[what]
            text = queries.body("neo4j/create_rels", table=what, src=rel.src, dst=rel.dst, props=props)
        elif kind == "update_rels":
            rel = RELS[what]
            text = queries.body("neo4j/update_rels", table=what, src=rel.src, dst=rel.dst, props=props)
        else:  # update
            text = queries.body("neo4j/update_nodes", table=what, props=props)
        for start in range(0, len(frame), BATCH):
            yield ("stmt", text, {"c": _columns(frame.iloc[start : start + BATCH])})


def _columns(part: pd.DataFrame) -> dict[str, list]:
    """One batch's `$c`: a list of plain Python values per column, None for a null (Neo4j
    then sets no property, as LadybugDB stores NULL)."""
    out = {}
    for c in part.columns:
        col = part[c]
        out[c] = col.astype(object).where(col.notna(), None).tolist() if col.hasnans else col.tolist()
    return out


class MissingEnds(Exception):
    """A bulk batch named nodes that do not exist: Neo4j's MATCH would drop those rows silently."""


def _apply(tx, steps: list[tuple[str, str, Any]]) -> None:
    """Statements in one managed transaction (the driver retries it on transient errors).

    A relationship or update batch returns how many rows found their nodes; fewer than sent
    aborts the transaction (LadybugDB's COPY refuses such rows itself).
    """
    for _, text, params in steps:
        result = tx.run(text, params)
        if "written" in result.keys():
            written, sent = result.single()["written"], len(next(iter(params["c"].values())))
            if written != sent:
                raise MissingEnds(f"{sent - written} of {sent} rows name a node that does not exist")
        else:
            result.consume()
