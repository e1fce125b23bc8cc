"""Runs made by `apd train --record-every N --run NAME` are first-class: a Run node that says
it holds only training history (Epoch nodes, no instances), listed by `apd runs`, whole for
`apd store check`, refused in one line by what needs instances, and replaced by a later
`apd ingest` under the same name (which keeps the Epoch nodes)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.cli import invoke, one_line_error
from toolkit.store import open_store

HISTORY = "holds only training history"


def _train(apd, out: Path, run: str = "h", *extra: str) -> dict:
    return apd.json("train", "--dataset", "digits", "--hidden", "8,8", "--epochs", "2", "--out", str(out),
                    "--record-every", "1", "--run", run, "--device", "cpu", *extra)


def test_a_recorded_training_is_a_run(apd, backend, tmp_path):
    out = tmp_path / "h.pt"
    info = _train(apd, out)
    runs = apd.json("runs")
    assert [r["run"] for r in runs] == ["h"]
    run = runs[0]
    assert (run["history_only"], run["instances"], run["layers"], run["split"], run["dataset"]) == \
        (True, 0, 2, "train", "digits")
    assert run["model"] == str(out.resolve()) and run["epoch"] == 2 and run["n_epoch"] == 3 * 2
    assert run["accuracy"] == pytest.approx(info["train_accuracy"])
    assert run["official_split"] is False and "1,347 train / 450 test" in run["split_note"]
    if backend == "lbug":  # store check works on LadybugDB files
        check = invoke("store", "check", "--store", apd.store_path)
        assert check.exit_code == 0 and check.stdout.strip().endswith("1 run, all whole"), check.output
    # what needs instances says so in one line; the history itself reads back
    for args in (["split", "--run", "h"], ["flows", "--run", "h"], ["hardness", "--run", "h"],
                 ["report", "--run", "h", "--out", str(tmp_path / "r.html")],
                 ["regions", "--run", "h", "--anchors", "0,1,2", "--device", "cpu"],
                 ["export", "--run", "h", "--what", "patterns", "--out", str(tmp_path / "p.csv")]):
        one_line_error(apd(*args, ok=False), HISTORY)
    assert [r["epoch"] for r in apd.json("evolution", "--run", "h")] == [0, 1, 2]
    one_line_error(apd("evolution", "--runs", "h*", ok=False), "no run matches")  # no snapshot with patterns


def test_retraining_replaces_the_history_and_ingest_replaces_the_run_node(apd, backend, tmp_path):
    _train(apd, tmp_path / "a.pt")
    _train(apd, tmp_path / "b.pt", "h", "--record-split", "test")  # another model: its history replaces the first
    run = apd.json("runs")[0]
    assert run["model"] == str((tmp_path / "b.pt").resolve()) and run["split"] == "test" and run["n_epoch"] == 6
    apd.json("ingest", str(tmp_path / "b.pt"), "--split", "test", "--run", "h", "--device", "cpu")
    run = apd.json("runs")[0]
    assert (run["history_only"], run["instances"], run["n_epoch"]) == (False, 450, 6)
    assert len(apd.json("evolution", "--run", "h")) == 3
    assert apd.json("split", "--run", "h")["clusters"] > 0
    # the ingested run now names its model: training another one onto it is refused
    one_line_error(apd("train", "--dataset", "digits", "--hidden", "8,8", "--epochs", "1", "--out",
                       str(tmp_path / "c.pt"), "--record-every", "1", "--run", "h", "--device", "cpu", ok=False),
                   "holds model")
    if backend == "lbug":
        check = invoke("store", "check", "--store", apd.store_path)
        assert check.exit_code == 0, check.output


@pytest.mark.embedded_only
def test_store_check_counts_a_history_runs_epochs(apd, tmp_path):
    _train(apd, tmp_path / "h.pt")
    with open_store(apd.store_path) as s:
        epochs = s.query("epochs", run="h")
        s.write("h", nodes={"Epoch": epochs.iloc[:1].assign(uid="h:epoch:0:1", run="h")}, replace=["Epoch"])
    check = invoke("store", "check", "--store", apd.store_path)
    assert check.exit_code == 1 and "1 problem\n" in check.stdout
    assert "run h: 1 Epoch nodes, not a whole number of epochs of 2 layers" in check.stderr


@pytest.mark.embedded_only
def test_epoch_nodes_of_an_older_apd_without_a_run_node_pass_the_check(apd, tmp_path):
    """Before Run nodes for recorded trainings, a run held Epoch nodes only: not damage."""
    frame = pd.DataFrame({"uid": ["old:epoch:0:1"], "run": "old", "epoch": 0, "layer": 1, "patterns": 5,
                          "split": "train", "instances": 10, "loss": 1.0, "accuracy": 0.5})
    with open_store(apd.store_path) as s:
        s.write("old", nodes={"Epoch": frame})
    check = invoke("store", "check", "--store", apd.store_path)
    assert check.exit_code == 0 and "0 runs, all whole" in check.stdout, check.output
    assert apd.json("evolution", "--run", "old")[0]["layer_1"] == 5


@pytest.mark.embedded_only
def test_a_store_made_before_the_new_run_columns_is_upgraded_on_open(store_path, apd):
    """An older store's Run table lacks history_only / official_split / split_note: even a
    read-only command upgrades it, and its runs read as ingested with an unknown split."""
    import ladybug

    from toolkit.store import queries

    old = queries.body("ladybug/schema").replace(
        ", history_only BOOLEAN, official_split BOOLEAN, split_note STRING", "")
    db = ladybug.Database(store_path)
    conn = ladybug.Connection(db)
    for stmt in queries.statements(old):
        conn.execute(stmt)
    conn.execute("CREATE (:Run {uid: 'r', run: 'r', instances: 0, layers: 1})")
    conn.close()
    db.close()
    run = apd.json("runs")[0]
    assert (run["run"], run["history_only"], run["official_split"], run["split_note"]) == ("r", False, None, "")
