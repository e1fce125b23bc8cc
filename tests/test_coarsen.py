"""`apd coarsen`: the coarse APD over K chosen neurons per layer equals a pandas group-by of
an independent forward pass's states on those neurons; the neuron choices equal brute-force
computations; the derived run works with split and flows, replaces itself on a re-run, and
survives dropping its source."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.models import load_model
from tests.cli import Apd, invoke, one_line_error
from tests.oracles import forward
from tests.stores import copy_store
from toolkit.apd.coarsen import choose_neurons, coarse_ids, label_information
from toolkit.export import export_admin, read_nodes, read_rels
from toolkit.store import open_store
from toolkit.store.maintenance import problems

K = 5


@pytest.fixture
def ingested(digits_run, store_path):
    """Run `d` (digits test split, a 64-16-16-10 net) in this test's store, and its model."""
    built = digits_run()
    Apd(store_path).json("ingest", built.model, "--dataset", "digits", "--split", "test", "--run", "d",
                         "--device", "cpu")
    return store_path, built.model


def _oracle(model_path: str):
    """States per layer (float32 forward pass, as ingest records), predictions and labels."""
    ds = load_dataset("digits", "test")
    states, logits = forward(load_model(model_path), ds.x, torch.float32)
    return [s.astype(bool) for s in states], logits.argmax(1), ds.y


def _hex(bits: np.ndarray) -> list[str]:
    return [bytes(row).hex() for row in np.packbits(bits, axis=1)]


def test_coarse_apd_equals_a_group_by_of_the_forward_pass(ingested):
    store_path, model = ingested
    apd = Apd(store_path)
    out = apd.json("coarsen", "--run", "d", "--neurons", str(K))
    assert out["run"] == "d.k5" and out["source"] == "d"
    states, pred, label = _oracle(model)
    chosen = [choose_neurons(s, pred, K) for s in states]
    assert [layer["neurons"] for layer in out["layers"]] == [c.tolist() for c in chosen]
    keys = pd.DataFrame({f"l{i + 1}": _hex(s[:, c]) for i, (s, c) in enumerate(zip(states, chosen))})
    keys["pred"], keys["wrong"] = pred, pred != label
    with open_store(store_path) as s:
        pats = read_nodes(s, "d.k5", "Pattern")
        bits = dict(zip(pats["uid"], pats["bits"]))
        runs = s.query("runs").set_index("run")
        run = runs.loc["d.k5"]
        meta = s.query("coarse_source", run="d.k5")
        nxt, predicts = read_rels(s, "d.k5", "NEXT"), read_rels(s, "d.k5", "PREDICTS")
        labels = dict(zip(*read_nodes(s, "d.k5", "Label")[["uid", "value"]].T.to_numpy()))
        links = read_rels(s, "d.k5", "COARSENS")
        assert problems(s) == []
    assert meta.values.tolist() == [["d", ";".join(f"{i + 1}:" + ",".join(map(str, c)) for i, c in enumerate(chosen))]]
    assert run["instances"] == len(pred) and run["layers"] == 2 and not run["history_only"]
    assert (run["official_split"], run["split_note"]) == tuple(runs.loc["d", ["official_split", "split_note"]])
    assert links[["src", "dst"]].values.tolist() == [["d.k5", "d"]]
    for layer in (1, 2):
        want = keys.groupby(f"l{layer}").agg(support=("pred", "size"), errors=("wrong", "sum"))
        got = pats[pats["layer"] == layer].set_index("bits")[["support", "errors"]].sort_index()
        pd.testing.assert_frame_equal(got, want.rename_axis("bits"), check_dtype=False)
    want = keys.groupby(["l1", "l2"]).agg(count=("pred", "size"), errors=("wrong", "sum")).sort_index()
    got = nxt.assign(l1=nxt["src"].map(bits), l2=nxt["dst"].map(bits)).set_index(["l1", "l2"])[["count", "errors"]]
    pd.testing.assert_frame_equal(got.sort_index(), want, check_dtype=False)
    want = keys.groupby(["l2", "pred"]).agg(count=("pred", "size"), errors=("wrong", "sum")).sort_index()
    got = predicts.assign(l2=predicts["src"].map(bits), pred=predicts["dst"].map(labels)).set_index(["l2", "pred"])
    pd.testing.assert_frame_equal(got[["count", "errors"]].sort_index(), want, check_dtype=False)
    # split and flows run on the derived run as on any other
    split = apd.json("split", "--run", "d.k5")
    assert split["clusters"] >= 1
    flows = apd.json("flows", "--run", "d.k5")
    sizes = keys.groupby(["l1", "l2"]).size()
    assert sorted(f["strength"] for f in flows) == sorted(sizes.tolist())


def test_rerun_replaces_and_drops_are_safe(ingested):
    store_path, model = ingested
    apd = Apd(store_path)
    apd.json("coarsen", "--run", "d", "--neurons", "3", "--as", "dc")
    with open_store(store_path) as s:
        before = s.counts("dc")
    apd.json("coarsen", "--run", "d", "--neurons", "3", "--as", "dc")
    apd.json("coarsen", "--run", "d", "--neurons", "4", "--by", "variance", "--as", "dv")
    with open_store(store_path) as s:
        assert s.counts("dc").equals(before)
        assert len(read_rels(s, "dc", "COARSENS")) == 1
        source = s.counts("d")
    apd.json("drop", "--run", "dc")
    with open_store(store_path) as s:
        assert s.counts("d").equals(source) and "dc" not in set(s.query("runs")["run"])
        derived = s.counts("dv")
    apd.json("ingest", model, "--dataset", "digits", "--split", "test", "--run", "d", "--device", "cpu")
    with open_store(store_path) as s:  # the re-ingested source is new data: the link goes, the run stays
        assert read_rels(s, "dv", "COARSENS").empty and s.counts("dv").equals(derived)
    apd.json("coarsen", "--run", "d", "--neurons", "4", "--by", "variance", "--as", "dv")
    apd.json("drop", "--run", "d")
    with open_store(store_path) as s:
        assert read_rels(s, "dv", "COARSENS").empty and s.counts("dv").equals(derived)
        assert s.query("coarse_source", run="dv")["source"].tolist() == ["d"]
        assert problems(s) == []
    assert apd.json("split", "--run", "dv")["clusters"] >= 1


def test_bad_input_is_one_line(ingested):
    store_path, _ = ingested
    apd = Apd(store_path)
    one_line_error(apd("coarsen", "--run", "nosuch", ok=False), "no run named 'nosuch'")
    one_line_error(apd("coarsen", "--run", "d", "--neurons", "0", ok=False), "--neurons must be at least 1")
    one_line_error(apd("coarsen", "--run", "d", "--as", "d", ok=False), "is the source run itself")
    one_line_error(apd("coarsen", "--run", "d", "--as", "a b", ok=False), "may only hold")
    one_line_error(apd("coarsen", "--run", "d", "--by", "magic", ok=False), "--by", usage=True)
    apd.json("coarsen", "--run", "d", "--neurons", "2")
    one_line_error(apd("coarsen", "--run", "d.k2", ok=False), "already coarse (from 'd')")


@pytest.mark.embedded_only
def test_mbh_refuses_and_export_keeps_ends_inside(digits_run, tmp_path):
    store = copy_store(digits_run().store, tmp_path)
    apd = Apd(store)
    apd.json("coarsen", "--run", "d", "--neurons", "4", "--by", "mbh")
    one_line_error(apd("mbh", "--run", "d.k4-mbh", "--planes", "1", ok=False), "is a coarse APD of 'd'")
    with open_store(store) as s:
        out = export_admin(s, "d.k4-mbh", tmp_path / "admin")
    assert out["relationships"] and "COARSENS" not in (tmp_path / "admin" / "import.sh").read_text()
    assert not list((tmp_path / "admin").glob("COARSENS*"))  # its end, the source's Run node, is not exported


@pytest.mark.embedded_only
def test_a_store_made_before_coarse_runs_is_upgraded(tmp_path):
    import ladybug

    path = str(tmp_path / "old.lbug")
    with open_store(path):
        pass
    db = ladybug.Database(path)
    conn = ladybug.Connection(db)
    conn.execute("ALTER TABLE Run DROP source")
    conn.execute("ALTER TABLE Run DROP neurons")
    conn.close()
    db.close()
    with open_store(path) as s:
        assert {"source", "neurons"} <= set(s.columns("Run"))


def _mi(column: list[int], target: list[int]) -> float:
    """I(X; Y) in bits from the definition, one (x, y) pair at a time."""
    n = len(column)
    pxy, px, py = Counter(zip(column, target)), Counter(column), Counter(target)
    return sum(c / n * math.log2((c / n) / (px[x] / n * py[y] / n)) for (x, y), c in pxy.items())


def test_label_choice_is_the_brute_force_mutual_information():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 3, 40)
    states = rng.random((40, 9)) < 0.4
    states[:, 4] = target == 1  # informative
    states[:, 7] = ~states[:, 4]  # the same information: a tie, broken by index
    states[:, 2] = states[:, 4]
    mi = np.array([_mi(states[:, j].astype(int).tolist(), target.tolist()) for j in range(9)])
    assert np.allclose(label_information(states, target), mi)
    order = sorted(range(9), key=lambda j: (-round(mi[j], 12), j))
    for k in (1, 2, 3, 5):
        assert choose_neurons(states, target, k).tolist() == sorted(order[:k])
    assert choose_neurons(states, target, 2).tolist() == [2, 4]
    assert choose_neurons(states, target, 9).tolist() == list(range(9))
    assert choose_neurons(states, target, 50).tolist() == list(range(9))


def test_variance_choice_takes_the_most_balanced_neurons():
    states = np.zeros((10, 5), dtype=bool)
    states[:5, 0] = True  # p = 0.5
    states[:1, 1] = True  # p = 0.1
    states[:7, 2] = True  # p = 0.7
    states[:3, 3] = True  # p = 0.3: ties with neuron 2, loses on index
    states[:, 4] = True  # p = 1
    target = np.zeros(10, dtype=int)
    assert choose_neurons(states, target, 1, by="variance").tolist() == [0]
    assert choose_neurons(states, target, 2, by="variance").tolist() == [0, 2]
    assert choose_neurons(states, target, 3, by="variance").tolist() == [0, 2, 3]


def test_mbh_choice_ranks_by_classes_then_coverage_and_puts_constant_neurons_last():
    c0 = [[1, 1, 1, 1]] * 4 + [[1, 1, 1, 0]]
    c1 = [[1, 0, 1, 0], [1, 0, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 1]]
    states = np.array(c0 + c1, dtype=bool)
    target = np.array([0] * 5 + [1] * 5)
    # n1: both classes, all samples; n3: both classes at 0.8; n2: class 0 only; n0: constant
    assert choose_neurons(states, target, 1, by="mbh").tolist() == [1]
    assert choose_neurons(states, target, 2, by="mbh").tolist() == [1, 3]
    assert choose_neurons(states, target, 3, by="mbh").tolist() == [1, 2, 3]


def test_coarse_ids_are_the_distinct_rows():
    states = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]], dtype=bool)
    ids, distinct = coarse_ids(states, np.array([0, 3]))
    assert distinct.tolist() == [[False, False], [True, True]]
    assert ids.tolist() == [1, 0, 1, 0]


def test_unknown_by_in_the_library():
    from toolkit.errors import ApdError

    with pytest.raises(ApdError, match="--by must be one of"):
        choose_neurons(np.zeros((2, 2), dtype=bool), np.zeros(2), 1, by="magic")


def test_help_has_an_example():
    assert "Example: apd coarsen --run" in invoke("coarsen", "--help").output


@pytest.mark.embedded_only
def test_hard_tanh_layers_are_refused(digits_run, tmp_path):
    store = copy_store(digits_run(activation="hardtanh").store, tmp_path)
    one_line_error(Apd(store)("coarsen", "--run", "d", ok=False), "layer 1 of run 'd' is hard-tanh")
