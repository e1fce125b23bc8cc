"""The invariants every exact plane partition meets, checked against the forward-pass oracles
of tests/oracles.py (never the partition's own reading of the model): the regions tile the
box with positive areas; each region's pattern and predicted class are the forward pass's at
its interior point, and no two regions share a pattern; a dense grid of the box meets no
pattern the partition lacks; and the polygons form a planar subdivision (Euler)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from tests.oracles import forward, hidden_states
from toolkit.regions.partition import Partition
from toolkit.regions.plane import Plane


def pattern_set(patterns: np.ndarray) -> set[bytes]:
    """The distinct rows of a state array, as bytes."""
    return {bytes(r) for r in np.ascontiguousarray(patterns)}


def check_partition(model: nn.Module, plane: Plane, part: Partition, grid: int = 300,
                    states: Callable[[nn.Module, np.ndarray], np.ndarray] = hidden_states,
                    euler: bool = True) -> None:
    """All the invariants, `grid` x `grid` points for the grid's; `states` is the oracle of
    every neuron's state at float64 inputs (the default: activation states by forward pass).
    `euler=False` leaves out the Euler check, whose vertex merging (within 1e-9 of the box's
    coordinates) cannot count slivers thinner than that."""
    assert (part.area > 0).all()
    assert abs(part.total_area / plane.box_area - 1) < 1e-9
    inner = plane.to_input(part.interior_points().numpy())
    assert torch.equal(torch.as_tensor(states(model, inner)), part.pattern)
    assert len(pattern_set(part.pattern.numpy())) == part.count
    assert torch.equal(torch.as_tensor(forward(model, inner)[1].argmax(1)), part.label)
    umin, umax, vmin, vmax = plane.box
    uu, vv = np.meshgrid(np.linspace(umin, umax, grid), np.linspace(vmin, vmax, grid))
    seen = pattern_set(states(model, plane.to_input(np.stack([uu.ravel(), vv.ravel()], 1))))
    assert seen <= pattern_set(part.pattern.numpy())
    if euler:
        check_euler(part)


def check_euler(part: Partition) -> None:
    """V - E + F = 1 for the planar subdivision of the box (T-junctions split edges)."""
    polys = part.polygons()
    pts = np.concatenate(polys)
    scale = max(abs(x) for x in part.plane.box)
    tol = 1e-9 * scale
    # merge vertices computed independently by neighbouring regions
    pairs = cKDTree(pts).query_pairs(tol, output_type="ndarray")
    root = np.arange(len(pts))
    for a, b in pairs:
        ra, rb = root[a], root[b]
        while root[ra] != ra:
            ra = root[ra]
        while root[rb] != rb:
            rb = root[rb]
        root[max(ra, rb)] = min(ra, rb)
    for i in range(len(root)):
        while root[root[i]] != root[i]:
            root[i] = root[root[i]]
    uniq = pts[np.unique(root)]
    tree = cKDTree(uniq)
    # every polygon edge, split at the vertices lying on it (ends included)
    p = np.concatenate(polys)
    q = np.concatenate([np.roll(poly, -1, 0) for poly in polys])
    near = tree.query_ball_point((p + q) / 2, np.linalg.norm(q - p, axis=1) / 2 + tol)
    edge = np.repeat(np.arange(len(p)), [len(n) for n in near])
    cand = uniq[np.concatenate(near).astype(np.int64)]
    d = q[edge] - p[edge]
    off_line = np.abs((cand[:, 0] - p[edge, 0]) * d[:, 1] - (cand[:, 1] - p[edge, 1]) * d[:, 0])
    on_edge = off_line <= tol * np.linalg.norm(d, axis=1)
    half_edges = int(on_edge.sum()) - len(p)
    umin, umax, vmin, vmax = part.plane.box
    on_box = (np.isclose(uniq[:, 0], umin, atol=tol) | np.isclose(uniq[:, 0], umax, atol=tol)
              | np.isclose(uniq[:, 1], vmin, atol=tol) | np.isclose(uniq[:, 1], vmax, atol=tol))
    edges = (half_edges + on_box.sum()) / 2
    assert edges == int(edges)
    assert len(uniq) - edges + part.count == 1
