"""The Neo4j adapter against a real server: runs only when APD_NEO4J_URI is set.

Start one with `docker compose up -d` and set APD_NEO4J_URI=bolt://localhost:7687,
APD_NEO4J_USER=neo4j, APD_NEO4J_PASSWORD=<the password in docker-compose's env>.
"""
from __future__ import annotations

import os

import pandas as pd
import pytest

from tests.apd_graph import random_apd
from toolkit.store import StoreError, open_store
from toolkit.store.schema import NODES

URI = os.environ.get("APD_NEO4J_URI")
needs_server = pytest.mark.skipif(not URI, reason="APD_NEO4J_URI is not set: no Neo4j server to test against")

RUN = "apd-test-neo4j"


@pytest.fixture
def neo():
    with open_store(URI) as s:
        s.drop_run(RUN)
        yield s
        s.drop_run(RUN)


@needs_server
def test_same_named_query_same_frame_on_both_backends(neo, store):
    nodes, rels = random_apd(RUN, n=300, seed=11)
    for s in (neo, store):
        s.write(RUN, nodes, rels, replace=list(NODES))
    for name in ("patterns", "transitions", "layer_summary"):
        a, b = neo.query(name, run=RUN), store.query(name, run=RUN)
        assert list(a.columns) == list(b.columns)
        assert a.dtypes.astype(str).tolist() == b.dtypes.astype(str).tolist(), name
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


@needs_server
def test_rewrite_and_drop(neo):
    nodes, rels = random_apd(RUN, seed=12)
    neo.write(RUN, nodes, rels, replace=list(NODES))
    first = neo.counts(RUN).to_dict()
    neo.write(RUN, nodes, rels, replace=list(NODES))
    assert neo.counts(RUN).to_dict() == first
    assert neo.drop_run(RUN) == sum(first.values())
    assert neo.counts(RUN).sum() == 0


@needs_server
def test_read_refuses_writes(neo):
    with pytest.raises(StoreError, match="read-only"):
        neo.read("CREATE (:Label {uid: 'apd-test-x', run: $run, value: 1})", {"run": RUN})


@needs_server
def test_wrong_password(monkeypatch):
    monkeypatch.setenv("APD_NEO4J_PASSWORD", "definitely-not-the-password")
    with pytest.raises(StoreError, match="refused the credentials"):
        open_store(URI)


# --- error mapping without a server: the driver is replaced by one that fails as Neo4j does ---


class _FailingDriver:
    """Stands in for `neo4j.GraphDatabase.driver(...)`: connects, or fails, as told."""

    def __init__(self, connect_error=None, read_error=None):
        self.connect_error, self.read_error = connect_error, read_error

    def verify_connectivity(self):
        if self.connect_error:
            raise self.connect_error

    def execute_query(self, *args, **kwargs):
        return None

    def session(self, **kwargs):
        driver = self

        class _Session:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute_read(self, *args):
                raise driver.read_error

        return _Session()

    def close(self):
        pass


def _with_driver(monkeypatch, driver):
    import neo4j

    monkeypatch.setattr(neo4j.GraphDatabase, "driver", lambda uri, auth: driver)


def test_wrong_password_is_one_line(monkeypatch, apd):
    from neo4j.exceptions import AuthError

    _with_driver(monkeypatch, _FailingDriver(AuthError("The client is unauthorized due to authentication failure.")))
    monkeypatch.setenv("APD_NEO4J_USER", "alice")
    apd.store_path = "bolt://db.invalid:7687"
    result = apd("runs", ok=False)
    assert result.exit_code == 1
    assert result.stderr == ("Error: Neo4j at bolt://db.invalid:7687 refused the credentials of user 'alice': "
                             "set APD_NEO4J_USER / APD_NEO4J_PASSWORD\n")


def test_write_through_cypher_is_refused_on_neo4j(monkeypatch, apd):
    from neo4j.exceptions import ClientError

    refusal = ClientError._hydrate_neo4j(code="Neo.ClientError.Statement.AccessMode",
                                         message="Writing in read access mode not allowed.")
    _with_driver(monkeypatch, _FailingDriver(read_error=refusal))
    apd.store_path = "neo4j://db.invalid:7687"
    result = apd("cypher", "CREATE (:Label {uid: 'x', run: 'x', value: 1})", ok=False)
    assert result.exit_code == 1
    assert result.stderr == "Error: refused: `apd cypher` is read-only; writes go through apd commands\n"


def test_writes_are_refused_before_sending(monkeypatch, apd):
    """A server that does not enforce read access mode (this one would answer anything):
    the write never reaches it."""
    driver = _FailingDriver(read_error=AssertionError("the write was sent to the server"))
    _with_driver(monkeypatch, driver)
    apd.store_path = "bolt://db.invalid:7687"
    for text in ("MATCH (n) DETACH DELETE n", "MATCH (n:Instance) SET n.label = 0", "merge (:Label {uid: 'x'})"):
        result = apd("cypher", text, ok=False)
        assert result.exit_code == 1
        assert result.stderr == "Error: refused: `apd cypher` is read-only; writes go through apd commands\n"


def test_missing_database_and_lost_connection_are_one_line(monkeypatch, apd):
    from neo4j.exceptions import ClientError, ServiceUnavailable

    missing = ClientError._hydrate_neo4j(code="Neo.ClientError.Database.DatabaseNotFound",
                                         message="Graph not found: nosuch")
    _with_driver(monkeypatch, _FailingDriver(read_error=missing))
    monkeypatch.setenv("APD_NEO4J_DATABASE", "nosuch")
    apd.store_path = "bolt://db.invalid:7687"
    result = apd("cypher", "MATCH (n) RETURN count(n) AS n", ok=False)
    assert result.stderr == ("Error: Neo4j at bolt://db.invalid:7687 has no database 'nosuch': "
                             "set APD_NEO4J_DATABASE to one it has\n")
    _with_driver(monkeypatch, _FailingDriver(read_error=ServiceUnavailable("Connection to db.invalid lost")))
    result = apd("cypher", "MATCH (n) RETURN count(n) AS n", ok=False)
    assert result.exit_code == 1
    assert result.stderr == ("Error: lost the connection to Neo4j at bolt://db.invalid:7687: "
                             "Connection to db.invalid lost\n")


def test_bulk_writes_are_batched_unwinds_of_plain_values():
    """What the adapter sends for one Store.write: the linted neo4j/ statements, rows in
    batches of BATCH, values the driver can serialise (no numpy scalars), in one transaction."""
    from tests.apd_graph import random_apd
    from toolkit.store import neo4j as adapter
    from toolkit.store.schema import typed_nodes, typed_rels

    nodes, rels = random_apd("r", n=25_000, seed=3)
    steps = [("stmt", "MATCH (n:`Run`) WHERE n.run = $run DETACH DELETE n", {"run": "r"}),
             ("nodes", "Instance", typed_nodes("Instance", nodes["Instance"])),
             ("rels", "ACTIVATES", typed_rels("ACTIVATES", rels["ACTIVATES"]))]
    sent = []

    class _Tx:
        def run(self, text, params):
            sent.append((text, params))
            return self

        def consume(self):
            return None

    adapter._apply(_Tx(), steps)
    assert sent[0] == steps[0][1:]
    node_batches = [p["rows"] for t, p in sent if "CREATE (n:`Instance`)" in t]
    assert [len(b) for b in node_batches] == [10_000, 10_000, 5_000]
    assert node_batches[0][0] == {"uid": "r:i:0", "run": "r", "idx": 0, "label": int(nodes["Instance"]["label"][0]),
                                  "pred": int(nodes["Instance"]["pred"][0]),
                                  "correct": bool(nodes["Instance"]["correct"][0]), "forgetting": 0,
                                  "never_learned": False, "cluster": -1}
    rel_batches = [p["rows"] for t, p in sent if "CREATE (a)-[e:`ACTIVATES`]->(b)" in t]
    assert sum(len(b) for b in rel_batches) == 25_000 * 3
    first = rel_batches[0][0]
    assert set(first) == {"src", "dst", "props"} and set(first["props"]) == {"layer"}
    for row in node_batches[0][:100] + [r["props"] for r in rel_batches[0][:100]]:
        assert all(type(v) in (str, int, float, bool) for v in row.values())
