"""Region geometry around inputs, checked against independent computations."""
import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from toolkit.regions.geometry import boundary_distance, inradius, segment_regions
from toolkit.regions.partition import partition
from toolkit.regions.plane import plane_from_anchors
from tests.factories import mlp as seeded_mlp
from tests.oracles import hidden_states, preactivations


def mlp(arch, act=nn.ReLU, seed=0):
    return seeded_mlp(arch, act, seed).double()


NETS = [
    ("relu", lambda: mlp([8, 24, 24, 3], seed=0)),
    ("leaky", lambda: mlp([8, 24, 24, 3], act=lambda: nn.LeakyReLU(0.2), seed=1)),
    ("hardtanh", lambda: mlp([8, 24, 24, 3], act=lambda: nn.Hardtanh(-0.3, 0.3), seed=2)),
]


@pytest.mark.parametrize("name,make", NETS, ids=[n for n, _ in NETS])
def test_segment_regions_exact(name, make):
    net = make()
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(2, 8)) * 2
    seg = segment_regions(net, xa, xb, device="cpu")
    assert seg.breaks[0] == 0.0 and seg.breaks[-1] == 1.0 and np.all(np.diff(seg.breaks) > 0)
    assert seg.count == len(seg.breaks) - 1 > 5
    # the pattern is constant on each interval (dense samples) ...
    for i in range(seg.count):
        t = seg.breaks[i] + (seg.breaks[i + 1] - seg.breaks[i]) * np.linspace(0.01, 0.99, 25)
        s = hidden_states(net, xa + t[:, None] * (xb - xa))
        assert (s == seg.patterns[i]).all()
    # ... and really changes at every break
    assert not (seg.patterns[1:] == seg.patterns[:-1]).all(1).any()
    # a dense walk sees the same sequence of regions
    t = np.linspace(0, 1, 20001)
    s = hidden_states(net, xa + t[:, None] * (xb - xa))
    change = np.concatenate([[True], (s[1:] != s[:-1]).any(1)])
    walk = iter(map(bytes, seg.patterns))
    assert all(any(p == q for q in walk) for p in map(bytes, s[change]))  # in order, none missing


def test_segment_matches_plane_partition():
    """Regions crossed by a segment inside a plane = polygons the segment passes through."""
    net = mlp([6, 16, 16, 3], seed=3)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6))
    plane = plane_from_anchors(*x)
    part = partition(net, plane, device="cpu")
    seg = segment_regions(net, x[1], x[2], device="cpu")
    plane_patterns = {bytes(r) for r in part.pattern.numpy()}
    assert {bytes(r) for r in seg.patterns} <= plane_patterns


@pytest.mark.parametrize("name,make", NETS[:2], ids=[n for n, _ in NETS[:2]])
def test_boundary_distance(name, make):
    net = make()
    x = torch.randn(40, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dist = boundary_distance(net, x, device="cpu")
    assert dist.shape == (40,) and (dist > 0).all()
    # independent: autograd Jacobian of the module's own pre-activations
    jac = torch.func.vmap(torch.func.jacrev(lambda v: preactivations(net, v)))(x).detach()
    z = preactivations(net, x).detach()
    ratio = z.abs() / jac.norm(dim=2)
    assert torch.allclose(dist, ratio.amin(1), rtol=1e-10)
    # geometric: the pattern changes just beyond the distance along the nearest normal ...
    nearest = ratio.argmin(1)
    normal = jac[torch.arange(40), nearest]
    normal = normal / normal.norm(dim=1, keepdim=True) * -torch.sign(z[torch.arange(40), nearest])[:, None]
    base = hidden_states(net, x)
    assert (hidden_states(net, x + (dist * 0.999999)[:, None] * normal) == base).all()
    assert ((hidden_states(net, x + (dist * 1.000001)[:, None] * normal) != base).any(1)).all()
    # ... and in no random direction before it
    dirs = torch.randn(40, 64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dirs = dirs / dirs.norm(dim=2, keepdim=True)
    inner = x[:, None] + 0.999999 * dist[:, None, None] * dirs
    assert (hidden_states(net, inner.reshape(-1, 8)).reshape(40, 64, -1) == base[:, None]).all()


def test_boundary_distance_hardtanh_uses_both_thresholds():
    net = mlp([5, 12, 3], act=lambda: nn.Hardtanh(-0.2, 0.4), seed=4)
    x = torch.randn(30, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    dist = boundary_distance(net, x, device="cpu")
    w, b = net[0].weight, net[0].bias
    z = x @ w.T + b
    brute = torch.minimum((z + 0.2).abs(), (z - 0.4).abs()) / w.norm(dim=1)
    assert torch.allclose(dist, brute.amin(1).detach(), rtol=1e-12)


def chebyshev_polygon(poly):
    """Inradius of a convex polygon from its edges (counter-clockwise), by LP."""
    p, q = poly, np.roll(poly, -1, 0)
    d = q - p
    normal = np.stack([d[:, 1], -d[:, 0]], 1)  # outward for counter-clockwise rings
    length = np.linalg.norm(normal, axis=1)
    keep = length > 1e-12
    normal, length, p = normal[keep], length[keep], p[keep]
    res = linprog([0, 0, -1], A_ub=np.hstack([normal, length[:, None]]), b_ub=(normal * p).sum(1),
                  bounds=[(None, None), (None, None), (0, None)], method="highs")
    return res.x[2]


def test_inradius_matches_polygon_lp_in_2d():
    net = mlp([2, 16, 16, 3], seed=5)
    plane = plane_from_anchors([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], box=(-2, 2, -2, 2))
    part = partition(net, plane, device="cpu")
    x = torch.rand(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) * 3 - 1.5
    got = inradius(net, x, box=(-2.0, 2.0), device="cpu")
    patterns = part.pattern.numpy()
    polys = part.polygons()
    for i in range(12):
        region = np.flatnonzero((patterns == hidden_states(net, x[i : i + 1])).all(1))
        assert len(region) == 1
        assert got.radius[i] == pytest.approx(chebyshev_polygon(polys[region[0]]), rel=1e-7)


def test_inradius_ball_is_inside_and_tight():
    net = mlp([6, 20, 20, 3], seed=6)
    x = torch.rand(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    res = inradius(net, x, box=(0.0, 1.0), device="cpu")
    base = hidden_states(net, x)
    centre = torch.as_tensor(res.centre)
    assert (hidden_states(net, centre) == base).all()  # the centre lies in the input's region
    assert ((res.centre - res.radius[:, None] >= -1e-9) & (res.centre + res.radius[:, None] <= 1 + 1e-9)).all()
    # every point of the ball keeps the pattern ...
    dirs = torch.randn(10, 200, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    dirs = dirs / dirs.norm(dim=2, keepdim=True)
    r = torch.as_tensor(res.radius)
    ball = centre[:, None] + 0.999999 * r[:, None, None] * dirs
    assert (hidden_states(net, ball.reshape(-1, 6)).reshape(10, 200, -1) == base[:, None]).all()
    # ... and the ball is maximal: a region facet or the box touches it
    to_facet = boundary_distance(net, centre, device="cpu").numpy()
    to_box = np.minimum(res.centre, 1 - res.centre).min(1)
    assert np.allclose(np.minimum(to_facet, to_box), res.radius, rtol=1e-6)


def test_inradius_unbounded_region():
    net = mlp([3, 2, 2], seed=7)  # two hyperplanes: every region is unbounded
    x = torch.randn(4, 3, dtype=torch.float64)
    assert np.isinf(inradius(net, x, device="cpu").radius).all()
    boxed = inradius(net, x, box=(-10.0, 10.0), device="cpu")
    assert np.isfinite(boxed.radius).all() and (boxed.radius <= 10).all()


def test_geometry_errors():
    net = mlp([4, 8, 2])
    with pytest.raises(ValueError, match="shape"):
        boundary_distance(net, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        boundary_distance(net, torch.full((1, 4), float("nan")))
    with pytest.raises(ValueError, match="4 features"):
        segment_regions(net, np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"layer 1 \(Tanh\) is not piecewise-linear"):
        inradius(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), torch.zeros(1, 4))


def test_boundary_distance_wide_input():
    """More inputs than first-layer neurons (the QR-reduced gradient path), vs autograd."""
    net = mlp([30, 12, 10, 3], seed=8)
    x = torch.randn(25, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    jac = torch.func.vmap(torch.func.jacrev(lambda v: preactivations(net, v)))(x).detach()
    z = preactivations(net, x).detach()
    expected = (z.abs() / jac.norm(dim=2)).amin(1)
    assert torch.allclose(boundary_distance(net, x, device="cpu"), expected, rtol=1e-10)
    images = x.reshape(25, 1, 5, 6)  # image-shaped inputs are flattened
    flat = nn.Sequential(nn.Flatten(), *net)
    assert torch.allclose(boundary_distance(flat, images, device="cpu"), expected, rtol=1e-10)
