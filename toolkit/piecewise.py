"""The computation of a piecewise-linear torch model, read once with torch.fx.

Recording (loaders/record.py) and the exact partition engine (toolkit/regions) both need
the same view of a model: which operations make a pattern (the activations, one hidden
layer per call, in call order) and which are linear in between. Symbolic tracing sees
functional `F.relu`, `x + y` skips and `torch.flatten` as well as modules, so a model
does not have to be an `nn.Sequential`. Anything else is refused, naming the node.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from toolkit.errors import ApdError, one_line

# The one list of pattern-making kinds. A ReLU / LeakyReLU state is 1 iff z > 0; Hardtanh
# (and its subclass ReLU6) has three states; a max-pool's pattern is which input each window takes.
KINDS = ("relu", "leaky_relu", "hardtanh", "maxpool")

# Linear modules: the partition engine applies them to an affine map's offset and direction
# columns, so any of them works there without a per-module rule.
LINEAR_MODULES = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout,
)
_LINEAR_FUNCTIONS = {torch.flatten: "flatten", operator.add: "add", torch.add: "add"}
_SHAPE_METHODS = {"view", "reshape", "flatten", "size", "contiguous", "add"}
_ACT_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.leaky_relu: "leaky_relu", F.hardtanh: "hardtanh"}


class Unsupported(ApdError, ValueError):
    """A model (or part of one) a routine cannot take: one line, a ValueError for library users."""


class NotPiecewiseLinear(Unsupported):
    """A model the toolkit cannot read as a piecewise-linear computation."""


@dataclass(frozen=True)
class Activation:
    """A piecewise-linear activation given by its breakpoints and per-piece slope/offset.

    Neuron state = number of thresholds strictly below the pre-activation z, so a ReLU
    state is 1 iff z > 0 and a Hardtanh state is 0 (z <= min), 1 (between), 2 (z >= max).
    On piece s the output is slopes[s] * z + offsets[s].
    """

    name: str
    thresholds: tuple[float, ...]
    slopes: tuple[float, ...]
    offsets: tuple[float, ...]


@dataclass(frozen=True)
class PLOp:
    """Hidden layer `layer` (1-based, call order): the fx node making its pattern."""

    layer: int
    name: str
    kind: str
    node: fx.Node
    module: nn.Module | None  # the activation / pool module, None for functional calls
    params: dict

    @property
    def activation(self) -> Activation:
        """Breakpoints and pieces (not defined for max-pool, whose pattern is an argmax)."""
        if self.kind == "leaky_relu":
            return Activation("LeakyReLU", (0.0,), (float(self.params["negative_slope"]), 1.0), (0.0, 0.0))
        if self.kind == "hardtanh":
            lo, hi = float(self.params["min_val"]), float(self.params["max_val"])
            return Activation("Hardtanh", (lo, hi), (0.0, 1.0, 0.0), (lo, 0.0, hi))
        if self.kind == "relu":
            return Activation("ReLU", (0.0,), (0.0, 1.0), (0.0, 0.0))
        raise NotPiecewiseLinear(f"layer {self.layer} ({self.name}) is a max-pool: it has no thresholds")


@dataclass
class Traced:
    """A traced model: its fx graph module and its pattern-making operations in call order."""

    graph: fx.GraphModule
    ops: list[PLOp]

    def op_of(self, node: fx.Node) -> PLOp | None:
        return next((op for op in self.ops if op.node is node), None)


def trace(model: nn.Module) -> Traced:
    """Read `model`'s computation; raise NotPiecewiseLinear naming the first node that is not."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable control flow
        first = one_line(exc)
        raise NotPiecewiseLinear(
            f"cannot read {type(model).__name__} with torch.fx (data-dependent control flow?): {first}") from None
    modules = dict(gm.named_modules())
    ops: list[PLOp] = []
    seen: set[str] = set()
    index = 0  # position among the computing nodes: "layer 3 (Sigmoid)" in a Sequential
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        kind, name, module, params = _classify(node, modules)
        if kind is None:
            raise NotPiecewiseLinear(f"layer {index} ({name}) is not piecewise-linear")
        if kind in KINDS:
            label = node.target if node.op == "call_module" and node.target not in seen else node.name
            seen.add(str(node.target))
            ops.append(PLOp(len(ops) + 1, str(label), kind, node, module, params))
        index += 1
    if not ops:
        raise NotPiecewiseLinear(
            f"model {type(model).__name__} has no piecewise-linear activations (ReLU, LeakyReLU, Hardtanh, MaxPool)")
    return Traced(gm, ops)


def _classify(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str | None, str, nn.Module | None, dict]:
    """(kind or 'linear' or None, display name, module, activation parameters) of one fx node."""
    if node.op == "call_module":
        mod = modules[node.target]
        name = type(mod).__name__
        if isinstance(mod, nn.LeakyReLU):
            return "leaky_relu", name, mod, {"negative_slope": mod.negative_slope}
        if isinstance(mod, nn.ReLU):
            return "relu", name, mod, {}
        if isinstance(mod, nn.Hardtanh):  # includes ReLU6
            if not mod.min_val < mod.max_val:
                raise NotPiecewiseLinear(f"Hardtanh needs min_val < max_val, got {mod.min_val}, {mod.max_val}")
            return "hardtanh", name, mod, {"min_val": mod.min_val, "max_val": mod.max_val}
        if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
            return "maxpool", name, mod, {}
        if isinstance(mod, LINEAR_MODULES):
            return "linear", name, mod, {}
        return None, name, mod, {}
    if node.op == "call_function":
        name = getattr(node.target, "__name__", str(node.target))
        if node.target in _ACT_FUNCTIONS:
            kind = _ACT_FUNCTIONS[node.target]
            return kind, name, None, _function_params(node, kind)
        if node.target in _LINEAR_FUNCTIONS:
            if _LINEAR_FUNCTIONS[node.target] == "add" and not all(isinstance(a, fx.Node) for a in node.args[:2]):
                return None, f"{name} of a constant", None, {}
            return "linear", name, None, {}
        return None, name, None, {}
    if node.op == "call_method" and node.target == "relu":
        return "relu", "relu", None, {}
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        if node.target == "add" and not all(isinstance(a, fx.Node) for a in node.args[:2]):
            return None, "add of a constant", None, {}
        return "linear", str(node.target), None, {}
    return None, str(node.target), None, {}


def _function_params(node: fx.Node, kind: str) -> dict:
    """Positional or keyword parameters of F.leaky_relu / F.hardtanh, with torch's defaults."""
    def arg(i: int, key: str, default: float) -> float:
        return float(node.args[i]) if len(node.args) > i else float(node.kwargs.get(key, default))

    if kind == "leaky_relu":
        return {"negative_slope": arg(1, "negative_slope", 0.01)}
    if kind == "hardtanh":
        lo, hi = arg(1, "min_val", -1.0), arg(2, "max_val", 1.0)
        if not lo < hi:
            raise NotPiecewiseLinear(f"hardtanh needs min_val < max_val, got {lo}, {hi}")
        return {"min_val": lo, "max_val": hi}
    return {}


def maxpool_selection(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Which input elements a max-pool takes ([B, C, *spatial] -> bool of x's shape): its pattern.

    Windows that tie take the first maximum (torch's rule), as the forward pass does.
    """
    pool = F.max_pool1d_with_indices if isinstance(module, nn.MaxPool1d) else F.max_pool2d_with_indices
    _, idx = pool(x, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode, True)
    flat = torch.zeros(x.shape[0], x.shape[1], x[0, 0].numel(), dtype=torch.bool, device=x.device)
    flat.scatter_(2, idx.flatten(2), True)
    return flat.reshape(x.shape)
