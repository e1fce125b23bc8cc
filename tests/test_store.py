"""The store interface on LadybugDB: bulk writes, named queries checked against pandas, replace, drop."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.apd_graph import random_apd, write_random_run
from tests.cli import invoke, one_line_error
from toolkit.store import StoreError, open_store, queries
from toolkit.store.schema import NODES, typed_nodes


def test_new_store_lists_no_runs(apd, store_path):
    open_store(store_path).close()
    assert apd.json("runs") == []


def test_named_queries_match_pandas(store):
    nodes, rels = write_random_run(store, "a", n=500, seed=1)
    got = store.query("patterns", run="a")
    want = nodes["Pattern"].sort_values(["layer", "support", "key"], ascending=[True, False, True])
    assert got[["layer", "key", "support", "errors"]].values.tolist() == \
        want[["layer", "key", "support", "errors"]].values.tolist()

    summary = store.query("layer_summary", run="a")
    by_layer = nodes["Pattern"].groupby("layer").agg(patterns=("key", "size"), instances=("support", "sum"),
                                                     errors=("errors", "sum"), max_support=("support", "max"))
    assert summary.set_index("layer").to_dict() == by_layer.to_dict()
    assert summary["instances"].dtype == np.int64  # INT128 sums come back as integers

    trans = store.query("transitions", run="a")
    assert trans["count"].sum() == 500 * 2  # NEXT counts sum to n per consecutive layer pair
    want = rels["NEXT"].assign(src=lambda d: d.src.str.split(":").str[-1], dst=lambda d: d.dst.str.split(":").str[-1])
    assert sorted(map(tuple, trans[["src", "dst", "count", "errors"]].values.tolist())) == \
        sorted(map(tuple, want[["src", "dst", "count", "errors"]].values.tolist()))


def test_rewriting_a_run_does_not_duplicate(store):
    write_random_run(store, "a", seed=1)
    first = store.counts("a")
    write_random_run(store, "a", seed=1)
    assert store.counts("a").to_dict() == first.to_dict()
    edges = store.read("MATCH (i:Instance)-[e:ACTIVATES]->(p:Pattern) WHERE i.run = $run RETURN count(e) AS n", {"run": "a"})
    assert edges["n"][0] == 200 * 3


def test_drop_removes_exactly_that_run(apd, store_path):
    with open_store(store_path) as s:
        nodes_a, _ = write_random_run(s, "a", seed=1)
        write_random_run(s, "b", seed=2)
        before_b = s.counts("b").to_dict()
    out = apd.json("drop", "--run", "a")
    assert out["nodes_removed"] == sum(len(f) for f in nodes_a.values())
    with open_store(store_path) as s:
        assert s.counts("a").sum() == 0
        assert s.counts("b").to_dict() == before_b
        dangling = s.read("MATCH (a:Pattern)-[e:NEXT]->(b:Pattern) WHERE a.run = 'a' OR b.run = 'a' RETURN count(e) AS n")
        assert dangling["n"][0] == 0
    assert [r["run"] for r in apd.json("runs")] == ["b"]
    result = apd("drop", "--run", "a", ok=False)
    assert result.exit_code == 1 and "no run named 'a'" in result.stderr


def test_runs_lists_counts(apd, store_path):
    with open_store(store_path) as s:
        nodes, _ = write_random_run(s, "a", n=120, seed=3)
    (row,) = apd.json("runs")
    assert row["run"] == "a" and row["n_instance"] == 120
    assert row["n_pattern"] == len(nodes["Pattern"]) and row["n_label"] == len(nodes["Label"])


def test_query_command_with_parameters(apd, store_path):
    with open_store(store_path) as s:
        nodes, _ = write_random_run(s, "a", seed=4)
    rows = apd.json("query", "layer_summary", "-p", "run=a")
    assert [r["patterns"] for r in rows] == nodes["Pattern"].groupby("layer").size().tolist()
    missing = apd("query", "layer_summary", ok=False)
    assert missing.exit_code == 1 and "needs parameters run" in missing.stderr


def test_failed_write_leaves_no_partial_run(store):
    write_random_run(store, "a", seed=1)
    write_random_run(store, "b", seed=2)
    other = store.counts("b").to_dict()
    nodes, rels = random_apd("a", seed=9)
    rels["ACTIVATES"] = pd.concat([rels["ACTIVATES"], rels["ACTIVATES"].head(1).assign(dst="a:p:9:missing")])
    with pytest.raises(StoreError, match="^write failed: .*; run a was rolled back and is absent"):
        store.write("a", nodes, rels, replace=list(NODES))
    assert len(store.counts("a")) == 0 and store.counts("b").to_dict() == other
    assert store.query("pending_writes").empty


def test_frames_are_typed_against_the_schema():
    frame = pd.DataFrame({"uid": ["x"], "run": ["r"], "idx": [3.0], "correct": [1]})
    typed = typed_nodes("Instance", frame)
    assert typed["idx"].dtype == np.int64 and typed["correct"].dtype == bool
    with pytest.raises(ValueError, match="undeclared"):
        typed_nodes("Instance", frame.assign(colour="red"))
    with pytest.raises(ValueError, match="nulls"):
        typed_nodes("Instance", frame.assign(idx=[np.nan]))


@pytest.mark.embedded_only
def test_every_ladybug_variant_runs(store):
    """cypher/ladybug/ files cannot pass Neo4j's linter (COPY, LOAD FROM): they run here instead."""
    assert set(queries.files("ladybug")) == {"ladybug/schema", "ladybug/copy_nodes", "ladybug/copy_rels",
                                             "ladybug/update_nodes", "ladybug/tables", "ladybug/table_columns",
                                             "ladybug/add_column", "ladybug/fill_column", "ladybug/copy_rels_columns",
                                             "ladybug/update_rels"}
    assert {"Run", "Instance", "ACTIVATES", "PendingWrite"} <= set(store.query("ladybug/tables")["name"])
    assert store.columns("Instance")[:4] == ["uid", "run", "idx", "row"]
    assert {"history_only", "official_split", "split_note"} <= set(store.columns("Run"))
    write_random_run(store, "a", seed=5)
    store.update("Instance", pd.DataFrame({"uid": ["a:i:0", "a:i:1"], "cluster": [7, 8]}))
    got = store.read("MATCH (i:Instance) WHERE i.run = 'a' AND i.cluster > 0 RETURN i.idx AS idx, i.cluster AS c ORDER BY idx")
    assert got.values.tolist() == [[0, 7], [1, 8]]
    assert store.columns("ACTIVATES") == ["layer", "near_same", "near_other"]
    assert {"rate", "flips"} <= set(store.columns("Neuron"))
    # ACTIVATES was copied with `layer` only (copy_rels_columns); update_rels sets the rest
    acts = store.read("MATCH (i:Instance)-[a:ACTIVATES]->(p:Pattern) WHERE i.uid = 'a:i:0' "
                      "RETURN i.uid AS src, p.uid AS dst, a.layer AS layer, a.near_same AS near ORDER BY layer")
    assert acts["near"].isna().all()
    store.write("a", rel_updates={"ACTIVATES": acts[["src", "dst"]].assign(near_same=[4, 5, 6], near_other=1)})
    again = store.read("MATCH (i:Instance)-[a:ACTIVATES]->(p:Pattern) WHERE i.run = 'a' AND a.near_same >= 0 "
                       "RETURN a.layer AS layer, a.near_same AS near ORDER BY layer")
    assert again.values.tolist() == [[1, 4], [2, 5], [3, 6]]


@pytest.mark.embedded_only
def test_an_older_store_gains_the_new_columns(tmp_path):
    """add_column: a store made before Instance.row, ACTIVATES distances and Neuron statistics
    existed, opened by a read command."""
    import ladybug

    path = str(tmp_path / "old.lbug")
    conn = ladybug.Connection(ladybug.Database(path))
    conn.execute("CREATE NODE TABLE Run(uid STRING, run STRING, PRIMARY KEY(uid))")
    conn.execute("CREATE NODE TABLE Instance(uid STRING, run STRING, idx INT64, PRIMARY KEY(uid))")
    conn.execute("CREATE NODE TABLE Pattern(uid STRING, run STRING, layer INT64, PRIMARY KEY(uid))")
    conn.execute("CREATE NODE TABLE Neuron(uid STRING, run STRING, layer INT64, `index` INT64, PRIMARY KEY(uid))")
    conn.execute("CREATE REL TABLE ACTIVATES(FROM Instance TO Pattern, layer INT64)")
    conn.execute("CREATE (:Instance {uid: 'i', run: 'r', idx: 0})-[:ACTIVATES {layer: 1}]->"
                 "(:Pattern {uid: 'p', run: 'r', layer: 1})")
    conn.close()
    with open_store(path, read_only=True) as s:  # a read command on it upgrades it first, then reads
        assert s.columns("ACTIVATES") == ["layer", "near_same", "near_other"]
        assert s.columns("Instance")[:4] == ["uid", "run", "idx", "row"]
        assert s.read("MATCH (i:Instance) RETURN i.row AS row")["row"].tolist() == [-1]  # source row unknown
        assert {"source", "neurons", "model"} <= set(s.columns("Run"))
        assert {"active", "rate", "flips", "flipped", "flips_from"} <= set(s.columns("Neuron"))
        got = s.read("MATCH ()-[a:ACTIVATES]->() RETURN a.layer AS layer, a.near_same AS near")
        assert got["layer"].tolist() == [1] and got["near"].isna().all()


# --- errors: one line, non-zero exit -------------------------------------------------------


def test_unknown_query_name(apd):
    result = apd("query", "no_such_query", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: no query named 'no_such_query'; `apd query --list` shows them"


def test_cypher_refuses_writes(apd, store_path):
    with open_store(store_path) as s:
        write_random_run(s, "a", seed=1)
    for text in ["MATCH (n:Instance) DETACH DELETE n", "CREATE (:Label {uid: 'x', run: 'x', value: 1})"]:
        one_line_error(apd("cypher", text, ok=False), "read-only")
    assert apd.json("cypher", "MATCH (n:Instance) RETURN count(n) AS n") == [{"n": 200}]


@pytest.mark.embedded_only
def test_locked_store(store_path, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import ladybug, sys, time; db = ladybug.Database({store_path!r}); print('ok', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "drop", "--run", "x", "--store", store_path],
                              capture_output=True, text=True)
        assert proc.returncode == 1
        assert proc.stderr.strip().startswith(f"Error: store {store_path} is locked by another process (PID ")
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()


def test_unreachable_neo4j():
    result = invoke("runs", "--store", "bolt://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot reach Neo4j at bolt://127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_read_only_store_must_exist(tmp_path):
    one_line_error(invoke("cypher", "RETURN 1 AS x", "--store", str(tmp_path / "none.lbug")), "no store at")
