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
pytestmark = pytest.mark.skipif(not URI, reason="APD_NEO4J_URI is not set: no Neo4j server to test against")

RUN = "apd-test-neo4j"


@pytest.fixture
def neo():
    with open_store(URI) as s:
        s.drop_run(RUN)
        yield s
        s.drop_run(RUN)


def test_same_named_query_same_frame_on_both_backends(neo, store):
    nodes, rels = random_apd(RUN, n=300, seed=11)
    for s in (neo, store):
        s.write(RUN, nodes, rels, replace=list(NODES))
    for name in ("patterns", "transitions", "layer_summary"):
        a, b = neo.query(name, run=RUN), store.query(name, run=RUN)
        assert list(a.columns) == list(b.columns)
        assert a.dtypes.astype(str).tolist() == b.dtypes.astype(str).tolist(), name
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def test_rewrite_and_drop(neo):
    nodes, rels = random_apd(RUN, seed=12)
    neo.write(RUN, nodes, rels, replace=list(NODES))
    first = neo.counts(RUN).to_dict()
    neo.write(RUN, nodes, rels, replace=list(NODES))
    assert neo.counts(RUN).to_dict() == first
    assert neo.drop_run(RUN) == sum(first.values())
    assert neo.counts(RUN).sum() == 0


def test_read_refuses_writes(neo):
    with pytest.raises(StoreError, match="read-only"):
        neo.read("CREATE (:Label {uid: 'apd-test-x', run: $run, value: 1})", {"run": RUN})


def test_wrong_password(monkeypatch):
    monkeypatch.setenv("APD_NEO4J_PASSWORD", "definitely-not-the-password")
    with pytest.raises(StoreError, match="refused the credentials"):
        open_store(URI)
