"""`apd regions` and `apd geometry` on a stored run: the model and inputs come back from the
Run node, and the numbers equal the engine's and an independent forward pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.models import load_model
from loaders.train import train
from toolkit.regions import boundary_distance, partition, plane_from_anchors
from toolkit.store import open_store


@pytest.fixture(scope="module")
def run_store(tmp_path_factory):
    """A 64-16-16-10 net trained briefly on digits, its test split ingested as run `d`."""
    from click.testing import CliRunner

    from toolkit.cli import main

    root = tmp_path_factory.mktemp("regions-run")
    model = root / "m.pt"
    train("digits", [16, 16], epochs=3, out=model, progress=False)
    store = str(root / "s.lbug")
    result = CliRunner().invoke(main, ["ingest", str(model), "--dataset", "digits", "--split", "test",
                                       "--run", "d", "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    return store, model


def test_regions_command_matches_the_engine_and_a_forward_pass(run_store, apd):
    store, model_path = run_store
    apd.store_path = store
    out = apd.json("regions", "--run", "d", "--anchors", "3,10,42", "--device", "cpu")
    data = load_dataset("digits", "test")
    model = load_model(model_path)
    plane = plane_from_anchors(*data.x[[3, 10, 42]])
    part = partition(model, plane, device="cpu")
    assert out["regions"] == part.count and out["anchors"] == [3, 10, 42]
    assert out["area"] == pytest.approx(plane.box_area, rel=1e-9)
    np.testing.assert_allclose(out["origin"], data.x[3], rtol=0, atol=1e-7)
    # a plane point (u, v) = origin + u*basis[0] + v*basis[1]: the anchors lie on the plane
    basis = np.array(out["basis"])
    for i in (10, 42):
        uv = (data.x[i] - np.array(out["origin"])) @ basis.T
        np.testing.assert_allclose(np.array(out["origin"]) + uv @ basis, data.x[i], atol=1e-6)
    # brute force: a grid over the JSON plane and box hits no pattern the partition lacks
    umin, umax, vmin, vmax = out["box"]
    u, v = np.meshgrid(np.linspace(umin, umax, 300), np.linspace(vmin, vmax, 300))
    pts = np.array(out["origin"]) + np.stack([u.ravel(), v.ravel()], 1) @ basis
    with torch.no_grad():
        x = torch.as_tensor(pts, dtype=torch.float64)
        states = []
        for module in model.double():
            if isinstance(module, torch.nn.ReLU):
                states.append((x > 0).numpy())
            x = module(x)
    grid_patterns = {row.tobytes() for row in np.packbits(np.concatenate(states, 1), axis=1)}
    engine_patterns = {row.tobytes() for row in np.packbits(part.pattern.numpy().astype(bool), axis=1)}
    assert len(grid_patterns) > 10 and grid_patterns <= engine_patterns


def test_geometry_command_writes_instance_numbers(run_store, apd):
    store, model_path = run_store
    apd.store_path = store
    rows = apd.json("geometry", "--run", "d", "--device", "cpu")
    assert "inradius" not in rows[0]
    data = load_dataset("digits", "test")
    want = boundary_distance(load_model(model_path), data.x, device="cpu").numpy()
    np.testing.assert_allclose([r["boundary_dist"] for r in rows], want, rtol=1e-12)
    with open_store(store, read_only=True) as s:
        got = s.read("MATCH (i:Instance) WHERE i.run = 'd' RETURN i.idx AS idx, i.boundary_dist AS d ORDER BY idx")
    np.testing.assert_allclose(got["d"].to_numpy(), want, rtol=1e-12)
    segment = apd.json("geometry", "--run", "d", "--segment", "0,1", "--device", "cpu")
    assert segment["regions"] >= 1


def test_geometry_inradius_for_a_few_instances(run_store, apd, tmp_path):
    """Inradius is at least the distance to the boundary whenever the ball around x stays in the data box."""
    store, _ = run_store
    apd.store_path = store
    rows = apd.json("geometry", "--run", "d", "--device", "cpu", "--inradius")
    dist = np.array([r["boundary_dist"] for r in rows])
    rad = np.array([r["inradius"] for r in rows])
    assert np.all(np.isfinite(rad)) and np.all(rad > 0)
    data = load_dataset("digits", "test")
    room = np.minimum(data.x - data.x.min(), data.x.max() - data.x).min(1)  # distance from x to the box's faces
    inside = dist <= room
    assert np.all(rad[inside] >= dist[inside] * (1 - 1e-6))


@pytest.mark.parametrize("args, message", [
    (["--anchors", "0,0,2"], "anchor indices must be distinct"),
    (["--anchors", "0,1,99999"], "anchor index 99999 out of range (0..449)"),
    (["--anchors", "0,1"], "--anchors takes 3 numbers"),
])
def test_regions_errors(run_store, apd, args, message):
    apd.store_path = run_store[0]
    result = apd("regions", "--run", "d", *args, ok=False)
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_regions_unknown_run(run_store, apd):
    apd.store_path = run_store[0]
    result = apd("regions", "--run", "nope", "--anchors", "0,1,2", ok=False)
    assert result.exit_code == 1 and "no run named 'nope'" in result.stderr
