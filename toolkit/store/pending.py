"""Run-level write markers: a replace that is cut off is rolled back on the next open.

LadybugDB 0.22 does not log `COPY FROM` in its write-ahead log, so a process killed while
the checkpoint after a commit runs recovers the transaction's deletes but not its copied
rows (tests/test_ladybug_upstream.py). A transaction alone therefore cannot make a replace
atomic. Instead every replace is bracketed by a `PendingWrite` node:

1. CREATE the marker (applied = false) and commit: logged, so it survives any crash.
2. The run's writes: the first one's deletes commit in one transaction with applied = true;
   then each bulk load commits on its own (LadybugDB 0.22 can crash rolling one back).
3. DELETE the marker, in its own transaction after the writes committed and checkpointed.

A marker left over means the write never finished: with applied = false the run was never
touched and the marker is just removed; with applied = true the run's nodes of the marked
labels (and relationships of the marked types) are deleted (its previous results were
already replaced; nothing half-written stays).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pandas as pd

from toolkit.store import queries
from toolkit.store.schema import PENDING, RELS

if TYPE_CHECKING:
    from toolkit.store.base import Store

TABLE = PENDING


def pending(store: "Store") -> pd.DataFrame:
    """The markers of writes that have not finished (columns of cypher/pending_writes.cypher)."""
    return store.query("pending_writes")


def mark(store: "Store", run: str, op: str, tables: list[str]) -> str:
    """Commit a marker for a write of `tables` of `run`; returns its uid."""
    uid = f"{run}:w:{uuid.uuid4().hex[:12]}"
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    store._write_all([("stmt", queries.body("pending_mark", table=TABLE),
                       {"uid": uid, "run": run, "op": op, "tables": ",".join(tables), "started": started})])
    return uid


def applied_step(uid: str) -> tuple[str, str, dict]:
    """The statement that flags marker `uid` as applied, to run inside the first changing transaction."""
    return ("stmt", queries.body("pending_applied", table=TABLE), {"uid": uid})


def clear(store: "Store", uid: str) -> None:
    store._write_all([("stmt", queries.body("pending_clear", table=TABLE), {"uid": uid})])


def roll_back(store: "Store", uid: str, run: str, tables: list[str], applied: bool) -> None:
    """Undo a cut-off write: delete the run's nodes of `tables` if it was applied, and the marker.

    One transaction of deletes only (all logged), so it is atomic even across a crash.
    """
    steps = [("stmt", delete_run(t), {"run": run}) for t in tables] if applied else []
    steps.append(("stmt", queries.body("pending_clear", table=TABLE), {"uid": uid}))
    store._write_all(steps)


def delete_run(table: str) -> str:
    """A node label's or relationship type's delete for one run (a marker names either)."""
    if table in RELS:
        rel = RELS[table]
        return queries.body("delete_run_rels", table=table, src=rel.src, dst=rel.dst)
    return queries.body("delete_run_nodes", table=table)


def recover(store: "Store") -> list[str]:
    """Roll back every cut-off write (called on a writable open); one line per run, also on stderr.

    A marker whose writer is still running (`Store.live_runs`) is left alone; when the store
    cannot tell, none is touched.
    """
    lines = []
    marks = pending(store)
    live = store.live_runs() if len(marks) else set()
    for w in marks.itertuples():
        if live is None or w.run in live:
            continue
        roll_back(store, w.uid, w.run, [t for t in w.tables.split(",") if t], bool(w.applied))
        what = "its partial results were removed" if w.applied else "the run was not touched"
        lines.append(f"run {w.run}: an interrupted write was rolled back ({what})")
    for line in lines:
        print(line, file=sys.stderr)
    return lines


# --- test hook ----------------------------------------------------------------------------
# APD_TEST_KILL_AT=<step>[:<k>] makes a writer send itself APD_TEST_KILL_SIGNAL (INT, TERM or
# KILL) the k-th time (default first) it reaches a named step, so that tests and
# bench/bench_interrupt.py can cut a write off exactly there. Step `checkpoint` fires from a
# thread once LadybugDB starts the checkpoint of that commit (its `.shadow` file appears):
# the point where a kill loses copied rows. Steps, in order: marked (marker committed),
# applied (a write's first statement ran), copied (its deletes ran, not yet committed),
# checkpoint (its bulk loads' checkpoints), committed (the write's loads all committed),
# finished (all writes done, marker not cleared).
_reached: dict[str, int] = {}


def kill_point(step: str, path: str | None = None) -> None:
    """Send the test signal if APD_TEST_KILL_AT names `step` and this is its k-th arrival."""
    target = os.environ.get("APD_TEST_KILL_AT")
    if not target or target.split(":")[0] != step:
        return
    _reached[step] = _reached.get(step, 0) + 1
    if _reached[step] != int(target.partition(":")[2] or 1):
        return
    sig = getattr(signal, "SIG" + os.environ.get("APD_TEST_KILL_SIGNAL", "KILL"))
    if step == "checkpoint":
        threading.Thread(target=_kill_on_shadow, args=(path, sig), daemon=True).start()
        return
    os.kill(os.getpid(), sig)


def _kill_on_shadow(path: str | None, sig: int) -> None:
    shadow = f"{path}.shadow"
    while not os.path.exists(shadow):
        time.sleep(0.0002)
    os.kill(os.getpid(), sig)
