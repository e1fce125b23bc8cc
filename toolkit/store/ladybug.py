"""LadybugDB (embedded, one file): the default store.

Bulk writes go through `COPY ... FROM $df` and bulk updates through `LOAD FROM $df`,
inside one transaction per `Store.write`; replaces are also bracketed by a PendingWrite
marker (toolkit/store/pending.py), because LadybugDB 0.22 does not log COPY. Every write
runs under the guard's watchdog (toolkit/store/guard.py) and a capped buffer pool.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from toolkit.errors import one_line
from toolkit.store import guard, pending, queries, space
from toolkit.store.base import Store, StoreError, plain_strings
from toolkit.store.schema import ALL_NODES, RELS

LOCK_POLL_SECONDS = 0.2

# Physical operators that only read the graph: every read one of LadybugDB's operator types
# (its PhysicalOperatorType, which the plan prints as NAME[id]). The rest write, change the
# schema, manage transactions, attach databases or extensions, or touch files (COPY_TO,
# EXPORT_DATABASE, STANDALONE_CALL, ...), and are refused.
READ_OPERATORS = frozenset({
    "AGGREGATE", "AGGREGATE_FINALIZE", "AGGREGATE_SCAN", "COUNT_ANTI_EDGE_CHAIN", "COUNT_EXTEND_CHAIN",
    "COUNT_REL_TABLE", "CROSS_PRODUCT", "DUMMY_SINK", "DUMMY_SIMPLE_SINK", "EMPTY_RESULT", "FILTER", "FLATTEN",
    "GROUPED_REACHABLE_COUNT", "HASH_JOIN_BUILD", "HASH_JOIN_PROBE", "INTERSECT", "INTERSECT_BUILD", "LIMIT",
    "MULTIPLICITY_REDUCER", "ORDER_BY", "ORDER_BY_MERGE", "ORDER_BY_SCAN", "PACKED_EXTEND", "PACKED_FILTERED_COUNT",
    "PATH_PROPERTY_PROBE", "PRIMARY_KEY_SCAN_NODE_TABLE", "PROJECTION", "QUERY_PRIMARY_KEY_LOOKUP", "REACHABLE_COUNT",
    "RECURSIVE_EXTEND", "REL_DEGREE_TABLE", "RESULT_COLLECTOR", "SCAN_NODE_TABLE", "SCAN_REL_TABLE", "SEMI_MASKER",
    "SKIP", "TABLE_FUNCTION_CALL", "TOP_K", "TOP_K_SCAN", "UNION_ALL_SCAN", "UNWIND", "UNWIND_DEDUP",
})
# Table functions that read only the query's own intermediate rows or the schema (READ_CSV,
# READ_PARQUET, READ_NPY, ... read files and are refused).
READ_FUNCTIONS = frozenset({"READ_FTABLE", "SHOW_TABLES", "TABLE_INFO", "SHOW_CONNECTION", "DB_VERSION",
                            "SHOW_INDEXES", "SHOW_FUNCTIONS", "CURRENT_SETTING"})


def _locked(msg: str) -> bool:
    return "lock" in msg.lower()


def _writable(path: str) -> bool:
    """Whether this process may write the store file and create files next to it."""
    p = Path(path)
    return os.access(p, os.W_OK) and os.access(p.parent if str(p.parent) else ".", os.W_OK)


class LadybugStore(Store):
    backend = "ladybug"
    schema_calls = frozenset(f.lower() for f in READ_FUNCTIONS - {"READ_FTABLE"})

    def __init__(self, path: str | Path, read_only: bool = False, create: bool = True, wait: float = 0.0):
        """Open (never create, when `read_only` or not `create`) the store at `path`.

        Writers take LadybugDB's lock first, before any work, waiting up to `wait` seconds
        for another writer. A writable open finishes LadybugDB's own crash recovery and rolls
        back cut-off runs (toolkit/store/pending.py); a read-only open that needs either
        does it through a short writable open first, or says what to run if it cannot.
        A writable open first checks the disk has room for it (toolkit/store/space.py). A
        store this open creates is removed again if the open, or the block it is used in,
        fails before any node was written: a refused first write leaves no file behind.
        """
        self.location = str(path)
        self.read_only = read_only
        self.incomplete: list[str] = []  # runs with a live or unrecoverable cut-off write
        if not Path(path).exists() and (read_only or not create):
            raise StoreError(f"no store at {path}: run `apd demo` or `apd ingest` first, or pass --store")
        if Path(path).is_file() and Path(path).stat().st_size == 0:  # LadybugDB would make it a store
            raise StoreError(f"{path} is not a store (an empty file): only a missing path becomes a new store")
        self._new = not Path(path).exists()
        self._found = set(guard.store_files(self.location))  # side files already there are never removed
        try:
            if read_only:
                self._open_read_only(wait)
            else:
                space.check(self.location, space.MARGIN + 2 * _bytes(Path(f"{self.location}.wal")),
                            "opening it for writing")
                note = self._open(False, wait)
                self._prepare()
                if note:
                    print(note, file=sys.stderr)
        except OSError as exc:
            self._abandon()
            raise space.os_error(self.location, exc, "opening it") from None
        except RuntimeError as exc:  # a schema statement of _prepare
            self._abandon()
            raise StoreError(f"cannot prepare store {self.location}: {one_line(exc, None)}") from None
        except BaseException:
            self._abandon()
            raise

    # -- opening ----------------------------------------------------------------------
    def _open(self, read_only: bool, wait: float) -> str | None:
        """Open the database and a connection, waiting out a lock for up to `wait` seconds;
        returns a note to print once the whole open has succeeded (a cut-off log), if any."""
        import ladybug

        deadline = time.monotonic() + wait
        salvage = recovered = False
        note = None  # said once the open succeeded: a refused open is one line
        while True:
            try:
                self._db = ladybug.Database(self.location, read_only=read_only,
                                            buffer_pool_size=guard.buffer_pool_bytes(),
                                            throw_on_wal_replay_failure=not salvage)
                break
            except RuntimeError as exc:
                msg = one_line(exc, None)
                if _locked(msg):
                    if time.monotonic() < deadline:
                        time.sleep(LOCK_POLL_SECONDS)
                        continue
                    raise self._locked_error(msg, wait) from None
                if "Checksum verification failed" in msg and not salvage:
                    note = self._keep_broken_wal(read_only)
                    salvage = True
                    continue
                if "Reading past the end of the file" in msg and read_only and time.monotonic() < deadline:
                    time.sleep(LOCK_POLL_SECONDS)  # a writer is between commit and checkpoint: its log is empty
                    continue
                if "checkpoint recovery is pending" in msg and read_only and not recovered:
                    self._recover(wait)  # the writable open keeps the log and says so itself
                    recovered, note = True, None
                    continue
                raise StoreError(f"cannot open store {self.location}: {msg}") from None
        self._conn = ladybug.Connection(self._db)
        return note

    def _open_read_only(self, wait: float) -> None:
        """Read-only open; a cut-off run left by a dead writer is rolled back first if possible.

        Whatever it finds, it says in at most one line on stderr (and a refusal in one line)."""
        note = self._open(True, wait)
        if not self._has_table("Run"):
            self.close()
            raise StoreError(f"{self.location} is not an APD store (it has no Run table)")
        if self._missing():  # made by an older apd: a short writable open adds the new properties
            self.close()
            self._recover(wait, "was made by an older apd and needs its schema upgraded")
            self._open(True, wait)
        marks = pending.pending(self) if self._has_table(pending.TABLE) else []
        if not len(marks):
            if note:
                print(note, file=sys.stderr)
            return
        self.close()
        try:
            self._recover(wait)
        except StoreError as exc:
            self._open(True, wait)
            self.incomplete = sorted(set(marks["run"]))
            print(f"warning: runs {', '.join(self.incomplete)} of store {self.location} are incomplete (a write "
                  f"is running or was cut off, and rolling it back failed: {exc}): their results may be partial",
                  file=sys.stderr)
            return
        self._open(True, wait)

    def _recover(self, wait: float, why: str = "holds an interrupted write that must be recovered") -> None:
        """A short writable open: LadybugDB replays its logs, cut-off runs are rolled back and
        an older store's schema is upgraded."""
        try:
            LadybugStore(self.location, read_only=False, create=False, wait=wait).close()
        except StoreError as exc:
            if not _writable(self.location):
                raise StoreError(
                    f"store {self.location} {why}, but it is not "
                    f"writable here: run `apd store check --store {self.location}` where it is writable "
                    "(or on a writable copy of all its files)") from None
            raise exc from None

    def _keep_broken_wal(self, read_only: bool) -> str:
        """A write-ahead log cut off mid-record fails its checksum: keep a copy, replay what committed.

        The copy is written under a temporary name and renamed when whole, so a full disk
        leaves no empty or partial `.broken-*` file: the open is refused in one line instead.
        Returns the line to print once the open has succeeded.
        """
        wal = Path(f"{self.location}.wal")
        if read_only or not _writable(self.location):
            return (f"note: store {self.location}: its write-ahead log ends in a cut-off write; "
                    "reading the last committed state")
        kept = wal.with_name(f"{wal.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
        partial = kept.with_name(f".{kept.name}.partial")  # outside the store's `name.*` side files
        space.check(self.location, _bytes(wal), "keeping a copy of its cut-off write-ahead log")
        try:
            shutil.copy2(wal, partial)
            partial.replace(kept)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise space.os_error(self.location, exc, "keeping a copy of its cut-off write-ahead log") from None
        return (f"store {self.location}: its write-ahead log was cut off mid-write; the committed part was "
                f"replayed, the cut-off log is kept as {kept}")

    def _locked_error(self, msg: str, wait: float) -> StoreError:
        held = re.search(r"Lock is held by PID (\d+)", msg)
        who = f" (PID {held.group(1)})" if held else ""
        if wait:
            return StoreError(f"store {self.location} is still locked by another process{who} after {wait:g} s: "
                              "close it and retry, or pass a longer --wait SECONDS")
        return StoreError(f"store {self.location} is locked by another process{who}: "
                          "close it and retry, or pass --wait SECONDS")

    def _prepare(self) -> None:
        """Schema, upgrades of older stores, then roll back runs cut off by a crash."""
        for stmt in queries.statements(queries.body("ladybug/schema")):
            self._conn.execute(stmt)
        self._upgrade()
        pending.recover(self)

    def columns(self, table: str) -> list[str]:
        """The properties the store's `table` has, in its order (LadybugDB's catalogue)."""
        return self._run(queries.body("ladybug/table_columns", table=queries.Literal(table)))["name"].tolist()

    def _missing(self) -> list[tuple[str, str, str]]:
        """(table, property, type) of every schema property the store's existing tables lack."""
        tables = set(self._run(queries.body("ladybug/tables"))["name"])
        declared = [*((t.name, t.props) for t in ALL_NODES.values()), *((r.name, r.props) for r in RELS.values())]
        return [(table, prop, typ) for table, props in declared if table in tables
                for have in [set(self.columns(table))] for prop, typ in props.items() if prop not in have]

    def _upgrade(self) -> None:
        """Add the properties a store made by an older apd lacks: null, or the value of
        _UPGRADE_VALUES for the nodes already there."""
        for table, prop, typ in self._missing():
            self._run(queries.body("ladybug/add_column", table=table, prop=prop, type=typ))
            if (table, prop) in _UPGRADE_VALUES:
                self._run(queries.body("ladybug/fill_column", table=table, prop=prop),
                          {"value": _UPGRADE_VALUES[table, prop]})

    def _has_table(self, name: str) -> bool:
        return name in set(self._run(queries.body("ladybug/tables"))["name"])

    def _run(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        try:
            result = self._conn.execute(text, dict(params or {}))
        except RuntimeError as exc:
            raise StoreError(f"query failed: {one_line(exc, None)}") from None
        if isinstance(result, list):  # several statements: the last one's rows
            result = result[-1]
        return _frame(result.get_as_df(), result.get_column_data_types())

    def _plan_refusal(self, text: str, params: Mapping[str, Any]) -> str | None:
        """LadybugDB's physical plan of `text`: every operator must be one that reads, and
        every table function one that scans the graph or lists its schema."""
        plan = self._in_read_transaction("EXPLAIN " + text, params)
        if not len(plan) or not len(plan.columns):
            return "it has no plan"
        return plan_refusal(str(plan.iloc[0, 0]))

    def _read(self, text: str, params: Mapping[str, Any]) -> pd.DataFrame:
        return self._in_read_transaction(text, params)

    def _in_read_transaction(self, text: str, params: Mapping[str, Any]) -> pd.DataFrame:
        self._conn.execute("BEGIN TRANSACTION READ ONLY")
        try:
            return self._run(text, params)
        except StoreError as exc:
            if "read-only" in str(exc):
                raise StoreError("refused: `apd cypher` is read-only; writes go through apd commands") from None
            raise
        finally:
            self._rollback()

    def _write_all(self, steps: list[tuple[str, str, Any]]) -> None:
        """Outside a batch: one transaction. Inside a run's batch: its statements (the marker
        flag, the deletes) in one transaction, then each bulk load committing on its own.

        LadybugDB 0.22.0 can crash (SIGSEGV) rolling back a transaction that bulk-loaded
        relationships into a store that had rows deleted (tests/test_ladybug_upstream.py), so
        inside a batch no bulk load is ever rolled back: a cut between them is undone by the
        batch's marker instead (toolkit/store/pending.py).
        """
        if self.read_only:
            raise StoreError(f"store {self.location} is open read-only")
        size = sum(int(a.memory_usage(index=False, deep=True).sum()) for k, _, a in steps if isinstance(a, pd.DataFrame))
        space.check(self.location, space.write_bytes(size, self._deleted_bytes(steps)))
        hooks = self._batch is not None  # test kill points fire only inside a run's batch
        txn, loads = (steps, []) if not hooks else ([s for s in steps if s[0] == "stmt"], [s for s in steps if s[0] != "stmt"])
        dog = guard.Watchdog(self.location, size, self._conn.interrupt)
        with dog:
            if dog.reason:
                raise StoreError(dog.reason)
            self._transaction(txn, dog, hooks)
            if hooks:
                pending.kill_point("checkpoint", self.location)  # each load's commit checkpoints
            for kind, what, arg in loads:
                try:
                    self._step(kind, what, arg)
                except RuntimeError as exc:
                    raise StoreError(dog.reason or f"write failed: {one_line(exc, None)}") from None
                if dog.reason:
                    raise StoreError(dog.reason)
        if hooks:
            pending.kill_point("committed")

    def _deleted_bytes(self, steps: list[tuple[str, str, Any]]) -> int:
        """The store file's share held by the nodes these steps delete (a run's, per table)."""
        doomed = {(params["run"], _DELETES[text]) for kind, text, params in steps if kind == "stmt" and text in _DELETES}
        if not doomed:
            return 0
        counts = self.counts()
        total = int(counts["nodes"].sum())
        mine = sum(int(r.nodes) for r in counts.itertuples() if (r.run, r.label) in doomed)
        return _bytes(Path(self.location)) * mine // total if total else 0

    def _transaction(self, steps: list[tuple[str, str, Any]], dog: guard.Watchdog, hooks: bool) -> None:
        if not steps:
            return
        self._conn.execute("BEGIN TRANSACTION")
        try:
            for i, (kind, what, arg) in enumerate(steps):
                self._step(kind, what, arg)
                if dog.reason:
                    raise RuntimeError(dog.reason)
                if hooks and i == 0:
                    pending.kill_point("applied")
            if hooks:
                pending.kill_point("copied")
        except RuntimeError as exc:
            self._rollback()
            if dog.reason:
                raise StoreError(dog.reason) from None
            raise StoreError(f"write failed, nothing written: {one_line(exc, None)}") from None
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except RuntimeError as exc:
            self._rollback()
            raise StoreError(dog.reason or f"write failed at commit: {one_line(exc, None)}") from None

    def _step(self, kind: str, what: str, arg: Any) -> None:
        if kind == "stmt":
            self._conn.execute(what, arg)
        elif kind == "nodes":
            if len(arg):
                stmt = queries.body("ladybug/copy_nodes", table=what, columns=", ".join(arg.columns))
                self._conn.execute(stmt, {"df": arg})
        elif kind == "rels":
            if len(arg):
                props = list(arg.columns.drop(["src", "dst"]))
                stmt = (queries.body("ladybug/copy_rels_columns", table=what, columns=", ".join(props))
                        if props and props != list(RELS[what].props) else queries.body("ladybug/copy_rels", table=what))
                self._conn.execute(stmt, {"df": arg})
        elif kind == "update":
            for prop in arg.columns.drop("uid"):
                frame = pd.DataFrame({"k": arg["uid"], "v": arg[prop]})
                self._conn.execute(queries.body("ladybug/update_nodes", table=what, prop=prop), {"df": frame})
        elif kind == "update_rels":
            rel = RELS[what]
            for prop in arg.columns.drop(["src", "dst"]):
                frame = pd.DataFrame({"s": arg["src"], "d": arg["dst"], "v": arg[prop]})
                stmt = queries.body("ladybug/update_rels", table=what, src=rel.src, dst=rel.dst, prop=prop)
                self._conn.execute(stmt, {"df": frame})

    def _rollback(self) -> None:
        """LadybugDB aborts the transaction itself when a statement in it fails."""
        try:
            self._conn.execute("ROLLBACK")
        except RuntimeError:
            pass

    def close(self) -> None:
        self._conn.close()
        self._db.close()

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        """Close; a store this open created goes again if the block failed before writing a node."""
        empty = exc_type is not None and self._new and self._holds_nothing()
        self.close()
        if empty:
            self._remove_created()

    def _holds_nothing(self) -> bool:
        try:
            return int(self.counts()["nodes"].sum()) == 0
        except StoreError:  # cannot tell: keep it
            return False

    def _abandon(self) -> None:
        """After a failed open: let go of the database, and remove the store if this open made it."""
        for handle in ("_conn", "_db"):
            if hasattr(self, handle):
                try:
                    getattr(self, handle).close()
                except RuntimeError:
                    pass
        if self._new:
            self._remove_created()

    def _remove_created(self) -> None:
        for f in guard.store_files(self.location):
            if f not in self._found:
                f.unlink(missing_ok=True)


_DELETES = {queries.body("delete_run_nodes", table=t): t for t in ALL_NODES}
# What nodes of a store made before a property existed hold for it (others get null): their
# source row is unknown; they were ingested (not coarsened, not training history); how their
# split was drawn is unknown (official_split stays null).
_UPGRADE_VALUES = {("Instance", "row"): -1, ("Run", "source"): "", ("Run", "neurons"): "",
                   ("Run", "history_only"): False, ("Run", "split_note"): ""}


def _bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def plan_refusal(plan: str) -> str | None:
    """Why a rendered LadybugDB plan is not a read of the graph (operator `NAME[id]`,
    table function `Function: NAME`), or None."""
    for op in re.findall(r"\b([A-Z][A-Z0-9_]*)\[\d+\]", plan):
        if op not in READ_OPERATORS:
            return f"its plan holds {op}, which is not a read of the graph"
    for fn in re.findall(r"Function: (\w+)", plan):
        if fn.upper() not in READ_FUNCTIONS:
            return f"it calls {fn.lower()}, which reads outside the graph"
    return None


def _frame(df: pd.DataFrame, types: list[str]) -> pd.DataFrame:
    """Give columns the types Neo4j's driver would: `sum()` of integers is INT128 here
    (a float or Decimal in pandas) and becomes int64; strings (all-null ones too) become
    plain objects with None."""
    for c, t in zip(df.columns, types):
        if t in ("INT128", "INT64", "INT32", "SERIAL") and df[c].dtype != "int64" and not df[c].isna().any():
            df[c] = df[c].astype("int64")
        elif t == "STRING":  # nulls arrive as NaN (an all-null column as floats); Neo4j gives None
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return plain_strings(df)
