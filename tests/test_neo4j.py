"""The Neo4j adapter against the real Neo4j 5 server of the test session (tools/neo4j/serve).

What only a real server can judge: the read guard decided from the server's own plan, the
one-line faults (wrong password, unknown database, server down), and a run's writes
surviving a SIGKILL of the server or of the writer mid-ingest without a partial run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.apd_graph import random_apd, write_random_run
from tests.cli import Apd
from tests.neo4j_server import empty_neo4j
from toolkit.store import open_store
from toolkit.store.maintenance import problems
from toolkit.store.schema import NODES

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def neo(neo4j_server):
    empty_neo4j(neo4j_server["bolt"])
    with open_store(neo4j_server["bolt"]) as s:
        yield s


def test_same_named_query_same_frame_on_both_backends(neo, tmp_path):
    with open_store(str(tmp_path / "x.lbug")) as lbug:
        for s in (neo, lbug):
            write_random_run(s, "r", n=300, seed=11)
        for name in ("patterns", "transitions", "layer_summary", "runs"):
            a, b = neo.query(name, run="r"), lbug.query(name, run="r")
            assert list(a.columns) == list(b.columns) and len(a) > 0, name
            assert a.dtypes.astype(str).tolist() == b.dtypes.astype(str).tolist(), name
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def test_graph_reads_and_schema_procedures_pass(neo4j_server, neo):
    nodes, _ = write_random_run(neo, "r", n=120, seed=3)
    apd = Apd(neo4j_server["bolt"])
    assert apd.json("cypher", "MATCH (i:Instance) WHERE i.run = $run RETURN count(i) AS n", "-p", "run=r") == [{"n": 120}]
    labels = {r["label"] for r in apd.json("cypher", "CALL db.labels() YIELD label RETURN label")}
    assert labels >= {"Instance", "Pattern", "Run", "Label"}
    assert apd.json("cypher", "CYPHER 5 MATCH (p:Pattern) WHERE p.run = 'r' RETURN count(p) AS n") == \
        [{"n": int(nodes["Pattern"].shape[0])}]


def test_wrong_password_unknown_database_and_server_down(neo4j_server, monkeypatch):
    apd = Apd(neo4j_server["bolt"])
    monkeypatch.setenv("APD_NEO4J_PASSWORD", "definitely-not-the-password")
    result = apd("runs", ok=False)
    assert result.exit_code == 1 and result.stderr == (
        f"Error: Neo4j at {neo4j_server['bolt']} refused the credentials of user 'neo4j': "
        "set APD_NEO4J_USER / APD_NEO4J_PASSWORD\n")
    monkeypatch.setenv("APD_NEO4J_PASSWORD", neo4j_server["password"])
    monkeypatch.setenv("APD_NEO4J_DATABASE", "nosuch")
    result = apd("runs", ok=False)
    assert result.exit_code == 1 and result.stderr == (
        f"Error: Neo4j at {neo4j_server['bolt']} has no database 'nosuch': set APD_NEO4J_DATABASE to one it has\n")
    monkeypatch.delenv("APD_NEO4J_DATABASE")
    down = Apd("bolt://127.0.0.1:1")  # nothing listens on port 1
    result = down("runs", ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("Error: cannot reach Neo4j at bolt://127.0.0.1:1: ")
    assert len(result.stderr.splitlines()) == 1


def _writer(uri: str, run: str, n: int) -> subprocess.Popen:
    """`tests/store_writer.py`: ingest's chunked write of a random run, as its own process."""
    return subprocess.Popen([sys.executable, "-m", "tests.store_writer", uri, run, "5", str(n), "5000"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_writing(uri: str, run: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until some of `run`'s instances have committed (the write is well under way)."""
    deadline = time.monotonic() + timeout
    with open_store(uri, read_only=True) as s:
        while time.monotonic() < deadline and proc.poll() is None:
            got = s.read("MATCH (i:Instance) WHERE i.run = $run RETURN count(i) AS n", {"run": run})
            if int(got["n"].iloc[0]) >= 5000:
                return
            time.sleep(0.2)
    raise AssertionError(f"the writer never got under way (exit {proc.poll()}): {proc.stderr.read() if proc.poll() is not None else ''}")


def _whole_or_absent(s, run: str, n: int) -> int:
    counts = s.counts(run)
    assert int(counts.get("Instance", 0)) in (0, n), counts.to_dict()
    return int(counts.get("Instance", 0))


def test_sigkill_of_the_writer_mid_ingest_leaves_no_partial_run(neo4j_server, neo):
    uri = neo4j_server["bolt"]
    write_random_run(neo, "keep", n=200, seed=4)
    keep = neo.counts("keep").to_dict()
    proc = _writer(uri, "big", 60_000)
    _wait_until_writing(uri, "big", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_store(uri, read_only=True) as s:
        assert len(s.query("pending_writes")) == 1  # the dead writer's marker
    deadline = time.monotonic() + 30  # the server notices the closed connection and ends its transactions
    while True:
        with open_store(uri) as s:  # a writable open rolls the dead writer's run back
            if s.query("pending_writes").empty or time.monotonic() > deadline:
                break
        time.sleep(0.5)
    with open_store(uri, read_only=True) as s:
        assert s.query("pending_writes").empty
        assert _whole_or_absent(s, "big", 60_000) == 0
        assert s.counts("keep").to_dict() == keep


def test_recovery_leaves_a_running_writer_alone(neo):
    """A second client's writable open while a write is under way: the marker is live, so
    it is not rolled back, and the write finishes whole."""
    nodes, rels = random_apd("live", n=3000, seed=6)
    with neo.batch("live", list(NODES), op="ingest"):
        neo.write("live", {k: v for k, v in nodes.items() if k != "Instance"}, replace=list(NODES))
        with open_store(neo.location) as other:
            assert list(other.query("pending_writes")["run"]) == ["live"]
            assert other.live_runs() == {"live"}
        neo.write("live", {"Instance": nodes["Instance"]}, rels)
    assert neo.query("pending_writes").empty
    assert neo.counts("live").to_dict() == {t: len(f) for t, f in nodes.items()}


def test_sigkill_of_the_server_mid_ingest_leaves_no_partial_run(tmp_path):
    """A private server on a data folder: killed (SIGKILL, the whole JVM) mid-write, then
    started again on the same data: the writer said so in one line, the run is absent, and
    running the write again gives the whole run with every check of `apd store check` passing."""
    from tests.neo4j_server import missing_tools, neo4j_server

    if missing_tools():
        pytest.skip(missing_tools())
    data = tmp_path / "data"
    saved = os.environ.get("APD_NEO4J_PASSWORD")
    try:
        with neo4j_server(tmp_path / "first", data=data) as srv:
            os.environ["APD_NEO4J_PASSWORD"] = srv["password"]
            with open_store(srv["bolt"]) as s:
                write_random_run(s, "keep", n=200, seed=4)
                keep = s.counts("keep").to_dict()
            proc = _writer(srv["bolt"], "big", 60_000)
            _wait_until_writing(srv["bolt"], "big", proc)
            os.killpg(srv["pgid"], signal.SIGKILL)
            _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "Neo4j" in err and ("lost the connection" in err or "cannot reach" in err), err
        with neo4j_server(tmp_path / "second", data=data) as srv:
            os.environ["APD_NEO4J_PASSWORD"] = srv["password"]
            with open_store(srv["bolt"]) as s:  # writable: rolls the cut-off run back
                assert s.query("pending_writes").empty
                assert _whole_or_absent(s, "big", 60_000) == 0
                assert s.counts("keep").to_dict() == keep
            again = _writer(srv["bolt"], "big", 60_000)  # a re-run gives the clean graph
            _, err = again.communicate(timeout=300)
            assert again.returncode == 0, err
            with open_store(srv["bolt"], read_only=True) as s:
                assert _whole_or_absent(s, "big", 60_000) == 60_000
                assert problems(s) == []  # counts, keys, supports, uids and the uid index all agree
                assert s.counts("keep").to_dict() == keep
    finally:
        os.environ.pop("APD_NEO4J_PASSWORD") if saved is None else os.environ.__setitem__("APD_NEO4J_PASSWORD", saved)
