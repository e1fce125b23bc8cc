"""Training: forgetting events by hand, checkpoints that load weights-only, pruning, snapshots."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from loaders.forgetting import forgetting_events
from loaders.models import load, load_model
from loaders.train import snapshot_path, train
from tests.cli import one_line_error
from toolkit.cli import main
from toolkit.errors import ApdError


def test_forgetting_events_hand_worked():
    # rows: presentations (epochs); columns: instances
    correct = np.array(
        [
            [1, 0, 1, 0, 1, 1],
            [0, 0, 1, 1, 0, 1],
            [1, 0, 1, 1, 0, 0],
            [0, 0, 1, 0, 1, 0],
        ],
        dtype=bool,
    )
    events, never = forgetting_events(correct)
    # 0: 1->0 twice; 1: never correct; 2: always correct; 3: learned at 2, lost at 4;
    # 4: lost at 2, relearned at 4; 5: learned from the start, lost once at 3
    assert events.tolist() == [2, 0, 0, 1, 1, 1]
    assert never.tolist() == [False, True, False, False, False, False]
    one, never_one = forgetting_events(correct[:1])
    assert one.tolist() == [0] * 6 and never_one.tolist() == [False, True, False, True, False, False]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "m.pt"
    info = train("digits", [16, 16], epochs=4, out=out, snapshots=[2], progress=False, seed=3)
    return out, info


def test_checkpoints_load_weights_only_with_record(trained):
    out, info = trained
    assert [c["epoch"] for c in info["checkpoints"]] == [2, 4]
    snap = snapshot_path(out, 2)
    assert snap.name == "m@e2.pt" and snap.is_file()
    for path, epoch in ((snap, 2), (out, 4)):
        raw = torch.load(path, weights_only=True)
        assert raw["arch"]["hidden"] == [16, 16] and raw["record"]["epoch"] == epoch
        record = raw["record"]
        n = info["train_instances"]
        assert record["forgetting"].shape == (n,) and record["never_learned"].dtype == torch.bool
        # at most one event per two presentations; never-learned instances have none
        assert int(record["forgetting"].max()) <= epoch // 2
        assert not bool((record["forgetting"][record["never_learned"]] > 0).any())
        assert len(record["history"]["loss"]) == epoch
        assert record["split_meta"]["split_seed"] == 0
    final = load(out)
    assert final.epoch == 4 and final.arch == "64-16-16-10 relu"
    assert info["forgetting_events"] == int(final.record["forgetting"].sum())


def test_same_seed_same_weights(trained, tmp_path):
    out, _ = trained
    train("digits", [16, 16], epochs=4, out=tmp_path / "again.pt", progress=False, seed=3)
    a, b = load_model(out).state_dict(), load_model(tmp_path / "again.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pruning_masks_stay_fixed(tmp_path):
    info = train("digits", [32], epochs=3, out=tmp_path / "sparse.pt", density=0.1, optimizer="sgd",
                 activation="leaky_relu", progress=False)
    raw = torch.load(tmp_path / "sparse.pt", weights_only=True)
    assert set(raw["masks"]) == {"fc1.weight", "out.weight"}
    for name, mask in raw["masks"].items():
        weight = raw["state_dict"][name]
        assert torch.all(weight[~mask] == 0)
        assert 0.05 < mask.float().mean() < 0.15
    assert info["arch"] == "64-32-10 leaky_relu density=0.1"
    assert isinstance(load_model(tmp_path / "sparse.pt").act1, torch.nn.LeakyReLU)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"snapshots": [0]}, "snapshot epochs"),
        ({"density": 0.0}, "--density"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"dataset": "nope"}, "unknown dataset"),
        ({"hidden": [0]}, "hidden widths"),
    ],
)
def test_train_rejects_bad_options(kwargs, message, tmp_path):
    with pytest.raises(ApdError, match=message):
        train(**{"epochs": 2, "out": tmp_path / "x.pt", "progress": False, **kwargs})
    assert not (tmp_path / "x.pt").exists()


def test_cli_train(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.pt"
    args = ["train", "--hidden", "8,8", "--epochs", "2", "--out", str(out), "--snapshots", "1", "--json"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["arch"] == "64-8-8-10 relu" and out.is_file() and snapshot_path(out, 1).is_file()
    bad = runner.invoke(main, ["train", "--hidden", "8,x", "--out", str(tmp_path / "bad.pt")])
    assert bad.exit_code == 1 and bad.stderr.strip() == (
        "Error: --hidden takes comma-separated integers, e.g. 32,32,32 (got '8,x')"
    )


def test_record_every_then_evolution_gives_the_per_epoch_table(apd, tmp_path):
    """Counts stored in training equal an independent recount from snapshots of the same epochs."""
    from loaders.datasets import load_dataset
    from loaders.record import record

    out = tmp_path / "e.pt"
    info = apd.json("train", "--dataset", "digits", "--hidden", "12,12,12", "--epochs", "4", "--out", str(out),
                    "--snapshots", "2,3", "--record-every", "1", "--run", "ev", "--device", "cpu", "--batch-size", "128")
    assert len(info["history"]["loss"]) == 4 and info["run"] == "ev"
    table = apd.json("evolution", "--run", "ev")
    assert [r["epoch"] for r in table] == [0, 1, 2, 3, 4]
    # the Cypher read-back equals the rows the trainer counted (pandas pivot of the --json rows)
    rows = pd.DataFrame(info["epochs_recorded"])
    wide = rows.pivot(index="epoch", columns="layer", values="patterns")
    for r in table:
        assert [r[f"layer_{k}"] for k in (1, 2, 3)] == wide.loc[r["epoch"]].tolist()
        assert r["split"] == "train" and r["instances"] == 1347
    # independent: record the snapshots / final model over the train split
    x = load_dataset("digits", "train").x
    y = load_dataset("digits", "train").y
    for epoch, path in [(2, snapshot_path(out, 2)), (3, snapshot_path(out, 3)), (4, out)]:
        rec = record(load_model(path), x, device="cpu")
        row = next(r for r in table if r["epoch"] == epoch)
        assert [layer.patterns for layer in rec.layers] == [row["layer_1"], row["layer_2"], row["layer_3"]]
        assert row["accuracy"] == pytest.approx(float((rec.pred == y).mean()))
    assert table[-1]["loss"] < table[0]["loss"]
    # re-running replaces the run's Epoch nodes; a re-ingest under the same name keeps them
    apd.json("train", "--dataset", "digits", "--hidden", "12,12,12", "--epochs", "2", "--out", str(out),
             "--record-every", "2", "--run", "ev", "--record-split", "test", "--device", "cpu")
    again = apd.json("evolution", "--run", "ev")
    assert [(r["epoch"], r["split"], r["instances"]) for r in again] == [(0, "test", 450), (2, "test", 450)]
    apd.json("ingest", str(out), "--run", "ev", "--device", "cpu")
    assert len(apd.json("evolution", "--run", "ev")) == 2
    assert apd.json("drop", "--run", "ev")["nodes_removed"] > 0
    one_line_error(apd("evolution", "--run", "ev", ok=False), "no run named 'ev'")


def test_train_option_mistakes_are_one_line(apd, tmp_path):
    for args, message in [
        (["--record-every", "1"], "--record-every N and --run NAME go together"),
        (["--arch", "lenet5"], "--arch lenet5 takes 28x28 images (784 features), the data has 64"),
        (["--momentum", "0.9"], "--momentum applies to --optimizer sgd only"),
        (["--record-every", "1", "--run", "bad name"], "run name 'bad name'"),
    ]:
        one_line_error(apd("train", "--epochs", "1", "--out", str(tmp_path / "m.pt"), *args, ok=False), message)
    one_line_error(apd("evolution", ok=False), "exactly one of --runs GLOB")


def test_old_mlp_checkpoints_still_load(tmp_path):
    """A checkpoint in the apd-mlp/1 format (before conv nets) loads as the same MLP."""
    from loaders.models import build_mlp

    torch.manual_seed(0)
    model = build_mlp(64, [5], 10)
    old = {"format": "apd-mlp/1", "arch": {"in_dim": 64, "hidden": [5], "out_dim": 10, "activation": "relu",
                                           "negative_slope": 0.01, "density": 1.0},
           "state_dict": model.state_dict(), "masks": {}, "record": {"epoch": 7}}
    torch.save(old, tmp_path / "old.pt")
    loaded = load(tmp_path / "old.pt")
    assert loaded.arch == "64-5-10 relu" and loaded.epoch == 7
    x = torch.randn(4, 64)
    assert torch.equal(loaded.model(x), model(x))
