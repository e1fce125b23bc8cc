"""The Neo4j Browser kit (cypher/browser/) runs on LadybugDB with results equal to pandas,
and its style file styles every node label with captions from declared properties."""
from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from tests.apd_graph import write_run
from tests.apd_synthetic import hierarchical
from toolkit.apd.clusters import split_run
from toolkit.apd.flows import run_flows
from toolkit.apd.runs import read_patterns
from toolkit.store import open_store
from toolkit.store.schema import ALL_NODES, RELS


@pytest.fixture
def run(store):
    patterns, label, pred = hierarchical(600, 3, seed=3, error_rate=0.2)
    forgetting = np.random.default_rng(3).poisson(0.7, len(label))
    write_run(store, "b", patterns, label, pred, forgetting=forgetting)
    return patterns, label, pred, forgetting


def test_top_flows(store, run):
    _, flows = run_flows(store, "b")
    got = store.query("browser/top_flows", run="b", top=5)
    want = flows.sort_values(["strength", "fid"], ascending=[False, True]).head(5)
    assert got["fid"].drop_duplicates().tolist() == want["fid"].tolist()
    assert got.groupby("fid")["pattern_uid"].apply(list).to_dict() == dict(zip(want["fid"], want["patterns"]))
    assert got["strength"].tolist() == np.repeat(want["strength"].to_numpy(), 2).tolist()


def test_cluster_instances(store, run):
    out = split_run(store, "b")
    final = out.clusters[out.clusters["final"]].sort_values("size", ascending=False)
    cid = int(final["cid"].iloc[0])
    got = store.query("browser/cluster_instances", run="b", cid=cid)
    inst = store.read("MATCH (i:Instance) WHERE i.run = 'b' RETURN i.idx AS idx, i.cluster AS cluster")
    members = sorted(inst.loc[inst["cluster"] == cid, "idx"].tolist())
    assert sorted(set(got["idx"])) == members and len(got) == 3 * len(members)
    assert got.groupby("idx")["layer"].apply(list).tolist() == [[1, 2, 3]] * len(members)


def test_instance_path(store, run):
    patterns, label, pred, _ = run
    rows = read_patterns(store, "b").frame
    got = store.query("browser/instance_path", run="b", idx=17)
    mine = rows[rows["idx"] == 17].sort_values("layer")
    assert got["layer"].tolist() == [1, 2, 3]
    assert got["pattern_uid"].tolist() == ("b:p:" + mine["layer"].astype(str) + ":" + mine["key"]).tolist()
    assert set(got["pred"]) == {pred[17]} and set(got["correct"]) == {pred[17] == label[17]}
    assert [n["value"] for n in got["predicted"]] == [pred[17]] * 3


def test_blanket_patterns_on_hand_written_blankets(store, run):
    """Before `apd mbh` the query is empty; then, on blankets written by hand (class 3 at
    two coverages, class 4 beside them), it returns exactly class 3's covered patterns,
    ordered by coverage, then support descending, then uid."""
    assert store.query("browser/blanket_patterns", run="b", **{"class": 3}).empty
    pats = store.read("MATCH (p:Pattern) WHERE p.run = 'b' AND p.layer = 3 "
                      "RETURN p.uid AS uid, p.support AS support, p.errors AS errors ORDER BY uid")
    assert len(pats) >= 6
    blankets = pd.DataFrame({"uid": ["b:b:0.8:3", "b:b:1:3", "b:b:0.8:4"], "run": "b", "class": [3, 3, 4],
                             "coverage": [0.8, 1.0, 0.8], "s": [0.25, 0.5, 0.75]})
    covers = pd.DataFrame({"src": ["b:b:0.8:3"] * 4 + ["b:b:1:3"] * 2 + ["b:b:0.8:4"] * 3,
                           "dst": [pats["uid"][i] for i in (0, 1, 2, 3, 4, 5, 0, 5, 2)]})
    store.write("b", nodes={"Blanket": blankets}, rels={"COVERS": covers}, replace=["Blanket"])
    got = store.query("browser/blanket_patterns", run="b", **{"class": 3})
    want = pd.concat([pats.iloc[[0, 1, 2, 3]].assign(coverage=0.8, s=0.25),
                      pats.iloc[[4, 5]].assign(coverage=1.0, s=0.5)])
    want = want.sort_values(["coverage", "support", "uid"], ascending=[True, False, True])
    assert got["pattern_uid"].tolist() == want["uid"].tolist()
    assert got["coverage"].tolist() == want["coverage"].tolist() and got["s"].tolist() == want["s"].tolist()
    assert got["support"].tolist() == want["support"].tolist() and got["errors"].tolist() == want["errors"].tolist()


def test_instance_hardness_query(store, run):
    patterns, label, pred, forgetting = run
    before = store.query("instance_hardness", run="b")
    assert before["idx"].tolist() == list(range(len(label))) and before["size"].isna().all()
    assert before["forgetting"].tolist() == forgetting.tolist() and before["pred"].tolist() == pred.tolist()
    split_run(store, "b")
    after = store.query("instance_hardness", run="b")
    inst = store.read("MATCH (i:Instance) WHERE i.run = 'b' RETURN i.idx AS idx, i.cluster AS cluster ORDER BY idx")
    assert after["cluster"].tolist() == inst["cluster"].tolist()
    assert after["size"].tolist() == np.bincount(inst["cluster"])[inst["cluster"]].tolist()


def test_grass_styles_every_label_with_declared_captions():
    text = resources.files("toolkit.cypher").joinpath("browser", "apd.grass").read_text()
    blocks = dict(re.findall(r"^(node\.\w+|relationship\.\w+|node|relationship) \{(.*?)^\}", text, re.S | re.M))
    assert {f"node.{n}" for n in ALL_NODES} <= set(blocks)
    assert "{layer}" in blocks["node.Pattern"] and "{support}" in blocks["node.Pattern"]
    for sel, body in blocks.items():
        assert re.search(r"color: #[0-9a-fA-F]{6};", body) or sel.startswith("relationship."), sel
        caption = re.search(r"caption: '(.*)';", body)
        if caption and sel.startswith("node."):
            assert set(re.findall(r"\{(\w+)\}", caption[1])) <= set(ALL_NODES[sel[5:]].props), sel
        if caption and sel.startswith("relationship."):
            assert set(re.findall(r"\{(\w+)\}", caption[1])) <= set(RELS[sel[13:]].props), sel


def test_flows_label_on_the_cli(apd, store, run):
    patterns, label, pred, _ = run

    def flow_nodes() -> int:  # a fresh connection sees what the CLI wrote
        with open_store(apd.store_path, read_only=True) as s:
            return int(s.read("MATCH (f:Flow) RETURN count(f) AS n")["n"].iloc[0])

    got = apd.json("flows", "--run", "b", "--label", "2")
    assert sum(f["strength"] for f in got) == int((label == 2).sum())
    assert "of true label 2" in apd("flows", "--run", "b", "--label", "2").stdout
    assert flow_nodes() == 0  # printed, not written
    everything = apd.json("flows", "--run", "b")
    assert sum(f["strength"] for f in everything) == len(label) and flow_nodes() == len(everything)
    apd.json("split", "--run", "b")
    hard = apd.json("hardness", "--run", "b")
    with open_store(apd.store_path, read_only=True) as s:
        sizes = s.query("instance_hardness", run="b")["size"].sort_values().to_numpy()
    assert hard["size_90_instances"] == sizes[int(np.ceil(0.9 * len(sizes))) - 1]
