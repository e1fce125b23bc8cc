"""Store safety: interrupted replaces recover to a committed state, reads never write,
writers lock before work, Ctrl-C says what happened, store maintenance keeps the graph."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.apd_graph import write_random_run
from tests.cli import invoke
from tests.lock_holder import lock_held
from tests.store_writer import write
from toolkit.store import guard, open_store, pending

ROOT = Path(__file__).resolve().parents[1]
N, CHUNK = 6000, 2500  # a large run the chunked way: the graph, then 3 instance chunks
OLD, NEW = 0, 1  # seeds of the run's previous and new contents


def fingerprint(store, run: str) -> dict:
    """Node and ACTIVATES counts and every pattern's support: what 'the same graph' means here."""
    counts = store.counts(run)
    edges = store.read("MATCH (i:Instance)-[a:ACTIVATES]->(:Pattern) WHERE i.run = $run RETURN count(a) AS n",
                       {"run": run})
    pats = store.query("patterns", run=run)[["layer", "key", "support", "errors"]]
    return {"counts": counts[counts > 0].to_dict(), "activates": int(edges["n"].iloc[0]),
            "patterns": pats.to_dict("records")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A clean store with runs `keep` and `big` (old contents), and the same with `big` replaced cleanly."""
    base = tmp_path_factory.mktemp("clean")
    clean, replaced = str(base / "clean.lbug"), str(base / "replaced.lbug")
    write(clean, "keep", 7, 500, CHUNK)
    write(clean, "big", OLD, N, CHUNK)
    shutil.copy(clean, replaced)
    write(replaced, "big", NEW, N, CHUNK)
    with open_store(clean, read_only=True) as s:
        old, keep = fingerprint(s, "big"), fingerprint(s, "keep")
    with open_store(replaced, read_only=True) as s:
        new = fingerprint(s, "big")
    assert old != new and old["counts"]["Instance"] == N
    return {"clean": clean, "old": old, "new": new, "keep": keep, "size": guard.store_bytes(replaced)}


# (kill point, signal, what the store must hold for `big` afterwards)
CASES = [
    ("marked", "KILL", "old"),
    ("applied", "TERM", "old"),
    ("copied", "INT", "old"),
    ("copied", "KILL", "old"),
    ("checkpoint", "KILL", "absent"),  # LadybugDB loses the copied rows here; the marker cleans up
    ("checkpoint", "INT", "absent"),
    ("committed", "KILL", "absent"),
    ("committed:3", "KILL", "absent"),  # after the second instance chunk
    ("finished", "TERM", "new"),
    ("finished", "KILL", "absent"),
]
EXIT = {"INT": 130, "TERM": 143, "KILL": -signal.SIGKILL}


@pytest.mark.parametrize("step, sig, expected", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_interrupted_replace_recovers(stores, tmp_path, step, sig, expected):
    path = str(tmp_path / "s.lbug")
    shutil.copy(stores["clean"], path)
    env = {**os.environ, "APD_TEST_KILL_AT": step, "APD_TEST_KILL_SIGNAL": sig}
    proc = subprocess.run([sys.executable, "-m", "tests.store_writer", path, "big", str(NEW), str(N), str(CHUNK)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT[sig], proc.stderr
    if sig != "KILL":
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("interrupted: run big ")
        assert ("committed" in lines[0]) == (expected == "new")
        assert ("previous state" in lines[0]) == (expected == "old")

    err = io.StringIO()
    with redirect_stderr(err), open_store(path, read_only=True) as s:  # a read recovers what it must
        assert not len(pending.pending(s))
        got = fingerprint(s, "big")
        assert fingerprint(s, "keep") == stores["keep"]
    want = {"old": stores["old"], "new": stores["new"], "absent": {"counts": {}, "activates": 0, "patterns": []}}[expected]
    assert got == want
    rolled = [ln for ln in err.getvalue().splitlines() if ln.startswith("run big: an interrupted write was rolled back")]
    assert len(rolled) == (sig == "KILL")  # a dead writer's marker is found and said on one line
    if rolled:
        assert rolled[0].endswith("(the run was not touched)" if expected == "old" else "(its partial results were removed)")
    assert guard.store_bytes(path) < 3 * stores["size"]

    write(path, "big", NEW, N, CHUNK)  # re-running gives the clean result
    with open_store(path, read_only=True) as s:
        assert fingerprint(s, "big") == stores["new"]
        assert fingerprint(s, "keep") == stores["keep"]
    assert guard.store_bytes(path) < 3 * stores["size"]


# --- reads never write; a missing store is one line everywhere ----------------------------


MISSING = [
    ["runs"], ["query", "patterns", "-p", "run=x"], ["cypher", "RETURN 1 AS x"], ["hardness", "--run", "x"],
    ["evolution", "--runs", "x*"], ["split", "--run", "x"], ["drop", "--run", "x"], ["flows", "--run", "x"],
    ["geometry", "--run", "x"], ["regions", "--run", "x", "--anchors", "0,1,2"], ["store", "info"],
    ["store", "check"], ["store", "compact"],
]


@pytest.mark.parametrize("args", MISSING, ids=[" ".join(a[:2]) for a in MISSING])
def test_missing_store_is_one_line_and_never_created(tmp_path, args):
    path = tmp_path / "typo.lbug"
    result = invoke(*args, "--store", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"Error: no store at {path}: run `apd demo` or `apd ingest` first, or pass --store\n"
    assert list(tmp_path.iterdir()) == []


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_reads_work_on_a_read_only_store_and_change_nothing(split_demo, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "demo.lbug"
    shutil.copy(split_demo.store, path)
    before = snapshot(folder)
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    try:
        for args in (["runs"], ["query", "patterns", "-p", "run=digits-test"], ["hardness", "--run", "digits-test"],
                     ["evolution", "--runs", "digits-*"], ["cypher", "MATCH (i:Instance) RETURN count(i) AS n"],
                     ["store", "info"]):
            result = invoke(*args, "--store", str(path), "--json")
            assert result.exit_code == 0, (args, result.output)
        assert json_of(invoke("cypher", "MATCH (i:Instance) RETURN count(i) AS n", "--store", str(path), "--json")) \
            == [{"n": 1797}]
        assert snapshot(folder) == before
    finally:
        os.chmod(folder, 0o755)
        os.chmod(path, 0o644)


def json_of(result) -> object:
    import json

    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- writers lock before work; --wait waits ------------------------------------------------

def test_second_writer_fails_before_any_work(split_demo, tmp_path):
    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    with lock_held(path):
        # the model does not exist: failing on the lock first shows the lock is checked before any work
        for args in (["ingest", str(tmp_path / "none.pt"), "--run", "r"], ["demo", "--epochs", "1"],
                     ["split", "--run", "digits-test"], ["drop", "--run", "digits-test"]):
            result = invoke(*args, "--store", path)
            assert result.exit_code == 1
            assert result.stderr.startswith(f"Error: store {path} is locked by another process (PID ")
            assert result.stderr.endswith("close it and retry, or pass --wait SECONDS\n")


def test_wait_waits_for_the_lock(split_demo, tmp_path):
    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    with lock_held(path, seconds=1.5) as holder:
        result = invoke("drop", "--run", "digits-test", "--wait", "120", "--store", path, "--json")
        assert holder.poll() is not None  # it could only run once the holder had gone
        assert json_of(result)["nodes_removed"] > 0


# --- Ctrl-C and SIGTERM say what happened ----------------------------------------------------


@pytest.mark.parametrize("step, sig, code, line", [
    ("applied", "INT", 130, "interrupted: run digits-test rolled back, the store holds its previous state"),
    ("finished", "TERM", 143, "interrupted: run digits-test was committed"),
])
def test_interrupted_ingest_says_what_happened(split_demo, tmp_path, step, sig, code, line):
    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    with open_store(path, read_only=True) as s:
        before = s.counts("digits-test")
    env = {**os.environ, "APD_TEST_KILL_AT": step, "APD_TEST_KILL_SIGNAL": sig}
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "ingest", split_demo.model, "--split", "test",
                           "--run", "digits-test", "--store", path], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == code and proc.stderr == line + "\n"
    with open_store(path, read_only=True) as s:
        after = s.counts("digits-test")
        assert not len(pending.pending(s))
    want = before if step == "applied" else before.drop("Cluster")  # a re-ingest replaces the split's clusters
    assert after.to_dict() == want.to_dict()


# --- store info / check / compact --------------------------------------------------------------


def test_store_info_check_compact(split_demo, tmp_path):
    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    invoke("flows", "--run", "digits-test", "--store", path)  # a replace: leaves dead pages behind
    info = json_of(invoke("store", "info", "--store", path, "--json"))
    assert info["bytes"] == os.path.getsize(path) and info["pending"] == []
    assert {r["run"]: r["n_instance"] for r in info["runs"]} == {"digits-test": 450, "digits-train": 1347}
    assert json_of(invoke("store", "check", "--store", path, "--json"))["problems"] == []
    with open_store(path, read_only=True) as s:
        counts = s.counts().sort_values(["run", "label"], ignore_index=True)
        flows = s.query("flows", run="digits-test", layers=[2, 3], l1=2, l2=3, l3=3, l4=3, l5=3, l6=3, min_strength=1, label=-1)

    out = json_of(invoke("store", "compact", "--store", path, "--json"))
    assert out["bytes_after"] <= out["bytes_before"] and os.path.getsize(path) == out["bytes_after"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.lbug"]  # no .bak, export or copy left
    with open_store(path, read_only=True) as s:
        pd.testing.assert_frame_equal(s.counts().sort_values(["run", "label"], ignore_index=True), counts)
        pd.testing.assert_frame_equal(
            s.query("flows", run="digits-test", layers=[2, 3], l1=2, l2=3, l3=3, l4=3, l5=3, l6=3, min_strength=1, label=-1), flows)


def test_store_check_reports_a_damaged_run(split_demo, tmp_path):
    import ladybug

    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    db = ladybug.Database(path)
    ladybug.Connection(db).execute("MATCH (i:Instance) WHERE i.run = 'digits-test' AND i.idx < 10 DETACH DELETE i")
    db.close()
    result = invoke("store", "check", "--store", path)
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert "problem: run digits-test: 440 Instance nodes, Run.instances says 450" in problems
    assert "problem: run digits-test: 440 ACTIVATES edges on layer 1, not 450" in problems
    assert all(p.startswith("problem: run digits-test: ") for p in problems)


def test_cut_off_wal_keeps_the_committed_part(split_demo, tmp_path):
    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    kill = ("import os, signal, sys; from toolkit.store import open_store; s = open_store(sys.argv[1]); "
            "s.drop_run('digits-train'); s.drop_run('digits-test'); os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", kill, path], cwd=ROOT).returncode == -signal.SIGKILL
    wal = Path(path + ".wal")
    os.truncate(wal, wal.stat().st_size - 64)  # the second drop's commit never reached the disk
    err = io.StringIO()
    with redirect_stderr(err), open_store(path) as s:
        assert set(s.runs()["run"]) == {"digits-test"}  # the first drop committed, the second did not
    kept = list(tmp_path.glob("s.lbug.wal.broken-*"))
    assert len(kept) == 1
    assert err.getvalue() == (f"store {path}: its write-ahead log was cut off mid-write; the committed part was "
                              f"replayed, the cut-off log is kept as {kept[0]}\n")


# --- Instance.row and npz files with their own split --------------------------------------------


def test_npz_with_its_own_split_stores_source_rows(split_demo, tmp_path):
    from loaders.datasets import load_dataset
    from loaders.ingest import ingest
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    npz = tmp_path / "mine.npz"
    np.savez(npz, x_train=x[:300] / 16, y_train=y[:300], x_test=x[300:420] / 16, y_test=y[300:420])
    path = str(tmp_path / "s.lbug")
    info = ingest(split_demo.model, f"npz:{npz}", "test", run="mine-test", store=path)
    assert info["instances"] == 120
    with open_store(path, read_only=True) as s:
        got = s.read("MATCH (i:Instance) WHERE i.run = 'mine-test' RETURN i.idx AS idx, i.row AS row, i.label AS label "
                     "ORDER BY idx")
    assert got["row"].tolist() == list(range(300, 420))  # numbered on after the 300 train rows
    assert got["label"].tolist() == y[300:420].tolist()

    plain = tmp_path / "plain.npz"
    np.savez(plain, x=x / 16, y=y)
    ds = load_dataset(f"npz:{plain}", "test")
    np.testing.assert_array_equal(ds.x, (x / 16)[ds.rows].astype(np.float32))  # row r is the file's row r
    np.testing.assert_array_equal(ds.y, y[ds.rows])


def test_old_store_gains_instance_row(tmp_path):
    import ladybug

    from toolkit.store import queries

    path = str(tmp_path / "old.lbug")
    db = ladybug.Database(path)
    conn = ladybug.Connection(db)
    for stmt in queries.statements(queries.body("ladybug/schema").replace("idx INT64, row INT64,", "idx INT64,")):
        conn.execute(stmt)
    conn.execute("CREATE (:Instance {uid: 'a:i:0', run: 'a', idx: 0, label: 1, pred: 1, correct: true})")
    db.close()
    with open_store(path) as s:
        assert s.read("MATCH (i:Instance) RETURN i.row AS row")["row"].tolist() == [-1]  # -1: row unknown


def test_maintenance_queries_match_pandas(tmp_path):
    from toolkit.store.maintenance import rel_counts
    from toolkit.store.schema import RELS

    with open_store(str(tmp_path / "q.lbug")) as s:
        frames = {run: write_random_run(s, run, n=300 + 100 * k, L=3, seed=k) for k, run in enumerate(["a", "b"])}
        acts = pd.concat([rels["ACTIVATES"].assign(run=run) for run, (_, rels) in frames.items()])
        want = acts.groupby(["run", "layer"], as_index=False).size().rename(columns={"size": "edges"})
        pd.testing.assert_frame_equal(s.query("activates_counts"), want, check_dtype=False)
        assert rel_counts(s) == {t: sum(len(r.get(t, ())) for _, r in frames.values()) for t in RELS}
        uid = pending.mark(s, "a", "replace", ["Flow", "Cluster"])
        got = pending.pending(s)
        assert got[["uid", "run", "op", "tables", "applied"]].values.tolist() == [[uid, "a", "replace", "Flow,Cluster", False]]
        pending.clear(s, uid)
        assert len(pending.pending(s)) == 0


# --- the guard ----------------------------------------------------------------------------------


def test_guard_stops_a_write_past_the_memory_limit(split_demo, tmp_path, monkeypatch):
    path = str(tmp_path / "s.lbug")
    shutil.copy(split_demo.store, path)
    with open_store(path, read_only=True) as s:
        before = s.counts("digits-test")
    monkeypatch.setenv("APD_STORE_MAX_RSS", "1000000")  # 1 MB: any Python process is past it
    result = invoke("ingest", split_demo.model, "--split", "test", "--run", "digits-test", "--store", path)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: write stopped: process memory ")
    assert result.stderr.endswith("(APD_STORE_MAX_RSS)\n") and result.stderr.count("\n") == 1
    monkeypatch.delenv("APD_STORE_MAX_RSS")
    with open_store(path, read_only=True) as s:
        assert s.counts("digits-test").to_dict() == before.to_dict()
        assert not len(pending.pending(s))


def test_guard_sees_store_files_grow(tmp_path, monkeypatch):
    path = tmp_path / "g.lbug"
    path.write_bytes(b"x" * 1000)
    monkeypatch.setenv("APD_STORE_MAX_GROWTH", "5000")
    dog = guard.Watchdog(str(path), input_bytes=10, stop=lambda: None)
    assert dog.check() is None
    (tmp_path / "g.lbug.shadow").write_bytes(b"x" * 6000)  # side files count as the store's
    assert dog.check() == "write stopped: store files grew 0.0 GB, past the limit 0.0 GB (APD_STORE_MAX_GROWTH)"
    assert guard.max_growth_bytes(10) == 5000
    monkeypatch.delenv("APD_STORE_MAX_GROWTH")
    assert guard.max_growth_bytes(10) == 200 + guard.GB


def test_pending_recovery_on_an_unwritable_store_says_what_to_run(stores, tmp_path, monkeypatch):
    from toolkit.store import ladybug as ladybug_store

    path = str(tmp_path / "s.lbug")
    shutil.copy(stores["clean"], path)
    env = {**os.environ, "APD_TEST_KILL_AT": "checkpoint", "APD_TEST_KILL_SIGNAL": "KILL"}
    proc = subprocess.run([sys.executable, "-m", "tests.store_writer", path, "big", str(NEW), str(N), str(CHUNK)],
                          cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and Path(path + ".shadow").exists()  # recovery is pending

    real_open = ladybug_store.LadybugStore._open

    def read_only_mount(self, read_only, wait):  # what a read-only file system does to a writable open
        if not read_only:
            raise ladybug_store.StoreError(f"cannot open store {self.location}: IO exception: Read-only file system")
        return real_open(self, read_only, wait)

    monkeypatch.setattr(ladybug_store.LadybugStore, "_open", read_only_mount)
    monkeypatch.setattr(ladybug_store, "_writable", lambda p: False)
    result = invoke("runs", "--store", path)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: store {path} holds an interrupted write that must be recovered, but it is not "
                             f"writable here: run `apd store check --store {path}` where it is writable (or on a "
                             "writable copy of all its files)\n")
    monkeypatch.undo()
    result = invoke("store", "check", "--store", path, "--json")  # where it is writable: recovers, then all whole
    assert result.exit_code == 0 and json_of(result)["problems"] == [], result.output + result.stderr
    assert "run big: an interrupted write was rolled back (its partial results were removed)" in result.stderr
