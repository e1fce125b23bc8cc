"""User-style model factories for `--factory factories:NAME`: pytest puts this folder on
sys.path (the tests are no package), where the CLI imports it as a user's module. The tests
themselves import it as `tests.factories`.

Each model also computes its pre-activations by hand, so tests can check recorded
patterns against a plain forward pass that uses no hooks.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FEATURES = 6


class Mixed(nn.Module):
    """Not a Sequential: ReLU, LeakyReLU and Hardtanh(-0.5, 0.5) hidden layers of widths 12, 70, 9."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, 12)
        self.relu = nn.ReLU()
        self.mid = nn.Linear(12, 70)
        self.leaky = nn.LeakyReLU(0.1)
        self.deep = nn.Linear(70, 9)
        self.clip = nn.Hardtanh(-0.5, 0.5)
        self.head = nn.Linear(9, 3)
        gen = torch.Generator().manual_seed(0)  # fixed, wide weights: every Hardtanh state occurs
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.clip(self.deep(self.leaky(self.mid(self.relu(self.inp(x)))))))

    @torch.no_grad()
    def states(self, x: torch.Tensor) -> list[np.ndarray]:
        """Neuron states per hidden layer, from a plain forward pass (Hardtanh: 0 low, 1 linear, 2 high)."""
        z1 = self.inp(x)
        z2 = self.mid(F.relu(z1))
        z3 = self.deep(F.leaky_relu(z2, 0.1))
        hard = (z3 > -0.5).int() + (z3 > 0.5).int()
        return [(z1 > 0).int().numpy(), (z2 > 0).int().numpy(), hard.numpy()]


def mixed() -> nn.Module:
    return Mixed()


class NoActivations(nn.Module):
    """Two Linear layers and no activation: no pattern to record."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(FEATURES, 8)
        self.b = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def no_activations() -> nn.Module:
    return NoActivations()


class SharedRelu(nn.Module):
    """One nn.ReLU module called for two layers: each call is its own hidden layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(FEATURES, 8)
        self.b = nn.Linear(8, 8)
        self.c = nn.Linear(8, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.act(self.b(self.act(self.a(x)))))


def shared_relu() -> nn.Module:
    return SharedRelu()


def sigmoid_mix() -> nn.Module:
    """ReLU then Sigmoid (node 3): not piecewise-linear, refused at ingest."""
    return nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 3))


class Functional(nn.Module):
    """Functional activations, a residual add and a shared ReLU module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(FEATURES, 8)
        self.b = nn.Linear(8, 8)
        self.c = nn.Linear(8, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.a(x))
        h = h + F.leaky_relu(self.b(h), 0.2)
        return self.c(self.act(h))

    @torch.no_grad()
    def states(self, x: torch.Tensor) -> list[np.ndarray]:
        z1 = self.a(x)
        h = z1.clamp(min=0)
        z2 = self.b(h)
        z3 = h + torch.where(z2 > 0, z2, 0.2 * z2)
        return [(z > 0).int().numpy() for z in (z1, z2, z3)]


def functional() -> nn.Module:
    return Functional()


class Residual(nn.Module):
    """A small residual MLP: h + W relu(V h) twice between ReLU layers (seeded, wide weights)."""

    def __init__(self, d: int = 64, w: int = 7, classes: int = 10, seed: int = 5) -> None:
        super().__init__()
        self.inp = nn.Linear(d, w)
        self.a1, self.b1 = nn.Linear(w, w), nn.Linear(w, w)
        self.a2, self.b2 = nn.Linear(w, w), nn.Linear(w, w)
        self.out = nn.Linear(w, classes)
        self.r0, self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.6 if "weight" in name else 0.3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.r0(self.inp(x))
        h = h + self.b1(self.r1(self.a1(h)))
        h = h + self.b2(self.r2(self.a2(h)))
        return self.out(self.r3(h))


def residual() -> nn.Module:
    return Residual()


def synthetic(n: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs in FEATURES dimensions, 3 classes, values spread around [-2, 2]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.normal(0, 1.5, (3, FEATURES))
    x = centres[y] + rng.normal(0, 0.8, (n, FEATURES))
    return x.astype(np.float32), y.astype(np.int64)


def mlp(arch: list[int], act=nn.ReLU, seed: int = 0) -> nn.Sequential:
    """A seeded Linear/activation chain of widths `arch` (no activation after the last Linear)."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i in range(len(arch) - 1):
        mods.append(nn.Linear(arch[i], arch[i + 1]))
        if i < len(arch) - 2:
            mods.append(act())
    return nn.Sequential(*mods)

