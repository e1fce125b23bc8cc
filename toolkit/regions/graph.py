"""Exact plane partition of any traced piecewise-linear graph: conv nets, residual adds.

Inside one region every value of the network is an affine function of the plane
coordinates (u, v), held as three rows: its value at the plane origin and its two
direction derivatives. A linear module acts on such a map by applying it to the offset
row (with its bias) and to the two direction rows (without: f(d) - f(0)), so every
linear module torch has works unchanged; `x + y` adds two maps of the same region;
flatten and view act on each row. At every activation the regions are cut by its
threshold lines exactly as the MLP engine cuts them (same rounds, same snapping), at
every max-pool into the cells where each window keeps one argmax, and the children carry
their parent's live values until the next pattern-making node.

Regions are processed depth-first in slices sized by the values one region carries, so
memory stays bounded (a LeNet-5 region carries about 40k float64 numbers at its first layer).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from toolkit.errors import one_line
from toolkit.piecewise import NotPiecewiseLinear, PLOp, trace

from . import polygons as pg
from .network import pieces, state_of
from .polygons import SNAP


@dataclass
class _Frame:
    """Regions waiting for stage `stage`, with their parents' live values ([m * 3, ...] each)."""

    stage: int
    verts: torch.Tensor
    counts: torch.Tensor
    pattern: torch.Tensor
    env: dict
    src_idx: torch.Tensor
    pos: int = 0


class GraphProgram:
    """A float64 copy of the model's graph, cut into stages at its activations."""

    def __init__(self, model: nn.Module, in_features: int, device: torch.device) -> None:
        model = copy.deepcopy(model).to(device=device, dtype=torch.float64).eval()
        traced = trace(model)
        for op in traced.ops:
            if op.kind == "maxpool" and not _disjoint_pool(op.module):
                raise NotPiecewiseLinear(
                    f"layer {op.layer} ({op.name}) is a max-pool the exact partition does not take "
                    "(MaxPool2d with windows that do not overlap, no ceil_mode); recording takes it")
        self.gm = traced.graph
        self.ops: list[PLOp] = traced.ops
        self.modules = dict(self.gm.named_modules())
        nodes = list(self.gm.graph.nodes)
        self.input = next(n for n in nodes if n.op == "placeholder")
        self.output = next(n for n in nodes if n.op == "output")
        self.seq = [n for n in nodes if n.op not in ("placeholder", "output")]
        index = {n: i for i, n in enumerate(self.seq)}
        self.pos = [index[op.node] for op in self.ops]
        self.last_use = {self.input: -1}
        for i, n in enumerate(self.seq):
            for arg in n.all_input_nodes:
                self.last_use[arg] = i
        for arg in self.output.all_input_nodes:
            self.last_use[arg] = len(self.seq)
        try:
            ShapeProp(self.gm).propagate(torch.zeros(1, in_features, dtype=torch.float64, device=device))
        except Exception as exc:  # the model's own shape error, in one line
            first = one_line(exc)
            raise ValueError(f"plane lives in {in_features} dimensions, the model rejects it: {first}") from None
        self.numel = {n: int(n.meta["tensor_meta"].shape[1:].numel())
                      for n in nodes if hasattr(n.meta.get("tensor_meta"), "shape")}
        self.widths = [self.numel[op.node.args[0]] for op in self.ops]
        # max-pools: the input entries of every window ([windows, k], -1 for padding), in output order
        self.windows = {op.layer: _windows(op.module, n.meta["tensor_meta"].shape[1:], device)
                        for op in self.ops if op.kind == "maxpool" for n in [op.node.args[0]]}
        self.classes = self.numel[self.output.args[0]]
        self._zero: dict[fx.Node, torch.Tensor] = {}

    def stage_nodes(self, stage: int) -> list[fx.Node]:
        """The linear nodes between activation stage-1 and activation `stage` (or the output)."""
        start = self.pos[stage - 1] + 1 if stage else 0
        stop = self.pos[stage] if stage < len(self.ops) else len(self.seq)
        return self.seq[start:stop]

    def stage_numel(self, stage: int) -> int:
        """Float64 numbers per region while running a stage (its values plus the carried ones)."""
        start = self.pos[stage - 1] if stage else -1
        carried = sum(self.numel.get(n, 0) for n, last in self.last_use.items() if last > start and
                      (n is self.input or self.seq.index(n) <= start))
        return carried + sum(self.numel.get(n, 0) for n in self.stage_nodes(stage))

    def run_linear(self, node: fx.Node, env: dict, n: int) -> None:
        """Evaluate one linear node on affine maps [n * 3, ...] (bias only on offset rows)."""
        args = fx.node.map_arg(node.args, lambda a: env[a])
        kwargs = fx.node.map_arg(node.kwargs, lambda a: env[a])
        if node.op == "call_module":
            mod = self.modules[node.target]
            y = mod(*args, **kwargs)
            if node not in self._zero:
                self._zero[node] = mod(torch.zeros_like(args[0][:1]))
            zero = self._zero[node]
            if bool(zero.any()):
                y = y.view(n, 3, *y.shape[1:]).clone()
                y[:, 1:] -= zero
                y = y.view(n * 3, *y.shape[2:])
        elif node.op == "call_function":
            y = node.target(*args, **kwargs)
        else:
            y = getattr(args[0], node.target)(*args[1:], **kwargs)
        env[node] = y

    def free(self, env: dict, after: int) -> None:
        """Drop values no node after position `after` uses."""
        for node in [k for k in env if self.last_use.get(k, -1) <= after]:
            del env[node]


def _disjoint_pool(pool: nn.Module) -> bool:
    """A MaxPool2d whose windows do not overlap: its selection bits then name each window's argmax."""
    if not isinstance(pool, nn.MaxPool2d) or pool.ceil_mode:
        return False
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    k, s, d = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size), pair(pool.dilation)
    return all(si >= (ki - 1) * di + 1 for ki, si, di in zip(k, s, d)) and d == (1, 1)


def _windows(pool: nn.MaxPool2d, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """Flat input indices of each pooling window ([C * out positions, k]; -1 = padding)."""
    c, h, w = shape
    idx = torch.arange(1, c * h * w + 1, dtype=torch.float64, device=device).view(1, c, h, w)
    cols = torch.nn.functional.unfold(idx, pool.kernel_size, pool.dilation, pool.padding, pool.stride)
    k = cols.shape[1] // c
    return (cols.view(c, k, -1).permute(0, 2, 1).reshape(-1, k) - 1).long()


def gather(env: dict, idx: torch.Tensor) -> dict:
    """Each child's copy of its parent's values (rows grouped by threes per region)."""
    out = {}
    for node, v in env.items():
        if torch.is_tensor(v):
            m = v.shape[0] // 3
            out[node] = v.view(m, 3, *v.shape[1:])[idx].reshape(len(idx) * 3, *v.shape[1:])
        else:
            out[node] = v
    return out


class GraphEngineMixin:
    """The depth-first driver for graphs; `_split` and `_decide` come from the MLP engine."""

    program: GraphProgram

    def run_graph(self, box: torch.Tensor, plane_map: torch.Tensor, out) -> None:
        prog = self.program
        dev = box.device
        L = len(prog.ops)
        stack = [_Frame(0, box[None], torch.tensor([4], device=dev), torch.zeros(1, 0, dtype=torch.int8, device=dev),
                        {prog.input: plane_map}, torch.zeros(1, dtype=torch.long, device=dev))]
        steps = [max(1, self.budget // (3 * prog.stage_numel(k))) for k in range(L + 1)]
        while stack:
            f = stack[-1]
            n = len(f.counts)
            if f.pos >= n:
                stack.pop()
                continue
            step = self.chunk or steps[f.stage]
            if f.stage < L:
                op = prog.ops[f.stage]
                # max-pool: entry values, window values, and the k x k comparison bytes per vertex
                per_vertex = prog.widths[f.stage] * (len(op.activation.thresholds) if op.kind != "maxpool"
                                                     else 2 + prog.windows[op.layer].shape[1] // 8)
                step = min(step, max(1, self.budget // (f.verts.shape[1] * per_vertex)))
            sl = slice(f.pos, min(n, f.pos + step))
            f.pos = sl.stop
            env = self._advance(f, sl)
            verts, counts, pattern = f.verts[sl], f.counts[sl], f.pattern[sl]
            if f.stage == L:
                self._emit(out, env, verts, counts, pattern)
                continue
            op = prog.ops[f.stage]
            z = env[op.node.args[0]]
            z = z.reshape(len(counts), 3, -1)
            a, c = z[:, 1:], z[:, 0]
            if op.kind == "maxpool":
                verts, counts, parent, states = self._argmax_cells(verts, counts, a, c, prog.windows[op.layer])
            else:
                verts, counts, parent = self._split(verts, counts, a, c, op.activation)
                states = self._interior_states(pg.centroids(verts, counts), a, c, parent, op)
            pattern = torch.cat([pattern[parent], states], 1)
            prog.free(env, prog.pos[f.stage] - 1)
            stack.append(_Frame(f.stage + 1, verts, counts, pattern, env, parent))

    def _argmax_cells(self, verts, counts, a, c, win: torch.Tensor):
        """Cut regions into the cells where every pooling window keeps one argmax.

        Inside a region every window entry is affine, so the cell where entry i is the
        window's maximum is the region clipped by {f_i >= f_j} for the window's other
        entries: a convex polygon. A window whose entry dominates at every vertex keeps it
        everywhere; in rounds, each region is clipped by its first window that does not.
        Returns (verts, counts, parent, selection bits int8 [regions, input entries]).
        """
        n_win, k = win.shape
        parent = torch.arange(len(counts), device=counts.device)
        mag = a[:, 0].abs() * self.scale[0] + a[:, 1].abs() * self.scale[1] + c.abs()  # [n, E]
        # windows still to test per region: a child is inside its parent, so a window
        # decided for the parent stays decided for the child
        cand = torch.ones(len(counts), n_win, dtype=torch.bool, device=counts.device)
        done_v, done_c, done_p = [], [], []
        while len(counts):
            cols = torch.nonzero(cand.any(0)).flatten()
            wsub = win[cols].clamp(min=0)
            z = torch.baddbmm(c[parent][:, None, :], verts, a[parent])  # [m, M, E]
            zw = torch.where(win[cols] >= 0, z[:, :, wsub], -torch.inf)  # [m, M, w, k]
            tol = SNAP * mag[parent][:, wsub].amax(2)  # [m, w]
            lead = (zw[..., :, None] >= zw[..., None, :] - tol[:, None, :, None, None]).all(4).all(1)  # [m, w, k]
            mixed = torch.zeros_like(cand)
            mixed[:, cols] = ~lead.any(2) & cand[:, cols]
            fin = ~mixed.any(1)
            done_v.append(verts[fin]), done_c.append(counts[fin]), done_p.append(parent[fin])
            live = ~fin
            if not bool(live.any()):
                break
            verts, counts, parent, mixed = verts[live], counts[live], parent[live], mixed[live]
            w_first = mixed.to(torch.uint8).argmax(1)  # each region's first undecided window
            entries = win[w_first]  # [m, k]
            ga = a[parent].gather(2, entries.clamp(min=0)[:, None, :].expand(-1, 2, -1))  # [m, 2, k]
            gc = c[parent].gather(1, entries.clamp(min=0))  # [m, k]
            gt = SNAP * mag[parent].gather(1, entries.clamp(min=0)).amax(1)  # [m]
            local = torch.arange(len(counts), device=counts.device)
            pieces_v, pieces_c, pieces_l = [], [], []
            for i in range(k):
                v, cnt = verts, counts
                ok = entries[:, i] >= 0
                for j in range(k):
                    if j == i:
                        continue
                    g = torch.einsum("mpd,md->mp", v, ga[:, :, i] - ga[:, :, j]) + (gc[:, i] - gc[:, j])[:, None]
                    g = torch.where(g.abs() <= gt[:, None], torch.zeros_like(g), g)
                    g = torch.where((entries[:, j] >= 0)[:, None], g, torch.ones_like(g))
                    v, cnt, _, _ = pg.cut(v, cnt, g)
                    cnt = torch.where(cnt >= 3, cnt, 0)
                    v = pg.repad(v, torch.clamp(cnt, min=1), v.shape[1])
                ok &= (cnt >= 3) & (pg.areas(v) > 0)
                pieces_v.append(v[ok]), pieces_c.append(cnt[ok]), pieces_l.append(local[ok])
            width = max(v.shape[1] for v in pieces_v)
            verts = torch.cat([pg.repad(v, cc, width) for v, cc in zip(pieces_v, pieces_c)])
            counts, src = torch.cat(pieces_c), torch.cat(pieces_l)
            parent, cand = parent[src], mixed[src]
            cand[torch.arange(len(src), device=src.device), w_first[src]] = False  # clipped: decided
            verts = verts[:, : int(counts.max())] if len(counts) else verts
        width = max(v.shape[1] for v in done_v)
        verts = torch.cat([pg.repad(v, cc, width) for v, cc in zip(done_v, done_c)])
        counts, parent = torch.cat(done_c), torch.cat(done_p)
        # the pattern: which entry each window takes at an interior point (first maximum on ties, as torch)
        pts = pg.centroids(verts, counts)
        zc = torch.baddbmm(c[parent][:, None, :], pts[:, None, :], a[parent])[:, 0]
        zcw = torch.where(win >= 0, zc[:, win.clamp(min=0)], -torch.inf)
        chosen = win.gather(1, zcw.argmax(2).T).T  # [regions, W]
        bits = torch.zeros(len(counts), a.shape[2], dtype=torch.int8, device=a.device)
        bits.scatter_(1, chosen, 1)
        return verts, counts, parent, bits

    def _interior_states(self, pts, a, c, parent, op: PLOp) -> torch.Tensor:
        """States at each child's interior point, in steps: children can outnumber parents 10^4 to 1."""
        step = max(1, self.budget // (3 * a.shape[2]))
        out = []
        for i in range(0, len(pts), step):
            p = parent[i : i + step]
            z = torch.baddbmm(c[p][:, None, :], pts[i : i + step, None, :], a[p])[:, 0]
            out.append(state_of(z, op.activation))
        return torch.cat(out)

    def _advance(self, f: _Frame, sl: slice) -> dict:
        """The slice's values at the end of its stage: apply the previous activation, then the linear nodes."""
        prog = self.program
        idx = f.src_idx[sl]
        env = gather(f.env, idx)
        n = len(idx)
        if f.stage:
            op = prog.ops[f.stage - 1]
            z = env[op.node.args[0]]
            h = prog.widths[f.stage - 1]
            if op.kind == "maxpool":  # each window passes on the entry its pattern selects
                win = prog.windows[op.layer]
                bits = f.pattern[sl, -h:]
                chosen = win.gather(1, torch.where(win >= 0, bits[:, win.clamp(min=0)], 0).argmax(2).T).T
                out_shape = op.node.meta["tensor_meta"].shape[1:]
                y = z.reshape(n, 3, h).gather(2, chosen[:, None, :].expand(-1, 3, -1))
                env[op.node] = y.reshape(n * 3, *out_shape)
            else:
                slope, offset = pieces(f.pattern[sl, -h:], op.activation)
                y = z.reshape(n, 3, h) * slope[:, None, :]
                y[:, 0] += offset
                env[op.node] = y.reshape(z.shape)
            prog.free(env, prog.pos[f.stage - 1])
        for node in prog.stage_nodes(f.stage):
            prog.run_linear(node, env, n)
        return env

    def _emit(self, out, env: dict, verts, counts, pattern) -> None:
        logits = env[self.program.output.args[0]].reshape(len(counts), 3, -1)
        la, lc = logits[:, 1:], logits[:, 0]
        pts = pg.centroids(verts, counts)
        labels = torch.baddbmm(lc[:, None, :], pts[:, None, :], la)[:, 0].argmax(1)
        if self.decision:
            self._decide(out, verts, counts, la, lc, 0)
        out.verts.append(verts)
        out.counts.append(counts)
        out.pattern.append(pattern)
        out.label.append(labels)
        if self.bar is not None:
            self.bar.update(len(counts))
