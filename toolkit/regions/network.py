"""A piecewise-linear MLP chain as a list of float64 affine maps and activations.

The region geometry routines and the MLP fast path of the partition engine need this view
of a model: affine map, activation, affine map, ..., affine map (logits). Consecutive
affine layers (Linear, eval-mode BatchNorm1d, Dropout, Flatten, Identity) are composed into
one map, so a hidden layer is exactly one activation. Other graphs (conv nets, residual
adds, functional activations) go through toolkit.regions.graph instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from toolkit.piecewise import Activation, Traced, Unsupported, trace

_AFFINE = (nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.Flatten, nn.Identity)


@dataclass(frozen=True)
class Layer:
    """Pre-activation z = W x + b followed by an activation (hidden layer)."""

    weight: torch.Tensor  # [out, in] float64
    bias: torch.Tensor  # [out] float64
    activation: Activation


@dataclass(frozen=True)
class PLNet:
    """Hidden layers then the output affine map (logits)."""

    layers: tuple[Layer, ...]
    out_weight: torch.Tensor  # [classes, last width]
    out_bias: torch.Tensor

    @property
    def in_features(self) -> int:
        return self.layers[0].weight.shape[1]

    @property
    def widths(self) -> list[int]:
        return [layer.weight.shape[0] for layer in self.layers]

    def to(self, device: torch.device) -> "PLNet":
        return PLNet(
            tuple(Layer(lay.weight.to(device), lay.bias.to(device), lay.activation) for lay in self.layers),
            self.out_weight.to(device),
            self.out_bias.to(device),
        )

    def states(self, x: torch.Tensor) -> torch.Tensor:
        """States of all hidden neurons for inputs x [B, d] (int8 [B, sum(widths)])."""
        out = []
        for layer in self.layers:
            z = x @ layer.weight.T + layer.bias
            s = state_of(z, layer.activation)
            out.append(s)
            x = apply(z, s, layer.activation)
        return torch.cat(out, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            z = x @ layer.weight.T + layer.bias
            x = apply(z, state_of(z, layer.activation), layer.activation)
        return x @ self.out_weight.T + self.out_bias


def state_of(z: torch.Tensor, act: Activation) -> torch.Tensor:
    """Piece index of every entry of z (int8)."""
    s = (z > act.thresholds[0]).to(torch.int8)
    for t in act.thresholds[1:]:
        s += z > t
    return s


def pieces(s: torch.Tensor, act: Activation) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope and offset (float64) of the activation on pieces s."""
    slope = torch.full(s.shape, act.slopes[0], dtype=torch.float64, device=s.device)
    offset = torch.full(s.shape, act.offsets[0], dtype=torch.float64, device=s.device)
    for k in range(1, len(act.slopes)):
        on = s == k
        slope.masked_fill_(on, act.slopes[k])
        offset.masked_fill_(on, act.offsets[k])
    return slope, offset


def apply(z: torch.Tensor, s: torch.Tensor, act: Activation) -> torch.Tensor:
    """Activation output given the pieces s (affine in z for fixed s)."""
    slope, offset = pieces(s, act)
    return z * slope + offset


def _affine(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(W, b) of an affine leaf in float64, or None for an identity."""
    if isinstance(module, nn.Linear):
        w = module.weight.detach().to(torch.float64)
        b = module.bias.detach().to(torch.float64) if module.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64, device=w.device)
        return w, b
    if isinstance(module, nn.BatchNorm1d):
        if module.training:
            raise ValueError("BatchNorm1d must be in eval mode (call model.eval())")
        if module.running_mean is None:
            raise ValueError("BatchNorm1d without running statistics is not a fixed affine map")
        scale = 1.0 / torch.sqrt(module.running_var.detach().to(torch.float64) + module.eps)
        if module.affine:
            scale = scale * module.weight.detach().to(torch.float64)
        shift = -module.running_mean.detach().to(torch.float64) * scale
        if module.affine:
            shift = shift + module.bias.detach().to(torch.float64)
        return torch.diag(scale), shift
    return None


def is_chain(traced: Traced) -> bool:
    """True when the graph is a chain of affine modules and activation modules (an MLP)."""
    modules = dict(traced.graph.named_modules())
    nodes = [n for n in traced.graph.graph.nodes if n.op not in ("placeholder", "output")]
    prev = next(n for n in traced.graph.graph.nodes if n.op == "placeholder")
    for node in nodes:
        if node.op != "call_module" or node.args != (prev,) or node.kwargs:
            return False
        mod = modules[node.target]
        if not isinstance(mod, _AFFINE) and (traced.op_of(node) is None or traced.op_of(node).kind == "maxpool"):
            return False
        prev = node
    return True


def pl_network(model: nn.Module) -> PLNet:
    """Read an MLP chain into a PLNet (float64, model's device).

    Raises ValueError naming the first layer that is not piecewise-linear, or saying that
    a piecewise-linear graph is not a chain (only `apd regions` takes those).
    """
    traced = trace(model)
    if not is_chain(traced):
        raise Unsupported(f"{type(model).__name__} is not a chain of Linear and activation modules: "
                         "region geometry takes MLPs only (`apd regions` takes conv and residual nets)")
    layers: list[Layer] = []
    w: torch.Tensor | None = None  # pending composed affine map, None = identity
    b: torch.Tensor | None = None
    modules = dict(traced.graph.named_modules())
    nodes = [n for n in traced.graph.graph.nodes if n.op == "call_module"]
    for i, node in enumerate(nodes):
        module = modules[node.target]
        op = traced.op_of(node)
        if op is not None:
            if w is None:
                raise ValueError(f"layer {i} ({type(module).__name__}) has no affine layer before it")
            layers.append(Layer(w, b, op.activation))
            w = b = None
        elif isinstance(module, _AFFINE):
            if isinstance(module, nn.Dropout) and module.training:
                raise ValueError(f"layer {i} (Dropout) is in training mode (call model.eval())")
            wb = _affine(module)
            if wb is None:
                continue
            mw, mb = wb
            if w is None:
                w, b = mw, mb
            else:
                if mw.shape[1] != w.shape[0]:
                    raise ValueError(f"layer {i} ({type(module).__name__}) expects {mw.shape[1]} inputs, gets {w.shape[0]}")
                w, b = mw @ w, mw @ b + mb
    for j in range(1, len(layers)):
        if layers[j].weight.shape[1] != layers[j - 1].weight.shape[0]:
            raise ValueError(f"hidden layer {j} expects {layers[j].weight.shape[1]} inputs, gets {layers[j - 1].weight.shape[0]}")
    if w is None:  # no affine map after the last activation: its outputs are the logits
        n = layers[-1].weight.shape[0]
        dev = layers[-1].weight.device
        w, b = torch.eye(n, dtype=torch.float64, device=dev), torch.zeros(n, dtype=torch.float64, device=dev)
    return PLNet(tuple(layers), w, b)
