"""Exact partitions of conv nets and residual graphs, checked against brute force.

Oracles (tests/partition_checks.py): a dense grid of the box pushed through the model
(forward hooks read `> 0` at every ReLU) finds no pattern the partition lacks; the region
areas sum to the box; every region's pattern is the forward pass's at its interior point;
the polygons form a planar subdivision; and an MLP written with functional calls (graph
engine) gives the same regions as the same MLP as a chain.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.factories import Residual
from tests.oracles import module_inputs
from tests.partition_checks import check_partition
from toolkit.regions.partition import partition
from toolkit.regions.plane import plane_from_anchors


class TinyConv(nn.Module):
    """8x8 image: conv 3x3 stride 2 pad 1 (groups 1), ReLU, BatchNorm2d, avg pool, grouped conv1d view, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.act1 = nn.ReLU()
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 1, groups=2)
        self.act2 = nn.LeakyReLU(0.1)
        self.fc = nn.Linear(16, 6)
        self.act3 = nn.ReLU()
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.bn(self.act1(self.conv(x.view(-1, 1, 8, 8)))))
        h = torch.flatten(self.act2(self.conv2(h)), 1)
        return self.out(self.act3(self.fc(h)))


def _init(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.6 if "weight" in name else 0.3))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def brute_force_count(model: nn.Module, d: int, seed: int) -> int:
    """The partition's invariants on a plane through three Gaussian points; its region count."""
    plane = plane_from_anchors(*np.random.default_rng(seed).normal(size=(3, d)))
    part = partition(model, plane, device="cpu")
    check_partition(model, plane, part, grid=120)
    return part.count


def test_conv_partition_equals_brute_force():
    count = brute_force_count(_init(TinyConv(), 3), 64, seed=4)
    assert count > 50


def test_residual_partition_equals_brute_force():
    count = brute_force_count(Residual(d=5, classes=3).eval(), 5, seed=6)
    assert count > 50


class FunctionalMLP(nn.Module):
    """The same MLP as `chain`, written with F.relu: it takes the graph engine."""

    def __init__(self, chain: nn.Sequential) -> None:
        super().__init__()
        self.chain = chain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc1, _, fc2, _, out = self.chain
        return out(F.relu(fc2(F.relu(fc1(x)))))


def test_graph_engine_gives_the_chain_engines_regions():
    torch.manual_seed(2)
    chain = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 3)).eval()
    plane = plane_from_anchors(*np.random.default_rng(3).normal(size=(3, 6)))
    a = partition(chain, plane, device="cpu")
    b = partition(FunctionalMLP(chain), plane, device="cpu", decision=True)
    assert a.count == b.count
    order_a = np.lexsort(a.pattern.numpy().T)
    order_b = np.lexsort(b.pattern.numpy().T)
    assert np.array_equal(a.pattern.numpy()[order_a], b.pattern.numpy()[order_b])
    assert np.allclose(a.area.numpy()[order_a], b.area.numpy()[order_b], rtol=1e-9, atol=1e-15)
    assert b.decision.area.sum() == pytest.approx(plane.box_area, rel=1e-9)


def _pool_hook_states(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Oracle for ReLU + MaxPool2d nets (float64): `> 0` masks, and each window's first argmax
    from torch's own indices."""
    seen: list[torch.Tensor] = []
    for m, z in module_inputs(model, torch.from_numpy(x), (nn.ReLU, nn.MaxPool2d)):
        if isinstance(m, nn.ReLU):
            seen.append((z > 0).flatten(1))
            continue
        _, idx = F.max_pool2d(z, m.kernel_size, m.stride, m.padding, return_indices=True)
        sel = torch.zeros(z.shape[0], z.shape[1], z[0, 0].numel(), dtype=torch.bool)
        seen.append(sel.scatter_(2, idx.flatten(2), True).flatten(1))
    return torch.cat(seen, 1).numpy().astype(np.int8)


def test_maxpool_partition_cuts_argmax_cells():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(18, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    plane = plane_from_anchors(*np.random.default_rng(0).normal(size=(3, 36)))
    part = partition(model, plane, device="cpu")
    assert part.widths == [72, 72, 5] and part.count > 100
    check_partition(model.double(), plane, part, grid=150, states=_pool_hook_states)


def test_overlapping_maxpool_is_refused_by_the_partition_with_one_line():
    model = nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(3, stride=1), nn.Flatten(), nn.Linear(8, 2))
    plane = plane_from_anchors(*np.random.default_rng(0).normal(size=(3, 16)))
    with pytest.raises(ValueError, match=r"layer 2 \(3\) is a max-pool the exact partition does not take"):
        partition(model, plane, device="cpu")
