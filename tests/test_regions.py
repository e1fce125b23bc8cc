"""Exact plane partition: against regioncam, and against its own invariants.

Every reference here reads the torch modules themselves (forward passes of the module,
regioncam layers built from each Linear's weights and each activation's own parameters),
never `pl_network`, the partition's own reading of the model: a wrong slope there must fail."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from toolkit.regions.partition import partition
from toolkit.regions.plane import check_anchor_indices, plane_from_anchors
from toolkit.regions.polygons import centroids
from tests.factories import mlp
from tests.oracles import forward, hidden_states
from tests.partition_checks import check_partition, pattern_set


def trained(net, d, classes, steps=100, seed=0):
    """A few SGD steps on Gaussian blobs, so the weights are no longer at init."""
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (512,), generator=g)
    x = centres[y] + torch.randn(512, d, generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval(), x


def plane_for(d, seed=1):
    rng = np.random.default_rng(seed)
    return plane_from_anchors(*rng.normal(size=(3, d)))


def forward_logits(net, plane, uv):
    """Logits at plane points, by a float64 forward pass of the module."""
    return torch.as_tensor(forward(net, plane.to_input(np.asarray(uv)))[1])


def check_with_regioncam(net, plane, part):
    """The partition's invariants, then the same regions as regioncam's: without regioncam
    only that comparison is skipped, the invariants have run."""
    check_partition(net, plane, part)
    count, rc_patterns = regioncam_patterns(net, plane)
    assert part.count == count
    assert pattern_set(part.pattern.numpy()) == pattern_set(rc_patterns)


def regioncam_patterns(net, plane):
    """Regioncam on the same box, its layers read from the Sequential's own Linear and
    activation modules (plane folded into the first Linear); patterns by forward pass.
    Skips the calling test without regioncam."""
    regioncam = pytest.importorskip("regioncam")
    umin, umax, vmin, vmax = plane.box
    half, centre = (umax - umin) / 2, np.array([(umin + umax) / 2, (vmin + vmax) / 2])
    basis = torch.tensor(plane.basis)
    shift = torch.tensor(plane.origin) + torch.tensor(centre) @ basis
    f32 = lambda t: t.numpy().astype(np.float32)  # noqa: E731
    layers = []
    for module in net:
        if isinstance(module, nn.Linear):
            w, b = module.weight.detach().double(), module.bias.detach().double()
            if not layers:
                w, b = w @ basis.T, w @ shift + b  # the first Linear takes plane coordinates
            layers.append(regioncam.nn.Linear(f32(w.T), f32(b)))
        elif isinstance(module, nn.LeakyReLU):
            layers.append(regioncam.nn.LeakyReLU(module.negative_slope))
        elif isinstance(module, nn.ReLU):
            layers.append(regioncam.nn.ReLU())
        else:
            raise TypeError(f"no regioncam layer for {module}")
    rc = regioncam.Regioncam(size=half)
    rc.add(layers)
    vin = np.asarray(rc.vertex_inputs, dtype=np.float64)
    cents = np.stack([vin[f.vertex_ids.astype(np.int64)].mean(0) for f in rc.faces]) + centre
    return rc.num_faces, hidden_states(net, plane.to_input(cents))


NETS = [
    ("random 10-16-16-3", lambda: mlp([10, 16, 16, 3], seed=0), 10),
    ("random 20-32-32-4", lambda: mlp([20, 32, 32, 4], seed=1), 20),
    ("leaky 20-32-32-4", lambda: mlp([20, 32, 32, 4], act=lambda: nn.LeakyReLU(0.1), seed=2), 20),
    ("trained 10-16-16-3", lambda: trained(mlp([10, 16, 16, 3], seed=3), 10, 3)[0], 10),
    ("trained 20-32-32-4", lambda: trained(mlp([20, 32, 32, 4], seed=4), 20, 4)[0], 20),
    ("trained leaky 10-16-16-16-3", lambda: trained(mlp([10, 16, 16, 16, 3], act=nn.LeakyReLU, seed=5), 10, 3)[0], 10),
]


@pytest.mark.parametrize("name,make,d", NETS, ids=[n for n, *_ in NETS])
def test_matches_regioncam_and_invariants(name, make, d):
    net = make()
    plane = plane_for(d)
    check_with_regioncam(net, plane, partition(net, plane, device="cpu"))


def test_trained_plane_through_data_points():
    net, x = trained(mlp([20, 32, 32, 4], seed=6), 20, 4)
    plane = plane_from_anchors(*x[:3].double().numpy())
    check_with_regioncam(net, plane, partition(net, plane, device="cpu", chunk=7))  # many small slices


def test_hardtanh_three_states():
    net = mlp([8, 16, 16, 3], act=lambda: nn.Hardtanh(-0.5, 0.5), seed=7)
    plane = plane_for(8, seed=3)
    part = partition(net, plane, device="cpu")
    assert set(np.unique(part.pattern.numpy())) == {0, 1, 2}
    check_partition(net, plane, part)


def test_batchnorm_dropout_flatten_nesting_and_pruning():
    torch.manual_seed(8)
    net = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(12, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Dropout(0.3)),
        nn.Sequential(nn.Linear(24, 16), nn.LeakyReLU(0.05), nn.BatchNorm1d(16)),
        nn.Linear(16, 3),
    )
    for bn in (net[1][1], net[2][2]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    prune.l1_unstructured(net[2][0], "weight", amount=0.5)
    assert hasattr(net[2][0], "weight_orig") and (net[2][0].weight == 0).float().mean() == 0.5
    net.eval()
    plane = plane_for(12, seed=4)
    part = partition(net, plane, device="cpu")
    assert part.widths == [24, 16]
    check_partition(net, plane, part)


def test_decision_boundary():
    net, _ = trained(mlp([10, 16, 16, 3], seed=9), 10, 3)
    plane = plane_for(10, seed=5)
    part = partition(net, plane, device="cpu", decision=True)
    dec = part.decision
    assert abs(float(dec.class_area.sum()) / plane.box_area - 1) < 1e-9
    region_area = torch.zeros(part.count, dtype=torch.float64).index_add_(0, dec.region, dec.area)
    assert torch.allclose(region_area, part.area, rtol=1e-9, atol=0)
    # every piece is won by its class, at its interior point
    assert torch.equal(forward_logits(net, plane, centroids(dec.vertices, dec.counts).numpy()).argmax(1), dec.label)
    assert (dec.label != part.label[dec.region]).any()  # some regions really are split
    # segment ends tie between two classes
    ends = forward_logits(net, plane, dec.segments.reshape(-1, 2).numpy())
    top2 = ends.topk(2, dim=1).values
    assert len(dec.segments) > 0 and torch.allclose(top2[:, 0], top2[:, 1], atol=1e-9)
    # class areas agree with a grid estimate
    umin, umax, vmin, vmax = plane.box
    uu, vv = np.meshgrid(np.linspace(umin, umax, 400), np.linspace(vmin, vmax, 400))
    grid = forward_logits(net, plane, np.stack([uu.ravel(), vv.ravel()], 1)).argmax(1)
    share = torch.bincount(grid, minlength=3).double() / grid.numel()
    assert torch.allclose(share, dec.class_area / plane.box_area, atol=0.01)


def test_plane_from_anchors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 30))
    plane = plane_from_anchors(*x)
    assert np.allclose(plane.basis @ plane.basis.T, np.eye(2), atol=1e-14)
    assert np.array_equal(plane.origin, x[0])
    uv = plane.project(x)
    assert np.allclose(plane.to_input(uv), x)  # the anchors lie on the plane
    umin, umax, vmin, vmax = plane.box
    centre = uv.mean(0)
    assert np.allclose([(umin + umax) / 2, (vmin + vmax) / 2], centre)
    assert np.isclose((umax - umin) / 2, 1.2 * np.linalg.norm(uv - centre, axis=1).max())
    assert umax - umin == pytest.approx(vmax - vmin)
    assert plane_from_anchors(*x, box=(-1, 2, -3, 4)).box == (-1.0, 2.0, -3.0, 4.0)
    assert plane_from_anchors(*x, scale=2.0).box_area == pytest.approx(plane.box_area * (2.0 / 1.2) ** 2)


def test_errors():
    x = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(ValueError, match="anchors are collinear"):
        plane_from_anchors(x[0], x[1], 2 * x[1] - x[0])
    with pytest.raises(ValueError, match="anchors are collinear"):
        plane_from_anchors(x[0], x[0], x[1])
    with pytest.raises(ValueError, match=r"anchor index 12345 out of range \(0..999\)"):
        check_anchor_indices([1, 12345, 3], 1000)
    with pytest.raises(ValueError, match="distinct"):
        check_anchor_indices([1, 1, 3], 1000)
    assert check_anchor_indices(["4", 5, 6], 10) == [4, 5, 6]
    plane = plane_from_anchors(*x)
    bad = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"layer 3 \(Sigmoid\) is not piecewise-linear"):
        partition(bad, plane, device="cpu")
    for layer in (nn.Tanh(), nn.GELU(), nn.Softmax(dim=1)):
        with pytest.raises(ValueError, match=type(layer).__name__):
            partition(nn.Sequential(nn.Linear(4, 8), layer, nn.Linear(8, 2)), plane, device="cpu")
    with pytest.raises(ValueError, match="plane lives in 4 dimensions, the model rejects it"):
        partition(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), plane, device="cpu")
    with pytest.raises(ValueError, match="no piecewise-linear activations"):
        partition(nn.Sequential(nn.Linear(4, 2)), plane, device="cpu")
    with pytest.raises(ValueError, match="plane lives in 4 dimensions, the model takes 5"):
        partition(mlp([5, 8, 2]), plane, device="cpu")
    train_bn = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="eval mode"):
        partition(train_bn, plane, device="cpu")


def test_summary_and_polygons():
    net = mlp([6, 12, 12, 2], seed=10)
    plane = plane_for(6, seed=6)
    part = partition(net, plane, device="auto")
    s = part.summary()
    assert s["regions"] == part.count and s["area"] == pytest.approx(plane.box_area)
    assert s["regions_per_area"] == pytest.approx(part.count / plane.box_area)
    assert set(s) >= {"origin", "basis", "box", "regions", "area", "seconds"}
    polys = part.polygons()
    assert len(polys) == part.count and all(len(p) >= 3 for p in polys)
    assert part.layer_pattern(1).shape == (part.count, 12)


def test_degenerate_lines_make_no_slivers():
    """Concurrent, duplicated, zero and corner-touching neurons: exactly the 8 sectors."""
    net = nn.Sequential(nn.Linear(2, 7), nn.ReLU(), nn.Linear(7, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0], [0, 1], [1, 1], [1, -1], [1, 0], [0, 0], [1, 1]]))
        net[0].bias.copy_(torch.tensor([0.0, 0, 0, 0, 0, 0, -2]))  # the last touches only the corner (1, 1)
    plane = plane_from_anchors([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], box=(-1, 1, -1, 1))
    part = partition(net, plane, device="cpu")
    assert part.count == 8
    assert torch.allclose(part.area, torch.full((8,), 0.5, dtype=torch.float64), rtol=1e-12)
    check_partition(net, plane, part)
