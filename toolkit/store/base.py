"""The one interface every graph store implements; nothing above `toolkit/store/` knows the backend."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping

import pandas as pd

from toolkit.errors import ApdError
from toolkit.store import outcome, pending, queries, statement
from toolkit.store.schema import ALL_NODES, NODES, RELS, typed_nodes, typed_rels


class StoreError(ApdError):
    """A user-facing store failure: its message is one actionable line."""


def plain_strings(df: pd.DataFrame) -> pd.DataFrame:
    """String columns as object dtype with None for nulls, whatever pandas infers.

    pandas 3 gives strings its own `str` dtype (NaN for nulls) while a driver's lists of
    Python objects stay `object`; both backends pass their frames through here so the same
    named query returns the same frame.
    """
    for c in df.columns:
        if pd.api.types.is_string_dtype(df[c].dtype) and str(df[c].dtype) != "object":
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def _with_columns(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """An empty result as a frame with the named file's header columns: a server may send
    no column names when there are no rows."""
    if len(df.columns) == 0 and len(df) == 0:
        return pd.DataFrame(columns=queries.columns(name))
    return df


class Store(ABC):
    """open -> ensure schema -> bulk-write frames / run named queries -> DataFrames."""

    backend: str
    location: str
    _batch: dict | None = None  # the open batch's marker uid, see `batch`

    # -- backend primitives -------------------------------------------------
    @abstractmethod
    def _run(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one statement (read or write) and return its rows."""

    @abstractmethod
    def _write_all(self, steps: list[tuple[str, str, Any]]) -> None:
        """Run write steps atomically: ('stmt', text, params) or ('nodes'|'rels', table, frame)."""

    @abstractmethod
    def _plan_refusal(self, text: str, params: Mapping[str, Any]) -> str | None:
        """Why the backend's own plan of `text` (nothing executes) is not a read of this
        store's graph, or None."""

    @abstractmethod
    def _read(self, text: str, params: Mapping[str, Any]) -> pd.DataFrame:
        """Run a statement already judged a read, in a read-only transaction."""

    schema_calls: frozenset[str] = frozenset()  # procedures / table functions that only list the schema

    @abstractmethod
    def close(self) -> None: ...

    def live_runs(self) -> set[str] | None:
        """Runs another process is writing right now, whose markers recovery must leave alone
        (None: cannot tell). An embedded store's writer holds its file lock: none."""
        return set()

    # -- shared behaviour ---------------------------------------------------
    def __enter__(self) -> "Store":
        return self

    def read(self, text: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Ad-hoc Cypher (`apd cypher`) that may read this store's graph and nothing else.

        Three gates, each enough on its own for what it covers: the statement's tokens
        (toolkit/store/statement.py: one statement, no clause that writes or touches files,
        no CALL beyond the schema), the backend's plan of it, then a read-only transaction.
        """
        params = dict(params or {})
        why = statement.refusal(text, self.schema_calls) or self._plan_refusal(text, params)
        if why:
            raise StoreError(f"refused: `apd cypher` is read-only ({why}); writes go through apd commands")
        return self._read(text, params)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, name: str, **params: Any) -> pd.DataFrame:
        """Run the named file `cypher/<name>.cypher` with parameters."""
        return _with_columns(self._run(queries.body(name), params), name)

    def query_template(self, name: str, identifiers: Mapping[str, str], **params: Any) -> pd.DataFrame:
        """Run a template file with schema identifiers (labels, types, properties) filled in."""
        return _with_columns(self._run(queries.body(name, **identifiers), params), name)

    def write(
        self,
        run: str,
        nodes: Mapping[str, pd.DataFrame] = {},
        rels: Mapping[str, pd.DataFrame] = {},
        replace: Iterable[str] = (),
        updates: Mapping[str, pd.DataFrame] = {},
        replace_rels: Iterable[str] = (),
        rel_updates: Mapping[str, pd.DataFrame] = {},
    ) -> None:
        """Replace `run`'s nodes of the `replace` labels and its relationships of the
        `replace_rels` types (those whose source node is the run's; the end nodes stay),
        bulk-create `nodes` and `rels`, then set properties on existing nodes from `updates`
        (frames keyed by `uid`) and on existing relationships from `rel_updates` (keyed by
        `src`, `dst`).

        A replace runs inside a `batch` (toolkit/store/pending.py): its deletes commit in one
        transaction and each bulk load on its own, so a failure or a crash never leaves a
        half-written run: the run keeps its previous results if the deletes had not
        committed, else it is rolled back to absent (the error says which). A re-run never
        duplicates. Frames are typed against the schema before anything is sent.
        """
        steps: list[tuple[str, str, Any]] = []
        for table in replace:
            if table not in NODES:
                raise ValueError(f"unknown node table {table}")
            steps.append(("stmt", queries.body("delete_run_nodes", table=table), {"run": run}))
        for table in replace_rels:
            if table not in RELS:
                raise ValueError(f"unknown relationship table {table}")
            steps.append(("stmt", pending.delete_run(table), {"run": run}))
        for table, frame in nodes.items():
            steps.append(("nodes", table, typed_nodes(table, frame)))
        for table, frame in rels.items():
            steps.append(("rels", table, typed_rels(table, frame)))
        for table, frame in updates.items():
            steps.append(("update", table, typed_nodes(table, frame.assign(run="-")).drop(columns="run")))
        for table, frame in rel_updates.items():
            steps.append(("update_rels", table, typed_rels(table, frame)))
        replaced = set(replace) | set(replace_rels)
        if replaced and self._batch is None:
            with self.batch(run, sorted(replaced | set(nodes))):
                self._write_batch_steps(steps)
        else:
            self._write_batch_steps(steps)

    def _write_batch_steps(self, steps: list[tuple[str, str, Any]]) -> None:
        """`_write_all`; the first write of a batch also flags its marker as applied."""
        if self._batch is not None and not self._batch["applied"]:
            steps = [pending.applied_step(self._batch["uid"]), *steps]
        self._write_all(steps)
        if self._batch is not None:
            self._batch["applied"] = True

    @contextmanager
    def batch(self, run: str, tables: Iterable[str], op: str = "replace") -> Iterator[None]:
        """Group a run's writes of `tables`: all of them land, or the run is rolled back.

        Nested batches join the outer one. On any exception (Ctrl-C, SIGTERM, a guard stop,
        a failed statement) the marker decides: untouched runs keep their previous state,
        applied ones lose the partial rows; on a crash the next open does the same.
        """
        if self._batch is not None:
            yield
            return
        uid = pending.mark(self, run, op, tables)
        self._batch = {"uid": uid, "applied": False}
        outcome.begin(run)
        try:
            pending.kill_point("marked")
            yield
        except BaseException as exc:
            self._batch = None
            if self._settle(run, uid, tables) and isinstance(exc, ApdError):
                raise StoreError(f"{exc}; run {run} was rolled back and is absent (its previous results had "
                                 "already been replaced): re-run the command") from None
            raise
        self._batch = None
        try:  # every write landed: an interrupt from here on still ends committed
            pending.kill_point("finished")
        finally:
            pending.clear(self, uid)
            outcome.committed(run)

    def _settle(self, run: str, uid: str, tables: list[str]) -> bool:
        """After a batch failed: roll the run back now; True if its previous results were gone.

        A second interrupt or error here leaves the marker for the next open to roll back.
        """
        try:
            rows = pending.pending(self)
            mine = rows[rows["uid"] == uid]
            applied = bool(len(mine)) and bool(mine["applied"].iloc[0])
            pending.roll_back(self, uid, run, tables, applied)
            outcome.rolled_back(run, previous_kept=not applied)
            return applied
        except BaseException:
            return False

    def update(self, table: str, frame: pd.DataFrame) -> None:
        """Set properties on existing nodes, matched by `uid`."""
        self.write("", updates={table: frame})

    def drop_run(self, run: str) -> int:
        """Remove every node (and so every relationship) of `run`; returns the nodes removed."""
        before = self.counts(run)
        steps = [("stmt", queries.body("delete_run_nodes", table=t), {"run": run}) for t in ALL_NODES]
        self._write_all(steps)
        return int(before.sum()) if len(before) else 0

    def counts(self, run: str | None = None) -> pd.Series:
        """Node counts per label (for one run, or all runs as a frame indexed by run)."""
        frames = []
        for table in NODES:
            df = _with_columns(self._run(queries.body("count_nodes", table=table), {}), "count_nodes")
            df["label"] = table
            frames.append(df)
        allc = pd.concat(frames, ignore_index=True)
        if run is None:
            return allc
        sel = allc[allc["run"] == run]
        return sel.set_index("label")["nodes"].astype(int)

    def runs(self) -> pd.DataFrame:
        """One row per run: its Run properties and node counts per label."""
        runs = self.query("runs")
        counts = self.counts()
        if len(counts):
            wide = counts.pivot_table(index="run", columns="label", values="nodes", aggfunc="sum", fill_value=0)
            wide.columns = [f"n_{c.lower()}" for c in wide.columns]
            runs = runs.merge(wide.reset_index(), on="run", how="left").fillna(
                {c: 0 for c in wide.columns}
            )
            for c in wide.columns:
                runs[c] = runs[c].astype(int)
        return runs.sort_values("run", ignore_index=True)
