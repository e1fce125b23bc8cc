"""Flows from cypher/flows.cypher equal a pandas group-by, row for row: of the arrays a
synthetic run was written from, and of a trained net's own forward pass over its data
(never of rows read back from the store, which would share the store's mistakes)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.models import load_model
from tests.apd_graph import pattern_key, pattern_uid, write_run
from tests.apd_synthetic import hierarchical
from tests.oracles import as_listed, flows_groupby, forward
from toolkit.apd.flows import parse_layers, query_flows, run_flows
from toolkit.errors import ApdError
from toolkit.store import open_store


def expected(run: str, patterns: np.ndarray, label, pred, layers: list[int], min_strength: int = 1,
             only: int | None = None) -> pd.DataFrame:
    """The flows of a synthetic run from its pattern-id array: uids named as tests/apd_graph names them."""
    keep = np.ones(len(label), dtype=bool) if only is None else np.asarray(label) == only
    ids = np.asarray(patterns)[keep]
    keys = pd.DataFrame({layer: f"{run}:p:{layer}:" + pd.Series(pattern_key(ids[:, layer - 1])).astype(object)
                         for layer in layers})
    flows = flows_groupby(keys, np.asarray(pred)[keep], (np.asarray(label) == np.asarray(pred))[keep], min_strength)
    return as_listed(flows)


def test_hand_example(store):
    # Layers 2 and 3 of five instances: (a,x) x3 with preds 0,0,1 (one error), (b,x) x1, (a,y) x1.
    patterns = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 1, 0], [4, 0, 1]])
    label = np.array([0, 0, 0, 2, 1])
    pred = np.array([0, 0, 1, 2, 1])
    write_run(store, "h", patterns, label, pred)
    got = query_flows(store, "h", [2, 3])
    uid = {(layer, pid): pattern_uid("h", layer, pid) for layer in (2, 3) for pid in (0, 1)}
    rows = sorted(zip(map(tuple, got["patterns"]), got["strength"], got["purity"].round(12), got["errors"],
                      got["label"]))
    assert rows == sorted([((uid[2, 0], uid[3, 0]), 3, round(2 / 3, 12), 1, 0), ((uid[2, 0], uid[3, 1]), 1, 1.0, 0, 1),
                           ((uid[2, 1], uid[3, 0]), 1, 1.0, 0, 2)])
    assert got["strength"].tolist() == [3, 1, 1]  # strongest first
    assert query_flows(store, "h", [2, 3], min_strength=2)["strength"].tolist() == [3]


@pytest.mark.parametrize("seed", range(4))
def test_cypher_equals_pandas_on_random_runs(store, seed):
    rng = np.random.default_rng(seed)
    n, L = 300, 6
    patterns = rng.integers(0, 3, size=(n, L))
    label = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.7, label, rng.integers(0, 3, n))  # ties in the vote happen
    write_run(store, "r", patterns, label, pred)
    for layers in ([6], [5, 6], [1, 4], [2, 3, 5], list(range(1, 7))):
        for min_strength in (1, 3):
            got = query_flows(store, "r", layers, min_strength)
            want = expected("r", patterns, label, pred, layers, min_strength)
            pd.testing.assert_frame_equal(got, want)


def test_cypher_equals_pandas_at_realistic_size(store):
    patterns, label, pred = hierarchical(20_000, 4, seed=3)
    write_run(store, "big", patterns, label, pred)
    for layers in ([3, 4], [1, 2, 3, 4]):
        got = query_flows(store, "big", layers)
        pd.testing.assert_frame_equal(got, expected("big", patterns, label, pred, layers))
        assert got["strength"].sum() == 20_000


def test_flows_are_written_and_replaced(store):
    patterns, label, pred = hierarchical(500, 3, seed=1)
    write_run(store, "w", patterns, label, pred)
    for _ in range(2):
        chosen, flows = run_flows(store, "w", "2,3", min_strength=2)
    assert chosen == [2, 3]
    nodes = store.read("MATCH (f:Flow) WHERE f.run = 'w' RETURN f.uid AS uid, f.strength AS s, f.layers AS l ORDER BY s DESC, uid")
    assert len(nodes) == len(flows) and set(nodes["l"]) == {"2-3"}
    assert sorted(nodes["uid"]) == sorted(f"w:f:2-3:{i}" for i in flows["fid"])
    through = store.read("MATCH (f:Flow)-[:THROUGH]->(p:Pattern) WHERE f.run = 'w' "
                         "RETURN f.fid AS fid, p.uid AS uid ORDER BY fid, uid")
    want = sorted((fid, uid) for fid, ps in zip(flows["fid"], flows["patterns"]) for uid in ps)
    assert list(map(tuple, through.values.tolist())) == want
    run_flows(store, "w", "3")  # another layer set replaces the run's flows
    assert set(store.read("MATCH (f:Flow) WHERE f.run = 'w' RETURN f.layers AS l")["l"]) == {"3"}


def test_layer_parsing():
    assert parse_layers(None, 4) == [3, 4] and parse_layers(None, 1) == [1]
    assert parse_layers("3, 1,3", 4) == [1, 3]
    for bad in ("0,1", "5", "x", ""):
        with pytest.raises(ApdError):
            parse_layers(bad, 4)
    with pytest.raises(ApdError, match="at most 6"):
        parse_layers("1,2,3,4,5,6,7", 7)


@pytest.mark.parametrize("label", [0, 2])
def test_label_restricts_to_one_true_label(store, label):
    rng = np.random.default_rng(7)
    n = 400
    patterns = rng.integers(0, 3, size=(n, 3))
    truth = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 3, n))
    write_run(store, "r", patterns, truth, pred)
    got = query_flows(store, "r", [2, 3], label=label)
    pd.testing.assert_frame_equal(got, expected("r", patterns, truth, pred, [2, 3], only=label))
    assert got["strength"].sum() == (truth == label).sum()
    _, flows = run_flows(store, "r", "2,3", label=label)  # a restricted view writes nothing
    assert store.read("MATCH (f:Flow) RETURN count(f) AS n")["n"].iloc[0] == 0


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
@pytest.mark.parametrize("label", [None, 3])
def test_flows_of_a_trained_net_equal_a_groupby_of_its_forward_pass(apd, demo_store, label):
    """`apd flows` on the demo's test run against the model's own forward pass over the test
    split: instances grouped by their patterns on the last two hidden layers, strength, errors
    and majority predicted label from that pass. Only the pattern uids come from the store
    (ACTIVATES), after checking they name the forward-pass patterns one to one."""
    apd.store_path = demo_store
    run = "digits-test"
    args = ("flows", "--run", run) + (() if label is None else ("--label", str(label)))
    got = pd.DataFrame(apd.json(*args))
    info = next(r for r in apd.json("runs") if r["run"] == run)
    data = load_dataset("digits", "test")
    states, logits = forward(load_model(info["model"]), data.x, dtype=torch.float32)  # as ingest ran it
    layers = [len(states) - 1, len(states)]
    with open_store(demo_store, read_only=True) as s:
        acts = s.read("MATCH (i:Instance)-[:ACTIVATES]->(p:Pattern) WHERE i.run = $run "
                      "RETURN i.idx AS idx, p.layer AS layer, p.uid AS uid", {"run": run})
    uid = acts.pivot(index="idx", columns="layer", values="uid").sort_index()
    assert uid.index.tolist() == list(range(len(data.y)))
    keys = pd.DataFrame({layer: [row.tobytes().hex() for row in states[layer - 1]] for layer in layers})
    for layer in layers:  # forward-pass pattern <-> stored uid, one to one
        pairs = pd.DataFrame({"fp": keys[layer], "uid": uid[layer].to_numpy()}).drop_duplicates()
        assert pairs["fp"].is_unique and pairs["uid"].is_unique, layer
    pred = logits.argmax(1)
    keep = np.ones(len(pred), dtype=bool) if label is None else data.y == label
    flows = flows_groupby(keys[keep].reset_index(drop=True), pred[keep], pred[keep] == data.y[keep])
    for layer in layers:
        flows[layer] = flows[layer].map(dict(zip(keys[layer], uid[layer])))
    want = as_listed(flows)
    assert len(want) > 10 and (want["purity"] < 1).any()  # a real partition, with mixed flows
    pd.testing.assert_frame_equal(got.drop(columns="purity"), want.drop(columns="purity"), check_dtype=False)
    np.testing.assert_allclose(got["purity"], want["purity"], rtol=1e-12)
