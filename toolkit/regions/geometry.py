"""Exact geometry of the activation region around inputs (Hanin & Rolnick; Zhang & Wu).

Inside one activation region every pre-activation is an affine function of the input, so
distances and inradii come from the local affine maps, computed in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn
from tqdm import tqdm

from .network import PLNet, pieces, pl_network, state_of
from toolkit.device import resolve_device

from .partition import SNAP


@dataclass
class SegmentRegions:
    """Regions crossed by the segment x(t) = xa + t (xb - xa), t in [0, 1], in order."""

    breaks: np.ndarray  # [count + 1] t values where the pattern changes (0 and 1 included)
    patterns: np.ndarray  # [count, sum(widths)] int8 states of each crossed region

    @property
    def count(self) -> int:
        return int(self.patterns.shape[0])


def _inputs(x, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x)
    t = t.to(device=device, dtype=torch.float64)
    if t.ndim > 2:  # images etc.: the network's leading Flatten sees them as vectors
        t = t.reshape(t.shape[0], -1)
    if not torch.isfinite(t).all():
        raise ValueError("inputs contain NaN or inf")
    return t


def segment_regions(model: nn.Module, xa, xb, device: str = "auto") -> SegmentRegions:
    """Exact sequence of activation regions along the segment from xa to xb.

    All breakpoints of a layer are found at once per interval (a 1D cut needs no rounds):
    roots of every neuron's affine function on every interval, merged and sorted.
    """
    dev = resolve_device(device)
    net = pl_network(model).to(dev)
    xa = _inputs(xa, dev).reshape(-1)
    xb = _inputs(xb, dev).reshape(-1)
    if xa.shape != xb.shape or xa.shape[0] != net.in_features:
        raise ValueError(f"segment ends must have {net.in_features} features, got {xa.shape[0]} and {xb.shape[0]}")
    with torch.no_grad():
        breaks = torch.tensor([0.0, 1.0], dtype=torch.float64, device=dev)
        first = net.layers[0]
        a = (first.weight @ (xb - xa))[None]  # z(t) = a t + c on each interval
        c = (first.weight @ xa + first.bias)[None]
        patterns = torch.zeros(1, 0, dtype=torch.int8, device=dev)
        for li, layer in enumerate(net.layers):
            act = layer.activation
            t0, t1 = breaks[:-1, None], breaks[1:, None]
            z0, z1 = a * t0 + c, a * t1 + c
            roots = []
            for thr in act.thresholds:
                tol = SNAP * (a.abs() + c.abs() + abs(thr))
                u0 = torch.where((z0 - thr).abs() <= tol, 0.0, z0 - thr)
                u1 = torch.where((z1 - thr).abs() <= tol, 0.0, z1 - thr)
                hit = u0 * u1 < 0
                roots.append((t0 + (t1 - t0) * u0 / torch.where(hit, u0 - u1, 1.0))[hit])
            roots = torch.cat(roots)
            roots = roots[(roots > 1e-15) & (roots < 1.0 - 1e-15)]
            new = torch.unique(torch.cat([breaks, roots]))
            keep = torch.ones_like(new, dtype=torch.bool)
            keep[1:] = new[1:] - new[:-1] > 1e-15  # coincident roots: one break
            new = new[keep]
            mid = 0.5 * (new[:-1] + new[1:])
            parent = torch.searchsorted(breaks, mid, right=True) - 1
            z = a[parent] * mid[:, None] + c[parent]
            s = state_of(z, act)
            patterns = torch.cat([patterns[parent], s.to(torch.int8)], 1)
            breaks = new
            if li + 1 < len(net.layers):
                slope, offset = pieces(s, act)
                nxt = net.layers[li + 1]
                a, c = (a[parent] * slope) @ nxt.weight.T, (c[parent] * slope + offset) @ nxt.weight.T + nxt.bias
        # a line cannot re-enter a convex region: equal neighbours are one region
        same = (patterns[1:] == patterns[:-1]).all(1)
        keep_region = torch.cat([torch.ones(1, dtype=torch.bool, device=dev), ~same])
        keep_break = torch.cat([keep_region, torch.ones(1, dtype=torch.bool, device=dev)])
        return SegmentRegions(breaks[keep_break].cpu().numpy(), patterns[keep_region].cpu().numpy())


def _local_maps(net: PLNet, x: torch.Tensor, first: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per hidden layer: pre-activations z [B, h] and their input gradients [B, h, d].

    `first` replaces the first layer's weight in the gradients (same row norms, fewer columns).
    """
    jac = (net.layers[0].weight if first is None else first).expand(x.shape[0], -1, -1)
    for li, layer in enumerate(net.layers):
        if li:
            jac = torch.matmul(layer.weight, jac)
        z = x @ layer.weight.T + layer.bias
        yield z, jac
        slope, offset = pieces(state_of(z, layer.activation), layer.activation)
        x = z * slope + offset
        jac = slope[..., None] * jac


def _batch_size(net: PLNet, budget: int = 2**24) -> int:
    return max(1, budget // (max(net.widths) * net.in_features))


def boundary_distance(model: nn.Module, x, device: str = "auto", progress: bool = False) -> torch.Tensor:
    """Euclidean distance from each input [B, d] to the boundary of its activation region.

    Exact: the region is an intersection of half-spaces {s_i (z_i(y) - t) >= 0}, so the
    distance is min over neurons and thresholds of |z_i(x) - t| / ||grad z_i(x)||.
    Neurons with zero gradient never bound the region (inf if none does). `progress` shows
    a bar over the instances (19 s for 10,000 in a 784-300-100 net on 2 CPU cores).
    """
    dev = resolve_device(device)
    net = pl_network(model).to(dev)
    x = _inputs(x, dev)
    if x.ndim != 2 or x.shape[1] != net.in_features:
        raise ValueError(f"inputs must have shape [batch, {net.in_features}], got {list(x.shape)}")
    out = []
    w1 = net.layers[0].weight
    first = None
    if w1.shape[0] < w1.shape[1]:  # W1 = R^T Q^T with orthonormal Q: gradient norms live in h1 dims
        first = torch.linalg.qr(w1.T).R.T
    step = _batch_size(net)
    with torch.no_grad():
        bar = tqdm(total=x.shape[0], desc="boundary distance", unit="inst", disable=not progress, leave=False)
        for i in range(0, x.shape[0], step):
            best = torch.full((min(step, x.shape[0] - i),), torch.inf, dtype=torch.float64, device=dev)
            for (z, jac), layer in zip(_local_maps(net, x[i : i + step], first), net.layers):
                norm = jac.norm(dim=2)
                for thr in layer.activation.thresholds:
                    d = torch.where(norm > 0, (z - thr).abs() / norm, torch.inf)
                    best = torch.minimum(best, d.amin(1))
            out.append(best)
            bar.update(len(best))
        bar.close()
    return torch.cat(out).cpu()


@dataclass
class Inradius:
    """Largest ball inside each input's activation region (Chebyshev centre)."""

    radius: np.ndarray  # [B]; inf where the region (intersected with the box) is unbounded
    centre: np.ndarray  # [B, d]; NaN where unbounded


def inradius(
    model: nn.Module,
    x,
    box: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
    device: str = "auto",
) -> Inradius:
    """Chebyshev centre of each input's activation region, optionally within box = (lo, hi).

    One LP per input (scipy HiGHS, interior point + crossover: ~10x faster than its simplex
    on these dense 784-d problems): maximise r s.t. sigma_i (g_i . c + e_i - t) >= ||g_i|| r
    for every neuron/threshold with its side sigma at x, and lo + r <= c <= hi - r.
    """
    dev = resolve_device(device)
    net = pl_network(model).to(dev)
    x = _inputs(x, dev)
    if x.ndim != 2 or x.shape[1] != net.in_features:
        raise ValueError(f"inputs must have shape [batch, {net.in_features}], got {list(x.shape)}")
    d = net.in_features
    if box is not None:
        lo = np.broadcast_to(np.asarray(box[0], dtype=np.float64), (d,))
        hi = np.broadcast_to(np.asarray(box[1], dtype=np.float64), (d,))
        if np.any(lo >= hi):
            raise ValueError("box needs lo < hi in every coordinate")
    radii, centres = [], []
    step = _batch_size(net)
    with torch.no_grad():
        for i in range(0, x.shape[0], step):
            xs = x[i : i + step]
            rows, rhs = [], []
            for (z, jac), layer in zip(_local_maps(net, xs), net.layers):
                e = z - torch.einsum("bhd,bd->bh", jac, xs)  # z(y) = jac y + e inside the region
                for thr in layer.activation.thresholds:
                    sigma = torch.where(z > thr, 1.0, -1.0)[..., None]
                    # sigma (jac c + e - t) >= ||jac|| r   <=>   -sigma jac c + ||jac|| r <= sigma (e - t)
                    rows.append(torch.cat([-sigma * jac, jac.norm(dim=2, keepdim=True)], 2))
                    rhs.append(sigma[..., 0] * (e - thr))
            a_all = torch.cat(rows, 1).cpu().numpy()
            b_all = torch.cat(rhs, 1).cpu().numpy()
            for a_ub, b_ub in zip(a_all, b_all):
                live = a_ub[:, -1] > 0
                a_ub, b_ub = a_ub[live], b_ub[live]
                if box is not None:
                    eye = np.eye(d)
                    ones = np.ones((d, 1))
                    a_ub = np.vstack([a_ub, np.hstack([eye, ones]), np.hstack([-eye, ones])])
                    b_ub = np.concatenate([b_ub, hi, -lo])
                cost = np.zeros(d + 1)
                cost[-1] = -1.0
                res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * d + [(0, None)], method="highs-ipm")
                if res.status == 3:
                    radii.append(np.inf)
                    centres.append(np.full(d, np.nan))
                elif res.status != 0:
                    raise RuntimeError(f"inradius LP failed: {res.message}")
                else:
                    radii.append(res.x[-1])
                    centres.append(res.x[:-1])
    return Inradius(np.asarray(radii, dtype=np.float64), np.asarray(centres, dtype=np.float64).reshape(-1, d))
