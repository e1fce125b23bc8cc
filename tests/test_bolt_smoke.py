"""Smoke test of the Bolt path against a real server (ArcadeDB), compared with LadybugDB.

Opt-in: APD_BOLT_SMOKE=1 and `pip install arcadedb-embedded` at the version pinned in
tests/arcadedb_server.py. It shows that our Bolt adapter's writes, reads, named queries and
read-only guard work over the wire; it is not proof of Neo4j compatibility.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from tests.named_queries import params, as_options
from toolkit.store import open_store, queries

pytestmark = pytest.mark.skipif(os.environ.get("APD_BOLT_SMOKE") != "1",
                                reason="opt-in: APD_BOLT_SMOKE=1 with arcadedb-embedded installed")
RUNS = ("digits-train", "digits-test")


@pytest.fixture(scope="module")
def bolt(tmp_path_factory):
    pytest.importorskip("arcadedb_embedded")
    from tests.arcadedb_server import arcadedb_server

    with arcadedb_server(tmp_path_factory.mktemp("arcadedb")) as server:
        saved = {k: os.environ.get(k) for k in server["env"]}
        os.environ.update(server["env"])
        try:
            yield server["uri"]
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows in a canonical order; `created` (a Run's ingest time) differs between the two ingests."""
    df = pd.DataFrame(rows).drop(columns="created", errors="ignore")
    for c in df.columns:  # lists (flows' patterns) compare as text
        if df[c].map(lambda v: isinstance(v, list)).any():
            df[c] = df[c].map(json.dumps)
    return df.sort_values(list(df.columns), ignore_index=True) if len(df) else df


def _same(a: list[dict], b: list[dict], what: str) -> None:
    fa, fb = _frame(a), _frame(b)
    assert list(fa.columns) == list(fb.columns), what
    pd.testing.assert_frame_equal(fa, fb, check_dtype=False, rtol=1e-9, obj=what)


def test_demo_split_flows_hardness_and_every_named_query(bolt, tmp_path):
    from tests.conftest import Apd

    lbug, arc = Apd(str(tmp_path / "smoke.lbug")), Apd(bolt)
    model = str(tmp_path / "demo.pt")
    demo = arc.json("demo", "--epochs", "5", "--model", model)
    for run, split in zip(RUNS, ("train", "test")):  # the same model into LadybugDB
        lbug.json("ingest", model, "--dataset", "digits", "--split", split, "--run", run)
    _same(arc.json("runs"), lbug.json("runs"), "runs")  # provenance and node counts per label
    assert [r["instances"] for r in demo["runs"]] == [1347, 450]

    for run in RUNS:
        a, b = arc.json("split", "--run", run), lbug.json("split", "--run", run)
        assert {k: v for k, v in a.items() if k != "levels"} == {k: v for k, v in b.items() if k != "levels"}
        _same(a["levels"], b["levels"], f"split {run}")
        _same(arc.json("flows", "--run", run, "--layers", "2,3"), lbug.json("flows", "--run", run, "--layers", "2,3"),
              f"flows {run}")
        a, b = arc.json("hardness", "--run", run), lbug.json("hardness", "--run", run)
        for key in ("by_size", "stability"):
            _same(a.pop(key), b.pop(key), f"hardness {run} {key}")
        assert a == b

    mbh = ["mbh", "--run", RUNS[1], "--anchors", "5,17,40", "--coverage", "0.8,1", "--device", "cpu"]
    a, b = arc.json(*mbh), lbug.json(*mbh)  # MBH results written through Bolt: Blanket, Plane, COVERS, ...
    assert a["s"] == pytest.approx(b["s"], abs=1e-12) and a["classes"] == b["classes"]

    for name in queries.names():
        args = as_options(params(name, run=RUNS[1], runs=list(RUNS)))
        _same(arc.json("query", name, *args), lbug.json("query", name, *args), f"query {name}")
    with open_store(bolt, read_only=True) as a, open_store(lbug.store_path, read_only=True) as b:
        for name in queries.names():  # the same frame, dtypes included (pandas 3 infers `str`)
            p = params(name, run=RUNS[1], runs=list(RUNS))
            fa, fb = a.query(name, **p), b.query(name, **p)
            assert list(fa.columns) == list(fb.columns) and len(fa) == len(fb), name
            if len(fb):  # an empty result's dtypes say nothing (ArcadeDB sends no columns at all)
                assert fa.dtypes.astype(str).tolist() == fb.dtypes.astype(str).tolist(), name
    a_dir, b_dir = tmp_path / "arcadedb-admin", tmp_path / "ladybug-admin"  # the export templates over Bolt
    arc.json("export", "--run", RUNS[1], "--format", "neo4j-admin", "--out", str(a_dir))
    lbug.json("export", "--run", RUNS[1], "--format", "neo4j-admin", "--out", str(b_dir))
    assert sorted(p.name for p in a_dir.iterdir()) == sorted(p.name for p in b_dir.iterdir())
    for f in b_dir.glob("*.csv"):
        if f.name != "Run.csv":  # `created` differs
            assert sorted(f.read_text().splitlines()) == sorted((a_dir / f.name).read_text().splitlines()), f.name
    print(f"\nBolt smoke: demo, split, flows, hardness, mbh, {len(queries.names())} named queries and export "
          f"equal on {bolt} (ArcadeDB) and LadybugDB")


def test_empty_results_keep_their_columns(bolt):
    with open_store(bolt, read_only=True) as s:
        for name in queries.names():
            p = params(name, run="no-such-run", runs=["no-such-run"])
            got = s.query(name, **p)
            if "run" in p or "runs" in p:  # the others read every run (runs, store bookkeeping)
                assert got.empty, name
            assert list(got.columns) == queries.columns(name), name


def test_read_only_guard_holds_where_the_server_does_not_enforce_it(bolt, tmp_path):
    from tests.conftest import Apd

    arc = Apd(bolt)
    before = arc.json("cypher", "MATCH (n) RETURN count(n) AS n")
    for text in ("CREATE (:Label {uid: 'smoke', run: 'smoke', value: 1})", "MATCH (n:Label) DETACH DELETE n",
                 "MATCH (n:Instance) SET n.label = 0"):
        result = arc("cypher", text, ok=False)
        assert result.exit_code == 1
        assert result.stderr == "Error: refused: `apd cypher` is read-only; writes go through apd commands\n"
    assert arc.json("cypher", "MATCH (n) RETURN count(n) AS n") == before
    assert np.int64(before[0]["n"]) > 0
