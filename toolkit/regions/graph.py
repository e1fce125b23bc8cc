"""Exact plane partition of any traced piecewise-linear graph: conv nets, residual adds.

Inside one region every value of the network is an affine function of the plane
coordinates (u, v), held as three rows: its value at the plane origin and its two
direction derivatives. A linear module acts on such a map by applying it to the offset
row (with its bias) and to the two direction rows (without: f(d) - f(0)), so every
linear module torch has works unchanged; `x + y` adds two maps of the same region;
flatten and view act on each row. At every activation the regions are cut by its
threshold lines exactly as the MLP engine cuts them (same rounds, same snapping), and
the children carry their parent's live values until the next activation.

Regions are processed depth-first in slices sized by the values one region carries, so
memory stays bounded (a LeNet-5 region carries about 40k float64 numbers at its first layer).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from toolkit.piecewise import NotPiecewiseLinear, PLOp, trace

from . import polygons as pg
from .network import pieces, state_of


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
            if op.kind == "maxpool":
                raise NotPiecewiseLinear(
                    f"layer {op.layer} ({op.name}) is a max-pool: the exact partition does not cut argmax cells; "
                    "use average pooling (recording takes max-pools)")
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
            first = " ".join(str(exc).split())[:200]
            raise ValueError(f"plane lives in {in_features} dimensions, the model rejects it: {first}") from None
        self.numel = {n: int(n.meta["tensor_meta"].shape[1:].numel())
                      for n in nodes if hasattr(n.meta.get("tensor_meta"), "shape")}
        self.widths = [self.numel[op.node.args[0]] for op in self.ops]
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
                act = prog.ops[f.stage].activation
                step = min(step, max(1, self.budget // (f.verts.shape[1] * prog.widths[f.stage] * len(act.thresholds))))
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
            verts, counts, parent = self._split(verts, counts, a, c, op.activation)
            states = self._interior_states(pg.centroids(verts, counts), a, c, parent, op)
            pattern = torch.cat([pattern[parent], states], 1)
            prog.free(env, prog.pos[f.stage] - 1)
            stack.append(_Frame(f.stage + 1, verts, counts, pattern, env, parent))

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
