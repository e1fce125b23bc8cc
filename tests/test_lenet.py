"""`apd train --arch lenet5`, `apd ingest` and `apd regions` on a conv net, and on a residual
MLP built by a factory: recorded patterns equal forward hooks' masks, and the stored runs'
plane partitions pass the invariants of tests/partition_checks.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from loaders.datasets import load_dataset
from loaders.models import load_model
from tests import factories
from tests.oracles import hidden_states
from tests.partition_checks import check_partition
from toolkit.regions import partition, plane_from_anchors


@pytest.fixture(scope="module")
def digits28(tmp_path_factory) -> str:
    """scikit-learn's digits scaled up to 28x28 (3x3 blocks, 2-pixel border): real images, no download."""
    d = load_digits()
    img = np.kron(d.images / 16.0, np.ones((3, 3)))
    x = np.pad(img, ((0, 0), (2, 2), (2, 2))).reshape(len(img), -1).astype(np.float32)
    path = tmp_path_factory.mktemp("digits28") / "digits28.npz"
    np.savez(path, x=x, y=d.target)
    return f"npz:{path}"


def test_lenet5_train_ingest_regions(digits28, apd, tmp_path):
    out = tmp_path / "lenet.pt"
    info = apd.json("train", "--arch", "lenet5", "--dataset", digits28, "--epochs", "2", "--out", str(out),
                    "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--weight-decay", "1e-4",
                    "--init", "kaiming", "--device", "cpu")
    assert info["arch"] == "lenet5 1x28x28-6x28x28-16x10x10-120-84-10 relu" and len(info["history"]["loss"]) == 2
    assert info["history"]["loss"][1] < info["history"]["loss"][0] and info["test_accuracy"] > 0.5
    ing = apd.json("ingest", str(out), "--dataset", digits28, "--split", "test", "--run", "lenet", "--device", "cpu")
    assert [(p["module"], p["neurons"]) for p in ing["patterns"]] == [
        ("act1", 4704), ("act2", 1600), ("act3", 120), ("act4", 84)]
    # the arch string names each hidden layer's output shape: its size is the layer's pattern bits
    shapes = info["arch"].split()[1].split("-")[1:-1]
    assert [int(np.prod([int(d) for d in s.split("x")])) for s in shapes] == [p["neurons"] for p in ing["patterns"]]
    # distinct patterns per layer = distinct forward-hook masks over the same split
    model = load_model(out)
    data = load_dataset(digits28, "test")
    masks = hidden_states(model, data.x, torch.float32)  # as ingest ran it
    widths = np.cumsum([0, 4704, 1600, 120, 84])
    assert [p["patterns"] for p in ing["patterns"]] == [
        len(np.unique(masks[:, a:b], axis=0)) for a, b in zip(widths[:-1], widths[1:])]
    regions = apd.json("regions", "--run", "lenet", "--anchors", "0,1,2", "--scale", "0.02", "--device", "cpu")
    plane = plane_from_anchors(*data.x[[0, 1, 2]], scale=0.02)
    part = partition(model, plane, device="cpu")
    assert regions["regions"] == part.count > 20
    assert regions["area"] == pytest.approx(plane.box_area, rel=1e-9)
    check_partition(model, plane, part, grid=60, euler=False)  # slivers of area ~1e-13: see check_partition
    for args in (["--segment", "0,1"], []):  # region geometry takes MLP chains only: one line, no traceback
        result = apd("geometry", "--run", "lenet", "--device", "cpu", *args, ok=False)
        assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
            "Error: Sequential is not a chain of Linear and activation modules: region geometry takes MLPs only "
            "(`apd regions` takes conv and residual nets)"]


def test_residual_mlp_ingest_and_regions(apd, tmp_path):
    state = tmp_path / "residual.pt"
    torch.save(factories.residual().state_dict(), state)
    ing = apd.json("ingest", str(state), "--factory", "factories:residual", "--dataset", "digits", "--split", "test",
                   "--run", "res", "--device", "cpu")
    assert ing["arch"] == "64-7-7-7-7-10 relu" and len(ing["patterns"]) == 4
    model = factories.residual().eval()
    data = load_dataset("digits", "test")
    masks = hidden_states(model, data.x, torch.float32)
    assert [p["patterns"] for p in ing["patterns"]] == [len(np.unique(masks[:, 7 * i : 7 * i + 7], axis=0))
                                                         for i in range(4)]
    regions = apd.json("regions", "--run", "res", "--anchors", "5,17,40", "--device", "cpu")
    plane = plane_from_anchors(*data.x[[5, 17, 40]])
    part = partition(model, plane, device="cpu")
    assert regions["regions"] == part.count > 20
    check_partition(model, plane, part, grid=150)
