"""Exact partition of a plane box into activation regions, vectorised over regions.

Core structure: regions as padded convex vertex rings in plane coordinates, each with the
affine map (plane -> current layer's pre-activations) of its parent. Per hidden layer:
evaluate every neuron's threshold lines at every vertex, keep for each region the list of
lines that cross it, then in rounds cut all regions at once by their next crossing line;
the children re-test only the parent's remaining lines. The number of rounds is the
largest number of lines that cut one region's ancestry, not the layer width. A cut inside
a layer never changes that layer's maps, so children share the parent's map until the
layer ends; then one batched GEMM gives the next layer's maps. Regions are processed
depth-first in slices so that memory stays bounded (DESIGN.md section 8).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from toolkit.device import resolve_device

from . import polygons as pg
from .polygons import SNAP
from toolkit.piecewise import trace

from .graph import GraphEngineMixin, GraphProgram
from .network import Activation, PLNet, is_chain, pieces, pl_network, state_of
from .plane import Plane



@dataclass
class Decision:
    """The argmax decision boundary inside the box: one convex piece per (region, class)."""

    vertices: torch.Tensor  # [P, M, 2] plane coordinates, padded with vertex 0
    counts: torch.Tensor  # [P]
    region: torch.Tensor  # [P] index of the activation region holding the piece
    label: torch.Tensor  # [P] predicted class on the piece
    area: torch.Tensor  # [P]
    segments: torch.Tensor  # [S, 2, 2] boundary segments between classes
    classes: int

    @property
    def class_area(self) -> torch.Tensor:
        return torch.zeros(self.classes, dtype=self.area.dtype).index_add_(0, self.label, self.area)

    @property
    def boundary_length(self) -> float:
        return float((self.segments[:, 1] - self.segments[:, 0]).norm(dim=1).sum())


@dataclass
class Partition:
    """Activation regions of a plane box: one convex polygon per distinct pattern."""

    plane: Plane
    vertices: torch.Tensor  # [R, M, 2] float64 plane coordinates, padded with vertex 0
    counts: torch.Tensor  # [R] number of vertices
    area: torch.Tensor  # [R]
    pattern: torch.Tensor  # [R, sum(widths)] int8 neuron states (ReLU: z > 0)
    label: torch.Tensor  # [R] predicted class at the region's interior point
    widths: list[int]
    seconds: float
    decision: Decision | None = None

    @property
    def count(self) -> int:
        return int(self.counts.shape[0])

    @property
    def total_area(self) -> float:
        return float(self.area.sum())

    @property
    def regions_per_area(self) -> float:
        return self.count / self.plane.box_area

    def interior_points(self) -> torch.Tensor:
        """One strictly interior point per region (vertex mean), plane coordinates [R, 2]."""
        return pg.centroids(self.vertices, self.counts)

    def polygons(self) -> list[np.ndarray]:
        """Vertex rings as a list of [k, 2] arrays (counter-clockwise)."""
        v = self.vertices.numpy()
        return [v[i, :k] for i, k in enumerate(self.counts.tolist())]

    def layer_pattern(self, layer: int) -> torch.Tensor:
        """States of hidden layer `layer` (0-based) for every region."""
        start = sum(self.widths[:layer])
        return self.pattern[:, start : start + self.widths[layer]]

    def summary(self) -> dict:
        return {
            **self.plane.to_dict(),
            "regions": self.count,
            "area": self.total_area,
            "regions_per_area": self.regions_per_area,
            "seconds": self.seconds,
        }


@dataclass
class _Frame:
    """Regions waiting to be cut by hidden layer `layer`, with their parents' maps."""

    layer: int
    verts: torch.Tensor
    counts: torch.Tensor
    pattern: torch.Tensor  # int8 states of layers < layer
    src: tuple[torch.Tensor, torch.Tensor]  # previous layer's pre-activation maps (A [m,2,h], c [m,h])
    src_idx: torch.Tensor  # [n] index into src
    pos: int = 0


@dataclass
class _Out:
    verts: list = field(default_factory=list)
    counts: list = field(default_factory=list)
    pattern: list = field(default_factory=list)
    label: list = field(default_factory=list)
    pieces: list = field(default_factory=list)
    segments: list = field(default_factory=list)


class _Engine:
    def __init__(self, net: PLNet, scale: tuple[float, float], budget: int, chunk: int | None, decision: bool):
        self.net = net
        self.scale = scale  # max |u|, max |v| over the box: sets the snapping tolerance
        self.budget = budget
        self.chunk = chunk
        self.decision = decision
        self.bar: tqdm | None = None  # regions found so far, when `partition(progress=True)`

    # ---- maps -------------------------------------------------------------------------
    def _post(self, layer: int, a: torch.Tensor, c: torch.Tensor, states: torch.Tensor):
        """Post-activation map of `layer` given its pre-activation map and neuron states."""
        slope, offset = pieces(states, self.net.layers[layer].activation)
        return a * slope[:, None, :], c * slope + offset

    def _maps(self, f: _Frame, sl: slice):
        """Pre-activation maps of layer f.layer for the frame's regions in `sl`."""
        a, c = f.src
        idx = f.src_idx[sl]
        if f.layer == 0:
            return a.expand(len(idx), -1, -1), c.expand(len(idx), -1)
        h = self.net.widths[f.layer - 1]
        lay = self.net.layers[f.layer]
        if a.shape[0] == 1:  # one shared map (the first layer): GEMMs on the slopes, no gather
            slope, offset = pieces(f.pattern[sl, -h:], self.net.layers[f.layer - 1].activation)
            wt = lay.weight.T
            a_next = torch.stack([slope @ (a[0, 0, :, None] * wt), slope @ (a[0, 1, :, None] * wt)], 1)
            return a_next, torch.addmm(lay.bias, torch.addcmul(offset, slope, c), wt)
        a, c = self._post(f.layer - 1, a[idx], c[idx], f.pattern[sl, -h:])
        return a @ lay.weight.T, torch.addmm(lay.bias, c, lay.weight.T)

    # ---- one layer --------------------------------------------------------------------
    def _lines(self, verts, a, c, act: Activation):
        """The threshold lines crossing each region, first-index first.

        Returns lines [n, 4, K] = (a_u, a_v, c - t, snap tolerance), how many are real per
        region, and the regions' [n] indices (regions crossed by no line are left out).
        """
        z = torch.baddbmm(c[:, None, :], verts, a)
        lo, hi = z.amin(1), z.amax(1)
        mag = a[:, 0].abs() * self.scale[0] + a[:, 1].abs() * self.scale[1] + c.abs()
        thr = torch.tensor(act.thresholds, dtype=torch.float64, device=z.device)
        tol = SNAP * (mag[:, None, :] + thr.abs()[None, :, None])  # [n, T, h]
        cross = ((hi[:, None] - thr[:, None] > tol) & (lo[:, None] - thr[:, None] < -tol)).flatten(1)
        n_cross = cross.sum(1)
        rows = torch.nonzero(n_cross).flatten()
        cross, n_cross = cross[rows], n_cross[rows]
        k = int(n_cross.max()) if len(rows) else 0
        order = torch.argsort((~cross).to(torch.uint8), dim=1, stable=True)[:, :k]
        h = a.shape[2]
        j, ti = order % h, order // h
        r = rows[:, None]
        lines = torch.stack([a[r, 0, j], a[r, 1, j], c[r, j] - thr[ti], tol.flatten(1)[r, order]], 1)
        return lines, n_cross, rows

    def _split(self, verts, counts, a, c, act: Activation):
        """Cut regions by all threshold lines of one layer. Returns (verts, counts, parent)."""
        lines, n_cross, rows = self._lines(verts, a, c, act)
        parent = torch.arange(len(counts), device=counts.device)
        keep = torch.ones(len(counts), dtype=torch.bool, device=counts.device)
        keep[rows] = False
        done_v, done_c, done_p = [verts[keep]], [counts[keep]], [parent[keep]]
        verts, counts, parent = verts[rows], counts[rows], rows
        live_lines = torch.arange(lines.shape[2], device=counts.device) < n_cross[:, None]
        while len(counts):
            # cut every region by its first crossing line
            first = lines[:, :, 0]
            z = torch.baddbmm(first[:, None, 2:3], verts, first[:, :2, None])[..., 0]
            z = torch.where(z.abs() <= first[:, 3:4], torch.zeros_like(z), z)
            pv, pc, nv, nc = pg.cut(verts, counts, z)
            counts = torch.cat([pc, nc])
            verts = torch.cat([pv, nv])[:, : int(counts.max())]
            parent = torch.cat([parent, parent])
            lines = lines[:, :, 1:].repeat(2, 1, 1)
            # children re-test only the parent's remaining lines (in memory-bounded steps)
            step = max(1, self.budget // (verts.shape[1] * max(1, lines.shape[2])))
            cross = torch.cat([_crossing(verts[i : i + step], lines[i : i + step]) for i in range(0, len(counts), step)])
            cross &= live_lines[:, 1:].repeat(2, 1)
            n_cross = cross.sum(1)
            fin = n_cross == 0
            done_v.append(verts[fin])
            done_c.append(counts[fin])
            done_p.append(parent[fin])
            live = ~fin
            verts, counts, parent, n_cross, cross, lines = (
                verts[live], counts[live], parent[live], n_cross[live], cross[live], lines[live])
            k = int(n_cross.max()) if len(counts) else 0
            order = torch.argsort((~cross).to(torch.uint8), dim=1, stable=True)[:, :k]
            lines = lines.gather(2, order[:, None, :].expand(-1, 4, -1))
            live_lines = torch.arange(k, device=counts.device) < n_cross[:, None]
        width = max(v.shape[1] for v in done_v)
        return torch.cat([pg.repad(v, k, width) for v, k in zip(done_v, done_c)]), torch.cat(done_c), torch.cat(done_p)

    # ---- driver -----------------------------------------------------------------------
    def _states(self, layer: int, verts, counts, a, c, parent):
        """Neuron states at each region's interior point; on the last layer also the class."""
        act = self.net.layers[layer].activation
        last = layer + 1 == len(self.net.layers)
        pts = pg.centroids(verts, counts)
        states, labels = [], []
        step = max(1, self.budget // (a.shape[2] * 3))
        for i in range(0, len(pts), step):
            if a.shape[0] == 1:
                z = torch.addmm(c[0], pts[i : i + step], a[0])
            else:
                p = parent[i : i + step]
                z = torch.baddbmm(c[p][:, None, :], pts[i : i + step, None, :], a[p])[:, 0]
            s = state_of(z, act)
            states.append(s)
            if last:
                slope, offset = pieces(s, act)
                labels.append(torch.addmm(self.net.out_bias, z * slope + offset, self.net.out_weight.T).argmax(1))
        return torch.cat(states), (torch.cat(labels) if last else None)

    def run(self, box: torch.Tensor, a1: torch.Tensor, c1: torch.Tensor) -> _Out:
        dev = box.device
        out = _Out()
        n_layers = len(self.net.layers)
        stack = [_Frame(0, box[None], torch.tensor([4], device=dev),
                        torch.zeros(1, 0, dtype=torch.int8, device=dev),
                        (a1[None], c1[None]), torch.zeros(1, dtype=torch.long, device=dev))]
        while stack:
            f = stack[-1]
            n = len(f.counts)
            if f.pos >= n:
                stack.pop()
                continue
            h = self.net.widths[f.layer]
            act = self.net.layers[f.layer].activation
            step = self.chunk or max(1, self.budget // (f.verts.shape[1] * h * len(act.thresholds)))
            sl = slice(f.pos, min(n, f.pos + step))
            f.pos = sl.stop
            a, c = self._maps(f, sl)
            verts, counts, parent = self._split(f.verts[sl], f.counts[sl], a, c, act)
            states, labels = self._states(f.layer, verts, counts, a, c, parent)
            pattern = torch.cat([f.pattern[sl][parent], states], 1)
            if f.layer + 1 < n_layers:
                stack.append(_Frame(f.layer + 1, verts, counts, pattern, (a, c), parent))
                continue
            if self.decision:
                self._logit_maps(out, verts, counts, pattern, a, c, parent)
            out.verts.append(verts)
            out.counts.append(counts)
            out.pattern.append(pattern)
            out.label.append(labels)
            if self.bar is not None:
                self.bar.update(len(counts))
        return out

    def _logit_maps(self, out: _Out, verts, counts, pattern, a, c, parent):
        """Per-region logit maps (in memory-bounded steps) for the decision boundary."""
        last = len(self.net.layers) - 1
        h = self.net.widths[last]
        step = max(1, self.budget // (h * 3 * verts.shape[1]))
        for i in range(0, len(counts), step):
            sl = slice(i, i + step)
            pa, pc = self._post(last, a[parent[sl]], c[parent[sl]], pattern[sl, -h:])
            la = pa @ self.net.out_weight.T
            lc = torch.addmm(self.net.out_bias, pc, self.net.out_weight.T)
            self._decide(out, verts[sl], counts[sl], la, lc, i)

    def _decide(self, out: _Out, verts, counts, la, lc, offset: int):
        """Clip regions whose vertices disagree on the argmax by {logit_k >= logit_j, all j}."""
        base = sum(len(k) for k in out.counts)  # regions already emitted before this batch
        ncls = la.shape[2]
        lv = torch.baddbmm(lc[:, None, :], verts, la)  # [n, M, C]
        tol = SNAP * (lv.abs().amax((1, 2)) + 1.0)
        top = lv.max(2, keepdim=True).values
        wins = (lv >= top - tol[:, None, None])  # class ties for the max at the vertex
        pure = wins.all(1)  # class wins at every vertex
        whole = pure.any(1)
        region = torch.arange(len(counts), device=counts.device)
        cls = pure.to(torch.uint8).argmax(1)
        pieces = [(verts[whole], counts[whole], region[whole], cls[whole])]
        mixed = ~whole
        if bool(mixed.any()):
            mv, mc, mr = verts[mixed], counts[mixed], region[mixed]
            ma, mcc = la[mixed], lc[mixed]
            mtol = tol[mixed]
            for k in range(ncls):
                v, cnt = mv, mc
                for j in range(ncls):
                    if j == k:
                        continue
                    ga, gc = ma[:, :, k] - ma[:, :, j], mcc[:, k] - mcc[:, j]
                    g = (v * ga[:, None, :]).sum(-1) + gc[:, None]
                    g = torch.where(g.abs() <= mtol[:, None], torch.zeros_like(g), g)
                    v, cnt, _, _ = pg.cut(v, cnt, g)
                    cnt = torch.where(cnt >= 3, cnt, 0)
                    v = pg.repad(v, torch.clamp(cnt, min=1), v.shape[1])
                ok = cnt >= 3
                area = pg.areas(v)
                ok &= area > 0
                pieces.append((v[ok], cnt[ok], mr[ok], torch.full_like(mr[ok], k)))
                out.segments.append(self._chords(v[ok], cnt[ok], ma[ok], mcc[ok], mtol[ok], k))
        for v, cnt, r, k in pieces:
            out.pieces.append((v, cnt, r + base + offset, k))

    @staticmethod
    def _chords(verts, counts, la, lc, tol, k: int) -> torch.Tensor:
        """Edges of class-k pieces on the boundary with a higher-numbered class (each once)."""
        lv = torch.baddbmm(lc[:, None, :], verts, la)
        other = lv.clone()
        other[:, :, k] = -torch.inf
        margin = lv[:, :, k] - other.max(2).values
        on = margin.abs() <= tol[:, None]
        nxt = torch.roll(verts, -1, 1)
        mid = 0.5 * (verts + nxt)
        lm = torch.baddbmm(lc[:, None, :], mid, la)
        lm[:, :, k] = -torch.inf
        rival = lm.argmax(2)
        edge = on & torch.roll(on, -1, 1) & pg.valid_mask(counts, verts.shape[1]) & (rival > k)
        edge &= (nxt - verts).norm(dim=2) > 0
        return torch.stack([verts[edge], nxt[edge]], 1)


class _GraphEngine(GraphEngineMixin, _Engine):
    """Conv / residual graphs: the MLP engine's cuts, driven over the traced graph."""

    def __init__(self, program: GraphProgram, scale: tuple[float, float], budget: int, chunk: int | None,
                 decision: bool):
        super().__init__(None, scale, budget, chunk, decision)
        self.program = program


def _crossing(verts: torch.Tensor, lines: torch.Tensor) -> torch.Tensor:
    """Which lines [n, 4, K] strictly cross which polygons [n, M, 2] (beyond the snap tolerance)."""
    z = torch.baddbmm(lines[:, 2:3], verts, lines[:, :2])
    tol = lines[:, 3]
    return (z.amax(1) > tol) & (z.amin(1) < -tol)


def partition(
    model: nn.Module,
    plane: Plane,
    device: str | torch.device = "auto",
    decision: bool = False,
    chunk: int | None = None,
    budget: int | None = None,
    progress: bool = False,
) -> Partition:
    """Exact activation regions of `model` on `plane`'s box.

    Any piecewise-linear graph torch.fx can trace (toolkit.piecewise): MLP chains take the
    fast path below, conv nets and residual adds the graph engine (toolkit.regions.graph).

    device: 'cpu', 'cuda' or 'auto'. decision: also clip regions by the argmax of the logits
    (Partition.decision). chunk: regions cut together per slice; by default derived from
    `budget`, the float64 elements of the largest temporary (2**20 on CPU, 2**24 on CUDA).
    Raises ValueError for layers that are not piecewise-linear or a plane of the wrong size.
    progress: count the regions found on a bar (the total is unknown until the end; a
    784-300-100 net's plane takes 5-40 s).
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    chain = is_chain(trace(model))
    if budget is None:
        budget = 2**24 if dev.type == "cuda" else 2**20
    origin = torch.as_tensor(plane.origin, dtype=torch.float64, device=dev)
    basis = torch.as_tensor(plane.basis, dtype=torch.float64, device=dev)
    umin, umax, vmin, vmax = plane.box
    box = torch.tensor([[umin, vmin], [umax, vmin], [umax, vmax], [umin, vmax]], dtype=torch.float64, device=dev)
    scale = (max(abs(umin), abs(umax)), max(abs(vmin), abs(vmax)))
    if chain:
        net = pl_network(model).to(dev)
        if plane.origin.shape[0] != net.in_features:
            raise ValueError(f"plane lives in {plane.origin.shape[0]} dimensions, the model takes {net.in_features}")
        widths, classes = net.widths, net.out_weight.shape[0]
        first = net.layers[0]
        a1 = basis @ first.weight.T  # the plane folded into the first layer
        c1 = first.weight @ origin + first.bias
        engine = _Engine(net, scale, budget, chunk, decision)
    else:
        program = GraphProgram(model, plane.origin.shape[0], dev)
        widths, classes = program.widths, program.classes
        engine = _GraphEngine(program, scale, budget, chunk, decision)
    engine.bar = tqdm(desc="regions", unit="region", disable=not progress, leave=False)
    with torch.no_grad(), engine.bar:
        if chain:
            out = engine.run(box, a1, c1)
        else:
            out = _Out()
            engine.run_graph(box, torch.cat([origin[None], basis]), out)
        width = max(v.shape[1] for v in out.verts)
        out.verts = [pg.repad(v, k, width) for v, k in zip(out.verts, out.counts)]
        verts = _drain(out.verts)
        counts = _drain(out.counts)
        dec = None
        if decision:
            dec = _decision(out, classes)
        result = Partition(
            plane=plane,
            vertices=verts.cpu(),
            counts=counts.cpu(),
            area=pg.areas(verts).cpu(),
            pattern=_drain(out.pattern).cpu(),
            label=_drain(out.label).cpu(),
            widths=widths,
            seconds=0.0,
            decision=dec,
        )
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    result.seconds = time.perf_counter() - t0
    return result


def _drain(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along dim 0 while releasing the parts: peak memory ~ result + one part."""
    first = parts[0]
    result = torch.empty((sum(len(p) for p in parts), *first.shape[1:]), dtype=first.dtype, device=first.device)
    pos = 0
    for i in range(len(parts)):
        part, parts[i] = parts[i], None
        result[pos : pos + len(part)] = part
        pos += len(part)
    return result


def _decision(out: _Out, classes: int) -> Decision:
    width = max(v.shape[1] for v, *_ in out.pieces)
    verts = torch.cat([pg.repad(v, k, width) for v, k, *_ in out.pieces])
    counts = torch.cat([k for _, k, *_ in out.pieces])
    region = torch.cat([r for *_, r, _ in out.pieces])
    label = torch.cat([c for *_, c in out.pieces])
    order = torch.argsort(region, stable=True)
    segs = torch.cat(out.segments) if out.segments else torch.zeros(0, 2, 2, dtype=torch.float64)
    return Decision(verts[order].cpu(), counts[order].cpu(), region[order].cpu(), label[order].cpu(),
                    pg.areas(verts[order]).cpu(), segs.cpu(), classes)
