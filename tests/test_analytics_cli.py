"""`apd split / flows / hardness / evolution` end to end on the embedded store, and their errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.models import load_model
from tests.apd_graph import pattern_key, write_run
from tests.apd_synthetic import hierarchical
from tests.cli import one_line_error
from tests.oracles import forward
from toolkit.apd.splitting import split
from toolkit.store import open_store


@pytest.fixture
def run(store_path):
    patterns, label, pred = hierarchical(2000, 4, seed=2, error_rate=0.15)
    with open_store(store_path) as s:
        write_run(s, "mnist32@e10", patterns, label, pred, epoch=10)
    return patterns, label, pred


def key_order(patterns: np.ndarray) -> np.ndarray:
    """Pattern ids renumbered in the order of their stored keys, as the graph reads them."""
    return np.unique(pattern_key(patterns.reshape(-1)).astype(str), return_inverse=True)[1].reshape(patterns.shape)


def test_split_writes_clusters_and_rerun_replaces_them(apd, store_path, run):
    patterns, label, pred = run
    patterns = key_order(patterns)
    first = apd.json("split", "--run", "mnist32@e10")
    again = apd.json("split", "--run", "mnist32@e10")
    assert first == again
    result = split(patterns, pred)
    assert first["clusters"] == len(result.clusters) and first["leaves"] == int(result.clusters["final"].sum())
    with open_store(store_path) as s:
        nodes = s.read("MATCH (c:Cluster) WHERE c.run = $run RETURN c.cid AS cid, c.size AS size, "
                       "c.level AS level, c.final AS final ORDER BY cid", {"run": "mnist32@e10"})
        assert nodes["cid"].tolist() == list(range(len(result.clusters)))  # not duplicated
        assert nodes["size"].tolist() == result.clusters["size"].tolist()
        assert nodes["final"].tolist() == result.clusters["final"].tolist()
        inst = s.read("MATCH (i:Instance)-[:`IN`]->(c:Cluster) WHERE i.run = $run "
                      "RETURN i.idx AS idx, i.cluster AS cluster, c.cid AS cid ORDER BY idx", {"run": "mnist32@e10"})
        assert inst["cluster"].tolist() == inst["cid"].tolist() == result.final_cluster.tolist()
        edges = s.read("MATCH (a:Cluster)-[e:SPLIT_INTO]->(b:Cluster) WHERE a.run = $run "
                       "RETURN a.cid AS parent, b.cid AS child, e.gain AS gain ORDER BY child", {"run": "mnist32@e10"})
        kids = result.clusters[result.clusters["parent"] >= 0]
        assert edges["parent"].tolist() == kids["parent"].tolist()
        assert edges["gain"].to_numpy() == pytest.approx(result.clusters["gain"][kids["parent"]].to_numpy())
    on_label = apd.json("split", "--run", "mnist32@e10", "--target", "label")
    assert on_label["clusters"] == len(split(patterns, label).clusters)


def test_flows_hardness_evolution(apd, store_path, run):
    flows = apd.json("flows", "--run", "mnist32@e10", "--min-strength", "2")
    assert flows and min(f["strength"] for f in flows) >= 2
    assert [f["fid"] for f in flows] == list(range(len(flows)))
    assert all(len(f["patterns"]) == 2 for f in flows)  # default: the last two layers
    assert "flows over layers [3, 4]" in apd("flows", "--run", "mnist32@e10").stdout

    apd("split", "--run", "mnist32@e10")
    tables = apd.json("hardness", "--run", "mnist32@e10")
    assert sum(r["instances"] for r in tables["by_size"]) == 2000
    assert [r["layer"] for r in tables["stability"]] == [1, 2, 3, 4]

    early = hierarchical(300, 4, seed=7, error_rate=0.3)
    with open_store(store_path) as s:
        write_run(s, "mnist32@e2", *early, epoch=2)
        write_run(s, "other", *early, epoch=1)
    table = apd.json("evolution", "--runs", "mnist32@e*")
    # every cell, from the arrays the runs were written from; by epoch, not by name
    assert table == [evolution_row(name, epoch, *arrays) for name, epoch, arrays in
                     (("mnist32@e2", 2, early), ("mnist32@e10", 10, run))]


def evolution_row(run: str, epoch: int, patterns, label, pred) -> dict:
    """One `apd evolution` row by pandas: instances, accuracy (pred = label) and distinct
    patterns per layer of an [n, L] array of per-layer pattern ids (or state rows)."""
    ids = pd.DataFrame(patterns)
    return {"run": run, "epoch": epoch, "instances": len(ids),
            "accuracy": pytest.approx(float(np.mean(np.asarray(label) == np.asarray(pred))), rel=1e-12),
            **{f"layer_{j + 1}": int(ids[j].nunique()) for j in ids.columns}}


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
def test_evolution_of_the_demo_runs_equals_their_forward_passes(apd, demo_store):
    """`apd evolution` on the demo's two runs, every cell against the model's forward pass over
    each split: instances, accuracy of its argmax, distinct patterns per hidden layer; the
    epoch is the one the checkpoint records."""
    apd.store_path = demo_store
    table = apd.json("evolution", "--runs", "digits-*")
    model_path = {r["run"]: r["model"] for r in apd.json("runs")}["digits-test"]
    model = load_model(model_path)
    epoch = torch.load(model_path, weights_only=True)["record"]["epoch"]  # the epoch the checkpoint was saved at
    want = []
    for run, part in sorted([("digits-train", "train"), ("digits-test", "test")]):  # same epoch: by name
        data = load_dataset("digits", part)
        states, logits = forward(model, data.x, dtype=torch.float32)  # as ingest ran it
        rows = np.column_stack([np.unique(s, axis=0, return_inverse=True)[1].ravel() for s in states])
        want.append(evolution_row(run, epoch, rows, data.y, logits.argmax(1)))
    assert table == want
    assert want[0]["layer_1"] != want[1]["layer_1"]  # the splits really differ


def test_errors(apd, store_path, run):
    for cmd in ("split", "flows", "hardness"):
        one_line_error(apd(cmd, "--run", "nope", ok=False), "no run named 'nope'")
    one_line_error(apd("evolution", "--runs", "nope*", ok=False), "no run matches 'nope*'")
    with open_store(store_path) as s:
        s.write("empty", {"Run": pd.DataFrame({"uid": ["empty"], "run": ["empty"], "layers": [3]})})
    for cmd in ("split", "flows", "hardness"):
        one_line_error(apd(cmd, "--run", "empty", ok=False), "run 'empty' has no instances")
    for bad in ("0,1", "4,5", "2,x"):
        one_line_error(apd("flows", "--run", "mnist32@e10", "--layers", bad, ok=False), "--layers")
    one_line_error(apd("hardness", "--run", "mnist32@e10", ok=False), "apd split --run mnist32@e10")
    with open_store(store_path) as s:  # nothing half-written by the failed commands
        assert s.counts("mnist32@e10").get("Flow", 0) == 0 and s.counts("mnist32@e10").get("Cluster", 0) == 0
