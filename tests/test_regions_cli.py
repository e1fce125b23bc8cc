"""`apd regions` and `apd geometry` on a stored run: the model and inputs come back from the
Run node, and the numbers equal the engine's and an independent forward pass."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from loaders.datasets import load_dataset
from loaders.models import load_model
from toolkit.regions import partition, plane_from_anchors
from toolkit.store import open_store
from tests.cli import one_line_error
from tests.oracles import hidden_states, preactivations
from tests.partition_checks import pattern_set
from tests.stores import copy_store

pytestmark = pytest.mark.embedded_only  # the run is in a LadybugDB file; the Neo4j leg would run the same


@pytest.fixture(scope="module")
def run_store(digits_run, tmp_path_factory):
    """A 64-16-16-10 net trained briefly on digits, its test split ingested as run `d`: a copy
    of the session's (`apd geometry` writes to it)."""
    run = digits_run()
    return copy_store(run.store, tmp_path_factory.mktemp("regions-run")), run.model


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
    grid_patterns = pattern_set(hidden_states(model, pts))
    assert len(grid_patterns) > 10 and grid_patterns <= pattern_set(part.pattern.numpy())


def _local_maps(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every hidden pre-activation z(x) and its input gradient, by autograd on the original
    torch modules (a float64 copy): the region's hyperplanes, independent of pl_network."""
    net = copy.deepcopy(model).double()
    xt = torch.as_tensor(x, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: preactivations(net, v)))(xt).detach().numpy()
    return preactivations(net, xt).detach().numpy(), jac


def test_geometry_command_writes_instance_numbers(run_store, apd):
    store, model_path = run_store
    apd.store_path = store
    rows = apd.json("geometry", "--run", "d", "--device", "cpu")
    assert "inradius" not in rows[0]
    data = load_dataset("digits", "test")
    z, jac = _local_maps(load_model(model_path), data.x)
    with np.errstate(divide="ignore"):
        want = (np.abs(z) / np.linalg.norm(jac, axis=2)).min(1)  # DESIGN.md: min_i |z_i(x)| / ||grad z_i(x)||
    np.testing.assert_allclose([r["boundary_dist"] for r in rows], want, rtol=1e-9)
    with open_store(store, read_only=True) as s:
        got = s.read("MATCH (i:Instance) WHERE i.run = 'd' RETURN i.idx AS idx, i.boundary_dist AS d ORDER BY idx")
    np.testing.assert_allclose(got["d"].to_numpy(), want, rtol=1e-9)


def test_geometry_segment_equals_a_dense_walk(run_store, apd):
    """Regions crossed between two instances: the command's count equals the number of
    pattern changes seen by a forward pass of the original modules at 200,001 points."""
    store, model_path = run_store
    apd.store_path = store
    data = load_dataset("digits", "test")
    model = load_model(model_path)
    counts = []
    for ends in [(0, 1), (5, 300), (17, 420)]:
        out = apd.json("geometry", "--run", "d", "--segment", ",".join(map(str, ends)), "--device", "cpu")
        xa, xb = data.x[list(ends)].astype(np.float64)
        t = np.linspace(0.0, 1.0, 200_001)[:, None]
        walk = hidden_states(model, xa + t * (xb - xa))
        changes = int((walk[1:] != walk[:-1]).any(1).sum())
        assert out["regions"] == changes + 1, (ends, out["regions"], changes)
        assert out["length"] == pytest.approx(float(np.linalg.norm(xb - xa)), rel=1e-12)
        counts.append(out["regions"])
    assert max(counts) > 5, counts  # segments that cross more than a handful of regions


def _chebyshev(z: np.ndarray, jac: np.ndarray, x: np.ndarray, lo: float, hi: float) -> float:
    """Largest ball inside {y : sign(z_i(x)) z_i(y) >= 0 for every hidden neuron} within the box
    [lo, hi]^d, by LP on the hyperplanes of the modules' autograd maps."""
    side = np.where(z > 0, 1.0, -1.0)
    offset = z - jac @ x  # z_i(y) = jac_i . y + offset_i inside the region
    norm = np.linalg.norm(jac, axis=1)
    live = norm > 1e-12  # a neuron constant on the region bounds nothing
    d = len(x)
    rows = [np.hstack([-side[live, None] * jac[live], norm[live, None]])]
    rhs = [side[live] * offset[live]]
    eye = np.eye(d)
    rows += [np.hstack([eye, np.ones((d, 1))]), np.hstack([-eye, np.ones((d, 1))])]  # lo + r <= c <= hi - r
    rhs += [np.full(d, hi), np.full(d, -lo)]
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=np.vstack(rows), b_ub=np.concatenate(rhs),
                  bounds=[(None, None)] * d + [(0, None)], method="highs-ds")
    assert res.status == 0, res.message
    return float(res.x[-1])


def test_geometry_inradius_equals_an_independent_lp(run_store, apd):
    """The command's and the stored inradius equal a Chebyshev-centre LP built from the
    modules' own hyperplanes, within the data's range, for 25 instances."""
    store, model_path = run_store
    apd.store_path = store
    rows = apd.json("geometry", "--run", "d", "--device", "cpu", "--inradius")
    rad = np.array([r["inradius"] for r in rows])
    data = load_dataset("digits", "test")
    lo, hi = float(data.x.min()), float(data.x.max())
    pick = np.random.default_rng(0).choice(len(data.x), 25, replace=False)
    x = data.x[pick].astype(np.float64)
    z, jac = _local_maps(load_model(model_path), x)
    want = np.array([_chebyshev(z[k], jac[k], x[k], lo, hi) for k in range(len(pick))])
    assert np.all(want > 0) and len(np.unique(want.round(9))) > 5
    np.testing.assert_allclose(rad[pick], want, rtol=1e-6)
    with open_store(store, read_only=True) as s:
        got = s.read("MATCH (i:Instance) WHERE i.run = 'd' RETURN i.idx AS idx, i.inradius AS r ORDER BY idx")
    np.testing.assert_allclose(got["r"].to_numpy()[pick], want, rtol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--anchors", "0,0,2"], "anchor indices must be distinct"),
    (["--anchors", "0,1,99999"], "anchor index 99999 out of range (0..449)"),
    (["--anchors", "0,1"], "--anchors takes 3 numbers"),
])
def test_regions_errors(run_store, apd, args, message):
    apd.store_path = run_store[0]
    one_line_error(apd("regions", "--run", "d", *args, ok=False), message)


def test_regions_unknown_run(run_store, apd):
    apd.store_path = run_store[0]
    one_line_error(apd("regions", "--run", "nope", "--anchors", "0,1,2", ok=False), "no run named 'nope'")


def test_regions_and_geometry_show_progress_unless_json(run_store, apd):
    store, _ = run_store
    apd.store_path = store
    shown = apd("regions", "--run", "d", "--anchors", "3,10,42", "--device", "cpu")
    assert "regions: " in shown.stderr and "region [" in shown.stderr  # regions found, counted as they come
    assert apd("regions", "--run", "d", "--anchors", "3,10,42", "--device", "cpu", "--json").stderr == ""
    shown = apd("geometry", "--run", "d", "--device", "cpu")
    assert "boundary distance" in shown.stderr and "/450 [" in shown.stderr  # a bar over the 450 instances
    assert apd("geometry", "--run", "d", "--device", "cpu", "--json").stderr == ""
