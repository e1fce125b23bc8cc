"""The whole toolkit on Neo4j 5 (the session's test server), compared with LadybugDB.

`apd demo` into Neo4j, the same model ingested into LadybugDB, then split, flows, hardness,
MBH, every named query and the neo4j-admin export: equal results on both backends, dtypes
included.
"""
from __future__ import annotations

import pandas as pd
import pytest

from tests.cli import Apd
from tests.named_queries import as_options, canonical, params
from tests.neo4j_server import empty_neo4j
from toolkit.store import open_store, queries

RUNS = ("digits-train", "digits-test")


@pytest.fixture
def bolt(neo4j_server):
    empty_neo4j(neo4j_server["bolt"])
    return neo4j_server["bolt"]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows in a canonical order; `created` (a Run's ingest time) differs between the two ingests."""
    return canonical(pd.DataFrame(rows), drop=("created",))


def _same(a: list[dict], b: list[dict], what: str) -> None:
    fa, fb = _frame(a), _frame(b)
    assert list(fa.columns) == list(fb.columns), what
    pd.testing.assert_frame_equal(fa, fb, check_dtype=False, rtol=1e-9, obj=what)


def test_demo_split_flows_hardness_and_every_named_query(bolt, tmp_path):
    lbug, neo = Apd(str(tmp_path / "smoke.lbug")), Apd(bolt)
    model = str(tmp_path / "demo.pt")
    demo = neo.json("demo", "--epochs", "5", "--model", model)
    for run, split in zip(RUNS, ("train", "test")):  # the same model into LadybugDB
        lbug.json("ingest", model, "--dataset", "digits", "--split", split, "--run", run)
    _same(neo.json("runs"), lbug.json("runs"), "runs")  # provenance and node counts per label
    assert [r["instances"] for r in demo["runs"]] == [1347, 450]

    for run in RUNS:
        a, b = neo.json("split", "--run", run), lbug.json("split", "--run", run)
        assert {k: v for k, v in a.items() if k != "levels"} == {k: v for k, v in b.items() if k != "levels"}
        _same(a["levels"], b["levels"], f"split {run}")
        _same(neo.json("flows", "--run", run, "--layers", "2,3"), lbug.json("flows", "--run", run, "--layers", "2,3"),
              f"flows {run}")
        a, b = neo.json("hardness", "--run", run), lbug.json("hardness", "--run", run)
        for key in ("by_size", "stability"):
            _same(a.pop(key), b.pop(key), f"hardness {run} {key}")
        assert a == b

    mbh = ["mbh", "--run", RUNS[1], "--anchors", "5,17,40", "--coverage", "0.8,1", "--device", "cpu"]
    a, b = neo.json(*mbh), lbug.json(*mbh)  # MBH results written through Bolt: Blanket, Plane, COVERS, ...
    assert a["s"] == pytest.approx(b["s"], abs=1e-12) and a["classes"] == b["classes"]

    for name in queries.names():
        args = as_options(params(name, run=RUNS[1], runs=list(RUNS)))
        _same(neo.json("query", name, *args), lbug.json("query", name, *args), f"query {name}")
    with open_store(bolt, read_only=True) as a, open_store(lbug.store_path, read_only=True) as b:
        for name in queries.names():  # the same frame, dtypes included (pandas 3 infers `str`)
            p = params(name, run=RUNS[1], runs=list(RUNS))
            fa, fb = a.query(name, **p), b.query(name, **p)
            assert list(fa.columns) == list(fb.columns) and len(fa) == len(fb), name
            if len(fb):  # an empty result's dtypes say nothing
                assert fa.dtypes.astype(str).tolist() == fb.dtypes.astype(str).tolist(), name
    a_dir, b_dir = tmp_path / "neo4j-admin", tmp_path / "ladybug-admin"  # the export templates over Bolt
    neo.json("export", "--run", RUNS[1], "--format", "neo4j-admin", "--out", str(a_dir))
    lbug.json("export", "--run", RUNS[1], "--format", "neo4j-admin", "--out", str(b_dir))
    assert sorted(p.name for p in a_dir.iterdir()) == sorted(p.name for p in b_dir.iterdir())
    for f in b_dir.glob("*.csv"):
        if f.name != "Run.csv":  # `created` differs
            assert sorted(f.read_text().splitlines()) == sorted((a_dir / f.name).read_text().splitlines()), f.name
    _geometry_pictures_and_maintenance(neo, lbug, tmp_path)


def _timeless(out: dict) -> dict:
    """A command's JSON without what differs between any two runs of it: wall time, output paths."""
    return {k: v for k, v in out.items() if k not in ("seconds", "path", "out", "store")}


def _geometry_pictures_and_maintenance(neo, lbug, tmp_path) -> None:
    """geometry, regions --save, evolution, plot, report, cypher, store info, drop and runs
    through Bolt, equal to LadybugDB's."""
    run = RUNS[1]
    a, b = neo.json("geometry", "--run", run, "--device", "cpu"), lbug.json("geometry", "--run", run, "--device", "cpu")
    _same(a, b, "geometry")
    assert len(a) == 450
    dist = "MATCH (i:Instance) WHERE i.run = $run RETURN i.idx AS idx, i.boundary_dist AS d ORDER BY idx"
    _same(neo.json("cypher", dist, "-p", f"run={run}"), lbug.json("cypher", dist, "-p", f"run={run}"), "boundary_dist")
    plane = ["regions", "--run", run, "--anchors", "0,1,2", "--scale", "1.5", "--device", "cpu", "--save"]
    a, b = _timeless(neo.json(*plane)), _timeless(lbug.json(*plane))
    assert a == b and a["regions"] > 1
    _same(neo.json("query", "planes", "-p", f"run={run}"), lbug.json("query", "planes", "-p", f"run={run}"), "planes")
    _same(neo.json("evolution", "--runs", "digits-*"), lbug.json("evolution", "--runs", "digits-*"), "evolution")
    for suffix in ("png", "svg"):
        a, b = ({**_timeless(apd.json("plot", "plane", "--run", run, "--anchors", "0,1,2", "--device", "cpu",
                                        "--out", str(tmp_path / f"{name}.{suffix}"))), "bytes": None}
                for apd, name in ((neo, "neo4j"), (lbug, "lbug")))
        assert a == b and a["regions"] > 1 and (tmp_path / f"neo4j.{suffix}").stat().st_size > 1000
    a = neo.json("report", "--run", run, "--out", str(tmp_path / "neo4j.html"), "--device", "cpu")
    b = lbug.json("report", "--run", run, "--out", str(tmp_path / "lbug.html"), "--device", "cpu")
    assert {**_timeless(a), "bytes": None} == {**_timeless(b), "bytes": None} and a["plane"]["regions"] > 1
    info = neo.json("store", "info")
    assert info["path"] == neo.store_path and info["bytes"] is None and info["files"] == {}
    _same(info["runs"], lbug.json("store", "info")["runs"], "store info")
    neo.json("drop", "--run", RUNS[0])
    lbug.json("drop", "--run", RUNS[0])
    _same(neo.json("runs"), lbug.json("runs"), "runs after drop")
    assert [r["run"] for r in neo.json("runs")] == [run]



def test_empty_results_keep_their_columns(bolt):
    with open_store(bolt, read_only=True) as s:
        for name in queries.names():
            p = params(name, run="no-such-run", runs=["no-such-run"])
            got = s.query(name, **p)
            if "run" in p or "runs" in p:  # the others read every run (runs, store bookkeeping)
                assert got.empty, name
            assert list(got.columns) == queries.columns(name), name
