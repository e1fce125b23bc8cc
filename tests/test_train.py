"""Training: forgetting events by hand, checkpoints that load weights-only, pruning, snapshots."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from loaders.forgetting import forgetting_events
from loaders.models import load, load_model
from loaders.train import snapshot_path, train
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
