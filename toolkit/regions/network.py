"""A piecewise-linear torch network as a list of float64 affine maps and activations.

Every exact-geometry routine needs the same view of a model: affine map, activation,
affine map, ..., affine map (logits). Consecutive affine layers (Linear, eval-mode
BatchNorm1d, Dropout, Flatten, Identity) are composed into one map, so a hidden layer is
exactly one activation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_AFFINE = (nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.Flatten, nn.Identity)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Hardtanh)


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


def _activation(module: nn.Module) -> Activation:
    if isinstance(module, nn.LeakyReLU):
        return Activation("LeakyReLU", (0.0,), (float(module.negative_slope), 1.0), (0.0, 0.0))
    if isinstance(module, nn.Hardtanh):  # includes ReLU6
        lo, hi = float(module.min_val), float(module.max_val)
        if not lo < hi:
            raise ValueError(f"Hardtanh needs min_val < max_val, got {lo}, {hi}")
        return Activation("Hardtanh", (lo, hi), (0.0, 1.0, 0.0), (lo, 0.0, hi))
    return Activation("ReLU", (0.0,), (0.0, 1.0), (0.0, 0.0))


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


def pl_network(model: nn.Module) -> PLNet:
    """Read a torch model's leaf modules in order into a PLNet (float64, model's device).

    Raises ValueError naming the first layer that is not piecewise-linear.
    """
    leaves = [m for m in model.modules() if not list(m.children())]
    layers: list[Layer] = []
    w: torch.Tensor | None = None  # pending composed affine map, None = identity
    b: torch.Tensor | None = None
    for i, module in enumerate(leaves):
        if isinstance(module, _ACTIVATIONS):
            if w is None:
                raise ValueError(f"layer {i} ({type(module).__name__}) has no affine layer before it")
            layers.append(Layer(w, b, _activation(module)))
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
        else:
            raise ValueError(f"layer {i} ({type(module).__name__}) is not piecewise-linear")
    if not layers:
        raise ValueError("model has no piecewise-linear activations (ReLU, LeakyReLU, Hardtanh)")
    for j in range(1, len(layers)):
        if layers[j].weight.shape[1] != layers[j - 1].weight.shape[0]:
            raise ValueError(f"hidden layer {j} expects {layers[j].weight.shape[1]} inputs, gets {layers[j - 1].weight.shape[0]}")
    if w is None:  # no affine map after the last activation: its outputs are the logits
        n = layers[-1].weight.shape[0]
        dev = layers[-1].weight.device
        w, b = torch.eye(n, dtype=torch.float64, device=dev), torch.zeros(n, dtype=torch.float64, device=dev)
    return PLNet(tuple(layers), w, b)
