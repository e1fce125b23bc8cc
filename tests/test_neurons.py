"""`apd neurons`: activation rates overall and per predicted class against a torch forward
pass (tests/oracles.py, not the recorder), flips against a brute-force comparison of two
snapshot runs, the named queries against pandas, and coexistence with `apd mbh`."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.models import load_model
from tests.cli import one_line_error
from tests.oracles import forward
from toolkit.store import open_store
from toolkit.store.integrity import damage

NODES = """MATCH (n:Neuron) WHERE n.run = $run
RETURN n.uid AS uid, n.layer AS layer, n.`index` AS neuron, n.active AS active, n.rate AS rate,
       n.flips AS flips, n.flipped AS flipped, n.flips_from AS flips_from"""
RELS = """MATCH (n:Neuron)-[f:ACTIVE_FOR]->(l:Label) WHERE n.run = $run
RETURN n.layer AS layer, n.`index` AS neuron, l.value AS cls, f.count AS count, f.rate AS rate"""


def oracle(model_path: str) -> tuple[list[np.ndarray], np.ndarray]:
    """States per hidden layer and predictions of the digits test split, by torch in float32 (as ingest)."""
    data = load_dataset("digits", "test")
    states, logits = forward(load_model(model_path), data.x, dtype=torch.float32)
    return states, logits.argmax(1)


def expected_rates(states: list[np.ndarray], pred: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per neuron (layer, neuron, active, rate) and per (neuron, predicted class) (count, rate), with pandas."""
    nodes, rels = [], []
    for layer, s in enumerate(states, start=1):
        wide = pd.DataFrame(s == 1).assign(cls=pred)
        long = wide.melt(id_vars="cls", var_name="neuron", value_name="on")
        long["neuron"] = long["neuron"].astype(int)
        nodes.append(long.groupby("neuron", as_index=False)["on"].agg(active="sum", rate="mean").assign(layer=layer))
        rels.append(long.groupby(["neuron", "cls"], as_index=False)["on"].agg(count="sum", rate="mean")
                    .assign(layer=layer))
    return pd.concat(nodes, ignore_index=True), pd.concat(rels, ignore_index=True)


def read(store_path: str, text: str, run: str, keys: list[str]) -> pd.DataFrame:
    with open_store(store_path, read_only=True) as s:
        return s.read(text, {"run": run}).sort_values(keys, ignore_index=True)


@pytest.fixture
def snapshots(apd, digits_run, tmp_path):
    """Two snapshots of one digits net (3 and 6 epochs, same seed) ingested as runs s3, s6."""
    models = {}
    for epochs in (3, 6):
        model = tmp_path / f"m{epochs}.pt"
        shutil.copy(digits_run(hidden=(16, 12), epochs=epochs).model, model)
        apd.json("ingest", str(model), "--dataset", "digits", "--split", "test", "--run", f"s{epochs}",
                 "--device", "cpu")
        models[epochs] = str(model)
    return models


def test_rates_equal_a_forward_pass_and_flips_a_brute_force_comparison(apd, snapshots):
    table = apd.json("neurons", "--runs", "s*")
    assert [(r["run"], r["layer"]) for r in table] == [("s3", 1), ("s3", 2), ("s6", 1), ("s6", 2)]
    previous = None
    for epochs, run in ((3, "s3"), (6, "s6")):
        states, pred = oracle(snapshots[epochs])
        want_nodes, want_rels = expected_rates(states, pred)
        got = read(apd.store_path, NODES, run, ["layer", "neuron"])
        want_nodes = want_nodes.sort_values(["layer", "neuron"], ignore_index=True)
        assert len(got) == 16 + 12 and got["uid"].is_unique
        assert (got["active"].to_numpy() == want_nodes["active"].to_numpy()).all()
        assert np.allclose(got["rate"], want_nodes["rate"])
        rels = read(apd.store_path, RELS, run, ["layer", "neuron", "cls"])
        want_rels = want_rels.sort_values(["layer", "neuron", "cls"], ignore_index=True)
        assert (rels["count"].to_numpy() == want_rels["count"].to_numpy()).all()
        assert np.allclose(rels["rate"], want_rels["rate"])
        if previous is None:
            assert (got["flips"] == -1).all() and (got["flips_from"] == "").all()
        else:
            flips = np.concatenate([(a != b).mean(0) for a, b in zip(previous, states)])
            assert np.allclose(got["flips"], flips) and (got["flips_from"] == "s3").all()
            assert (got["flipped"].to_numpy() == np.round(flips * len(pred)).astype(int)).all()
        previous = states


def test_named_queries_equal_pandas(apd, snapshots):
    apd.json("neurons", "--runs", "s*")
    nodes = read(apd.store_path, NODES, "s6", ["layer", "neuron"])
    rels = read(apd.store_path, RELS, "s6", ["layer", "neuron", "cls"])
    stats = pd.DataFrame(apd.json("query", "neuron_stats", "-p", "run=s6"))
    want = nodes.groupby("layer", as_index=False).agg(
        neurons=("uid", "size"), dead=("active", lambda v: int((v == 0).sum())),
        always=("rate", lambda v: int((v == 1).sum())), mean_rate=("rate", "mean"), mean_flips=("flips", "mean"))
    assert (stats[["layer", "neurons", "dead", "always"]].to_numpy() == want[["layer", "neurons", "dead", "always"]]
            .to_numpy()).all()
    assert np.allclose(stats[["mean_rate", "mean_flips"]], want[["mean_rate", "mean_flips"]])
    a, b, hi, lo = 0, 1, 0.6, 0.3
    got = pd.DataFrame(apd.json("query", "neurons_contrast", "-p", "run=s6", "-p", f"a={a}", "-p", f"b={b}",
                                "-p", f"hi={hi}", "-p", f"lo={lo}"))
    ra = rels[rels["cls"] == a].set_index(["layer", "neuron"])["rate"]
    rb = rels[rels["cls"] == b].set_index(["layer", "neuron"])["rate"]
    both = pd.DataFrame({"rate_a": ra, "rate_b": rb}).dropna()
    both = both[(both["rate_a"] >= hi) & (both["rate_b"] <= lo)].reset_index()
    assert len(both) > 0  # the chosen thresholds select something on this net
    want_keys = set(zip(both["layer"], both["neuron"]))
    assert set(zip(got["layer"], got["neuron"])) == want_keys and len(got) == len(want_keys)
    gaps = (got["rate_a"] - got["rate_b"]).to_numpy()
    assert (np.diff(gaps) <= 1e-12).all()
    names = {r["name"] for r in apd.json("query", "--list")}
    assert {"neuron_stats", "neurons_contrast"} <= names


def test_rerun_replaces_and_mbh_keeps_the_statistics(apd, snapshots):
    def state() -> tuple[pd.DataFrame, int, int]:
        with open_store(apd.store_path, read_only=True) as s:
            cons = int(s.read("MATCH (b:Blanket)-[c:CONSTRAINS]->(n:Neuron) WHERE b.run = $run "
                              "RETURN count(c) AS n", {"run": "s6"})["n"].iloc[0])
            act = int(s.read("MATCH (n:Neuron)-[f:ACTIVE_FOR]->(l:Label) WHERE n.run = $run "
                             "RETURN count(f) AS n", {"run": "s6"})["n"].iloc[0])
        return read(apd.store_path, NODES, "s6", ["uid"]), cons, act

    mbh = ("mbh", "--run", "s6", "--coverage", "0.8", "--planes", "1", "--classes", "0,1", "--device", "cpu")
    first = apd.json(*mbh)  # mbh first: it makes the constrained Neurons
    apd.json("neurons", "--run", "s6")
    nodes, cons, act = state()
    assert cons == first["stored"]["constraints"] > 0
    with open_store(apd.store_path, read_only=True) as s:
        labels = int(s.counts("s6")["Label"])
    assert len(nodes) == 28 and nodes["rate"].notna().all() and act == 28 * labels
    apd.json("neurons", "--runs", "s*")  # re-run: replaces, never duplicates; flips now set
    again, cons2, act2 = state()
    assert len(again) == 28 and cons2 == cons and act2 == act and (again["flips_from"] == "s3").all()
    apd.json(*mbh)  # mbh re-run keeps the statistics and their edges
    after, cons3, act3 = state()
    assert cons3 == cons and act3 == act
    pd.testing.assert_frame_equal(after, again)
    with open_store(apd.store_path, read_only=True) as s:
        assert damage(s, "s6") == [] and damage(s, "s3") == []


def test_bad_input_is_one_line(apd, snapshots):
    one_line_error(apd("neurons", ok=False), "exactly one")
    one_line_error(apd("neurons", "--run", "s3", "--runs", "s*", ok=False), "exactly one")
    one_line_error(apd("neurons", "--run", "nosuch", ok=False), "nosuch")
    one_line_error(apd("neurons", "--runs", "zz*", ok=False), "no run matches")
