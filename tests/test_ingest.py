"""Ingest: the graph holds exactly the patterns of a plain forward pass, counts add up,
re-ingesting replaces, and user mistakes write nothing."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from loaders import ingest as ingest_mod
from loaders.datasets import load_dataset
from loaders.ingest import ingest, summary
from loaders.models import load_model
from loaders.record import decode_bits, record
from loaders.train import train
from tests import factories
from tests.cli import one_line_error
from tests.oracles import forward
from toolkit.errors import ApdError
from toolkit.store import open_store


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained digits checkpoint, a factory state dict, and a synthetic npz dataset."""
    root = tmp_path_factory.mktemp("ingest")
    train("digits", [24, 16, 16], epochs=3, out=root / "digits.pt", snapshots=[1], progress=False)
    torch.save(factories.mixed().state_dict(), root / "mixed.pt")
    torch.save(factories.no_activations().state_dict(), root / "plain.pt")
    x, y = factories.synthetic()
    np.savez(root / "blobs.npz", x=x, y=y)
    return root


def _graph_states(store, run: str, layer: int, neurons: int, kind: str) -> np.ndarray:
    bits = store.read("MATCH (p:Pattern) WHERE p.run = $run AND p.layer = $layer RETURN p.bits AS bits",
                      {"run": run, "layer": layer})["bits"]
    return decode_bits(list(bits), neurons, kind)


def _same_rows(graph: np.ndarray, states: np.ndarray) -> bool:
    """The graph's patterns are distinct and are exactly the distinct rows of `states`."""
    distinct = np.unique(states, axis=0)
    return len(graph) == len(distinct) and np.array_equal(np.unique(graph, axis=0), distinct)


def _check_counts(store, run: str, n: int, layers: int) -> None:
    """ACTIVATES = n x L; NEXT counts sum to n per consecutive pair; PREDICTS counts sum to n."""
    act = store.read("MATCH (i:Instance)-[a:ACTIVATES]->(p:Pattern) WHERE i.run = $run "
                     "RETURN a.layer AS layer, count(a) AS edges", {"run": run})
    assert sorted(act["layer"]) == list(range(1, layers + 1)) and set(act["edges"]) == {n}
    nxt = store.query("apd_next", run=run)
    assert nxt["layer"].tolist() == list(range(1, layers)) and set(nxt["instances"].astype(int)) == {n}
    predicts = store.query("apd_predicts", run=run)
    assert int(predicts["instances"].sum()) == n
    # the named queries agree with pandas over the raw properties
    pats = store.read("MATCH (p:Pattern) WHERE p.run = $run RETURN p.layer AS layer, p.support AS support, "
                      "p.errors AS errors", {"run": run})
    by_layer = pats.groupby("layer").agg(patterns=("support", "size"), instances=("support", "sum"),
                                         errors=("errors", "sum")).reset_index()
    got = store.query("layer_summary", run=run).drop(columns="max_support").astype(int)
    pd.testing.assert_frame_equal(got, by_layer.astype(int), check_dtype=False)
    inst = store.read("MATCH (i:Instance) WHERE i.run = $run RETURN i.pred AS pred, i.correct AS correct",
                      {"run": run})
    wrong = inst[~inst["correct"]].groupby("pred").size()
    errors = predicts.set_index("label")["errors"].astype(int)
    assert all(errors.get(k, 0) == v for k, v in wrong.items()) and errors.sum() == (~inst["correct"]).sum()
    edges = store.read("MATCH (p:Pattern)-[e:PREDICTS]->(y:Label) WHERE y.run = $run "
                       "RETURN y.value AS label, count(e) AS edges", {"run": run}).sort_values("label")
    assert edges["edges"].tolist() == predicts["edges"].astype(int).tolist()


def test_digits_graph_equals_plain_forward_pass(files, store):
    out = ingest(files / "digits.pt", "digits", "train", run="d-train", store=store, device="cpu")
    ds = load_dataset("digits", "train")
    model = load_model(files / "digits.pt")
    for layer, states in enumerate(forward(model, ds.x, torch.float32)[0], start=1):  # as ingest ran it
        assert _same_rows(_graph_states(store, "d-train", layer, states.shape[1], "relu"), states)
    _check_counts(store, "d-train", len(ds), 3)
    run = store.runs().set_index("run").loc["d-train"]
    assert run["dataset"] == "digits" and run["split"] == "train" and run["epoch"] == 3
    assert run["arch"] == "64-24-16-16-10 relu" and run["layers"] == 3 and run["instances"] == len(ds)
    assert len(run["model_hash"]) == 16 and run["model"] == str((files / "digits.pt").resolve())
    pred = model(torch.from_numpy(ds.x)).argmax(1).numpy()
    assert run["accuracy"] == pytest.approx((pred == ds.y).mean())
    assert out["forgetting_from"] == "checkpoint"


def test_forgetting_comes_from_the_checkpoint_for_train_only(files, store):
    ingest(files / "digits.pt", "digits", "train", run="tr", store=store, device="cpu")
    ingest(files / "digits.pt", "digits", "test", run="te", store=store, device="cpu")
    record = torch.load(files / "digits.pt", weights_only=True)["record"]
    q = ("MATCH (i:Instance) WHERE i.run = $run RETURN i.idx AS idx, i.forgetting AS f, "
         "i.never_learned AS never, i.cluster AS cluster ORDER BY idx")
    tr = store.read(q, {"run": "tr"})
    assert tr["idx"].tolist() == list(range(len(tr)))
    assert tr["f"].tolist() == record["forgetting"].tolist()
    assert tr["never"].tolist() == record["never_learned"].tolist()
    te = store.read(q, {"run": "te"})
    assert set(te["f"]) == {0} and not te["never"].any() and set(te["cluster"]) == {-1}


def test_snapshot_ingests_as_its_own_run(files, apd):
    info = apd.json("ingest", str(files / "digits@e1.pt"), "--run", "d@e1", "--device", "cpu")
    assert info["epoch"] == 1 and info["forgetting_from"] == "checkpoint"
    with open_store(apd.store_path) as s:
        never = s.read("MATCH (i:Instance) WHERE i.run = 'd@e1' RETURN i.never_learned AS never, i.forgetting AS f")
    record = torch.load(files / "digits@e1.pt", weights_only=True)["record"]
    assert set(never["f"]) == {0}  # one presentation: nothing can be forgotten yet
    assert int(never["never"].sum()) == int(record["never_learned"].sum()) > 0


def test_factory_model_on_synthetic_npz_via_cli(files, apd):
    data = f"npz:{files / 'blobs.npz'}"
    info = apd.json("ingest", str(files / "mixed.pt"), "--factory", "factories:mixed", "--dataset", data,
                    "--split", "all", "--run", "blobs", "--device", "cpu", "--batch-size", "128")
    assert info["arch"] == "6-12-70-9-3 relu/leaky_relu/hardtanh" and info["factory"] == "factories:mixed"
    assert info["epoch"] == -1
    model = factories.mixed()
    model.load_state_dict(torch.load(files / "mixed.pt", weights_only=True))
    x, _ = factories.synthetic()
    with open_store(apd.store_path) as s:
        for layer, states in enumerate(model.states(torch.from_numpy(x)), start=1):
            kind = ["relu", "leaky_relu", "hardtanh"][layer - 1]
            assert _same_rows(_graph_states(s, "blobs", layer, states.shape[1], kind), states)
        _check_counts(s, "blobs", len(x), 3)
        ones = s.read("MATCH (p:Pattern) WHERE p.run = 'blobs' AND p.layer = 3 RETURN p.bits AS bits, p.ones AS ones")
        assert np.array_equal((decode_bits(list(ones["bits"]), 9, "hardtanh") == 1).sum(1), ones["ones"])
    assert [p["patterns"] for p in info["patterns"]] == [len(np.unique(s_, axis=0)) for s_ in model.states(torch.from_numpy(x))]


def test_reingest_replaces_and_never_duplicates(files, store):
    ingest(files / "digits.pt", "digits", "test", run="again", store=store, device="cpu")
    first = store.counts("again")
    edges = summary(store, "again")
    ingest(files / "digits.pt", "digits", "test", run="again", store=store, device="cpu")
    assert store.counts("again").equals(first) and summary(store, "again") == edges
    assert first["Run"] == 1 and first["Instance"] == 450


def test_chunked_write_matches_and_failure_leaves_nothing(files, store, monkeypatch):
    ingest(files / "digits.pt", "digits", "test", run="whole", store=store, device="cpu")
    monkeypatch.setattr(ingest_mod, "CHUNK_INSTANCES", 100)
    ingest(files / "digits.pt", "digits", "test", run="chunked", store=store, device="cpu")
    assert store.counts("chunked").equals(store.counts("whole"))
    assert summary(store, "chunked") == {**summary(store, "whole"), "run": "chunked"}
    _check_counts(store, "chunked", 450, 3)
    ds = load_dataset("digits", "test")  # whole frames given to the chunked write (as bench/ does)
    rec = record(load_model(files / "digits.pt"), ds.x, device="cpu")
    n = len(ds)
    ingest_mod.write_frames(store, "framed", ingest_mod.build_frames(
        "framed", rec, ds.y, np.zeros(n, np.int64), np.zeros(n, bool), ds.rows))
    assert store.counts("framed").equals(store.counts("whole").drop("Run"))
    assert summary(store, "framed") == {**summary(store, "whole"), "run": "framed"}

    real_write, calls = store.write, []

    def failing_write(run, **kw):
        calls.append(run)
        if len(calls) == 3:
            raise ApdError("disk full")
        return real_write(run, **kw)

    monkeypatch.setattr(store, "write", failing_write)
    with pytest.raises(ApdError, match="disk full"):
        ingest(files / "digits.pt", "digits", "test", run="chunked", store=store, device="cpu")
    assert len(store.counts("chunked")) == 0


def _refused(apd, *args: str) -> str:
    result = apd(*args, ok=False)
    one_line_error(result)
    if "://" in apd.store_path:
        assert apd.json("runs") == []
    else:  # the refused ingest would have created the store: it leaves no file behind
        assert not os.path.exists(apd.store_path)
    return result.stderr.rstrip("\n")


def test_user_mistakes_are_one_line_and_write_nothing(files, apd, tmp_path):
    nan = np.ones((20, 64), dtype=np.float32)
    nan[3, 3] = np.inf
    np.savez(tmp_path / "nan.npz", x=nan, y=np.zeros(20, dtype=int))
    np.savez(tmp_path / "narrow.npz", x=np.ones((20, 5), dtype=np.float32), y=np.zeros(20, dtype=int))
    digits, mixed, plain = str(files / "digits.pt"), str(files / "mixed.pt"), str(files / "plain.pt")
    assert "no model file" in _refused(apd, "ingest", str(tmp_path / "missing.pt"), "--run", "r")
    assert "does not fit the model of factory factories:mixed" in _refused(
        apd, "ingest", plain, "--factory", "factories:mixed", "--dataset", f"npz:{files / 'blobs.npz'}", "--run", "r")
    assert "no piecewise-linear activations" in _refused(
        apd, "ingest", plain, "--factory", "factories:no_activations", "--dataset", f"npz:{files / 'blobs.npz'}",
        "--run", "r")
    assert "NaN or inf" in _refused(apd, "ingest", digits, "--dataset", f"npz:{tmp_path / 'nan.npz'}", "--run", "r")
    assert "takes 64 features but dataset" in _refused(
        apd, "ingest", digits, "--dataset", f"npz:{tmp_path / 'narrow.npz'}", "--run", "r")
    assert "rejects inputs with 64 features" in _refused(
        apd, "ingest", mixed, "--factory", "factories:mixed", "--dataset", "digits", "--run", "r")
    assert "unknown dataset 'cifar10'" in _refused(apd, "ingest", digits, "--dataset", "cifar10", "--run", "r")
    assert "not an apd checkpoint" in _refused(apd, "ingest", mixed, "--run", "r")
    assert "cannot import factory module" in _refused(apd, "ingest", mixed, "--factory", "nowhere:fn", "--run", "r")
    assert "run name" in _refused(apd, "ingest", digits, "--run", "bad name")
    # mixed activations are refused at ingest, naming the node; a text file is not a checkpoint
    torch.save(factories.sigmoid_mix().state_dict(), tmp_path / "sigmoid.pt")
    assert _refused(apd, "ingest", str(tmp_path / "sigmoid.pt"), "--factory", "factories:sigmoid_mix",
                    "--dataset", f"npz:{files / 'blobs.npz'}", "--run", "r") == \
        "Error: layer 3 (Sigmoid) is not piecewise-linear"
    (tmp_path / "README.md").write_text("# not a model\n")
    assert _refused(apd, "ingest", str(tmp_path / "README.md"), "--run", "r") == \
        f"Error: {tmp_path / 'README.md'} is not a PyTorch checkpoint (neither a torch zip archive nor a pickle)"


def test_human_output(files, apd):
    result = apd("ingest", str(files / "digits.pt"), "--split", "test", "--run", "h", "--device", "cpu")
    assert result.stdout.startswith("h: 450 instances of digits/test, accuracy ")
    assert json.loads(apd("runs", "--json").stdout)[0]["run"] == "h"
