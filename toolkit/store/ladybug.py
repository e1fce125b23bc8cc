"""LadybugDB (embedded, one file): the default store.

Bulk writes go through `COPY ... FROM $df` and bulk updates through `LOAD FROM $df`,
inside one transaction per `Store.write`, so a run is replaced atomically.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from toolkit.store import queries
from toolkit.store.base import Store, StoreError, plain_strings


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


class LadybugStore(Store):
    backend = "ladybug"

    def __init__(self, path: str | Path, read_only: bool = False):
        import ladybug

        self.location = str(path)
        if read_only and not Path(path).exists():
            raise StoreError(f"no store at {path}: run `apd demo` or `apd ingest` first, or pass --store")
        try:
            self._db = ladybug.Database(str(path), read_only=read_only)
        except RuntimeError as exc:
            msg = _one_line(exc)
            held = re.search(r"Lock is held by PID (\d+)", msg)
            if held or "lock" in msg.lower():
                who = f" (PID {held.group(1)})" if held else ""
                raise StoreError(f"store {path} is locked by another process{who}: close it and retry") from None
            raise StoreError(f"cannot open store {path}: {msg}") from None
        self._conn = ladybug.Connection(self._db)
        self.read_only = read_only
        if not read_only:
            for stmt in queries.statements(queries.body("ladybug/schema")):
                self._conn.execute(stmt)

    def _run(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        try:
            result = self._conn.execute(text, dict(params or {}))
        except RuntimeError as exc:
            raise StoreError(f"query failed: {_one_line(exc)}") from None
        if isinstance(result, list):  # several statements: the last one's rows
            result = result[-1]
        return _frame(result.get_as_df(), result.get_column_data_types())

    def read(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
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
        if self.read_only:
            raise StoreError(f"store {self.location} is open read-only")
        self._conn.execute("BEGIN TRANSACTION")
        try:
            for kind, what, arg in steps:
                if kind == "stmt":
                    self._conn.execute(what, arg)
                elif kind == "nodes":
                    if len(arg):
                        stmt = queries.body("ladybug/copy_nodes", table=what, columns=", ".join(arg.columns))
                        self._conn.execute(stmt, {"df": arg})
                elif kind == "rels":
                    if len(arg):
                        self._conn.execute(queries.body("ladybug/copy_rels", table=what), {"df": arg})
                elif kind == "update":
                    for prop in arg.columns.drop("uid"):
                        frame = pd.DataFrame({"k": arg["uid"], "v": arg[prop]})
                        self._conn.execute(queries.body("ladybug/update_nodes", table=what, prop=prop), {"df": frame})
        except RuntimeError as exc:
            self._rollback()
            raise StoreError(f"write failed, nothing written: {_one_line(exc)}") from None
        except BaseException:
            self._rollback()
            raise
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        """LadybugDB aborts the transaction itself when a statement in it fails."""
        try:
            self._conn.execute("ROLLBACK")
        except RuntimeError:
            pass

    def close(self) -> None:
        self._conn.close()
        self._db.close()


def _frame(df: pd.DataFrame, types: list[str]) -> pd.DataFrame:
    """Give columns the types Neo4j's driver would: `sum()` of integers is INT128 here
    (a float or Decimal in pandas) and becomes int64; strings become plain objects."""
    for c, t in zip(df.columns, types):
        if t in ("INT128", "INT64", "INT32", "SERIAL") and df[c].dtype != "int64" and not df[c].isna().any():
            df[c] = df[c].astype("int64")
    return plain_strings(df)
