"""Minimal reproductions of LadybugDB 0.22.0 crash-recovery bugs, plain `ladybug` calls
(the last one on frames shaped like ours: it needs many distinct patterns to crash).

Each test asserts what a durable store should do and is expected to fail on 0.22.0.
The xfails are strict: the day a LadybugDB release fixes one, its test passes, the suite
goes red and says so, and the workaround in toolkit/store/pending.py or
toolkit/store/ladybug.py can go.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ladybug = pytest.importorskip("ladybug")

SETUP = """
import os, signal, sys, threading, time
import numpy as np, pandas as pd, ladybug
path = sys.argv[1]
def frame(run, n=20000):
    return pd.DataFrame({"uid": [f"{run}{i}" for i in range(n)], "run": run, "v": np.arange(n)})
def kill_when(file):
    def watch():
        while not os.path.exists(file):
            time.sleep(0.0002)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, daemon=True).start()
"""


def run_child(body: str, path: str) -> None:
    proc = subprocess.run([sys.executable, "-c", SETUP + textwrap.dedent(body), path], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()[-500:]  # the child always dies by SIGKILL


def count(path: str, read_only: bool = False, **kw) -> dict:
    db = ladybug.Database(path, read_only=read_only, **kw)
    try:
        rows = ladybug.Connection(db).execute("MATCH (t:T) RETURN t.run AS run, count(*) AS n").get_as_df()
        return dict(zip(rows["run"], rows["n"].astype(int)))
    finally:
        db.close()


@pytest.mark.xfail(strict=True, reason="LadybugDB 0.22.0: COPY FROM is not in the WAL; a kill during the "
                                         "checkpoint after a commit keeps its deletes and loses its copied rows")
def test_committed_copy_survives_a_kill_during_checkpoint(tmp_path):
    path = str(tmp_path / "a.lbug")
    run_child("""
        c = ladybug.Connection(ladybug.Database(path))
        c.execute("CREATE NODE TABLE T(uid STRING, run STRING, v INT64, PRIMARY KEY(uid))")
        c.execute("COPY T FROM $df", {"df": frame("old")})
        kill_when(path + ".shadow")
        c.execute("BEGIN TRANSACTION")
        c.execute("MATCH (t:T) WHERE t.run = 'old' DELETE t")
        c.execute("COPY T FROM $df", {"df": frame("new")})
        c.execute("COMMIT")  # returns only after the checkpoint; the kill lands inside it
        time.sleep(30)
    """, path)
    got = count(path)
    assert got in ({"old": 20000}, {"new": 20000})  # 0.22.0: {} (old deleted, new rows lost)


@pytest.mark.xfail(strict=True, reason="LadybugDB 0.22.0: a store with pending checkpoint recovery cannot be "
                                         "opened read-only")
def test_read_only_open_after_a_kill_during_checkpoint(tmp_path):
    path = str(tmp_path / "b.lbug")
    run_child("""
        c = ladybug.Connection(ladybug.Database(path))
        c.execute("CREATE NODE TABLE T(uid STRING, run STRING, v INT64, PRIMARY KEY(uid))")
        kill_when(path + ".shadow")
        c.execute("COPY T FROM $df", {"df": frame("a")})
        time.sleep(30)
    """, path)
    count(path, read_only=True)  # 0.22.0: "Cannot open database in read-only mode while checkpoint recovery is pending"


@pytest.mark.xfail(strict=True, reason="LadybugDB 0.22.0: a WAL cut off mid-record fails its checksum on open "
                                         "instead of replaying the committed transactions before the cut")
def test_truncated_wal_replays_its_committed_part(tmp_path):
    path = str(tmp_path / "c.lbug")
    run_child("""
        c = ladybug.Connection(ladybug.Database(path, auto_checkpoint=False))
        c.execute("CREATE NODE TABLE T(uid STRING, run STRING, v INT64, PRIMARY KEY(uid))")
        c.execute("CHECKPOINT")
        for run in ("a", "b", "c"):
            c.execute("UNWIND range(1, 1000) AS k CREATE (:T {uid: $run + string(k), run: $run, v: k})", {"run": run})
        os.kill(os.getpid(), signal.SIGKILL)
    """, path)
    wal = path + ".wal"
    os.truncate(wal, os.path.getsize(wal) - 100)  # the tail of the last commit never reached the disk
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(path, copy / "c.lbug")
    shutil.copy(wal, copy / "c.lbug.wal")
    # the committed part is there: LadybugDB replays it when told not to throw
    assert count(str(copy / "c.lbug"), throw_on_wal_replay_failure=False) == {"a": 1000, "b": 1000}
    assert count(path) == {"a": 1000, "b": 1000}  # 0.22.0: "Checksum verification failed, the WAL file is corrupted"


ROLLBACK_CHILD = """
import sys, ladybug
from tests.apd_graph import random_apd
from toolkit.store import queries
from toolkit.store.schema import NODES, typed_nodes, typed_rels
c = ladybug.Connection(ladybug.Database(sys.argv[1]))
for s in queries.statements(queries.body("ladybug/schema")):
    c.execute(s)
def copy(frames, tables):
    nodes, rels = frames
    for t in tables:
        if t in nodes:
            df = typed_nodes(t, nodes[t])
            c.execute(queries.body("ladybug/copy_nodes", table=t, columns=", ".join(df.columns)), {"df": df})
        else:
            c.execute(queries.body("ladybug/copy_rels", table=t), {"df": typed_rels(t, rels[t])})
old, new = (random_apd("big", n=25000, seed=s, width=100000) for s in (0, 1))  # nearly every pattern distinct
copy(old, ["Run", "Pattern", "Label", "Instance", "NEXT", "PREDICTS", "ACTIVATES"])
c.execute("BEGIN TRANSACTION")
for t in NODES:
    c.execute(queries.body("delete_run_nodes", table=t), {"run": "big"})
copy(new, ["Run", "Pattern", "Label", "NEXT", "PREDICTS"])
c.execute("ROLLBACK")
"""


@pytest.mark.xfail(strict=True, reason="LadybugDB 0.22.0: rolling back a transaction that deleted a run and "
                                         "bulk-loaded nodes and relationships crashes the process (SIGSEGV)")
def test_rollback_of_a_replace_does_not_crash(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", ROLLBACK_CHILD, str(tmp_path / "d.lbug")], cwd=root,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}"  # 0.22.0: -11 (SIGSEGV) in ROLLBACK
