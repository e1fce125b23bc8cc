"""Minimal blankets on a plane: the regions whose last-hidden-layer states satisfy a pattern.

A region satisfies a decision pattern when no constrained neuron is in another state. With
states one-hot encoded, the violations of every (region, pattern) pair are one matrix
product, so all classes and coverages of a plane are tested at once.
"""
from __future__ import annotations

import numpy as np
import torch


def blanket_mask(states: np.ndarray | torch.Tensor, required: np.ndarray | torch.Tensor) -> torch.Tensor:
    """bool [R] (required [h]) or [B, R] (required [B, h]): region r satisfies pattern b.

    states: [R, h] int states per region; required: state per neuron, -1 = free.
    """
    states = torch.as_tensor(np.asarray(states) if not isinstance(states, torch.Tensor) else states)
    req = torch.as_tensor(np.asarray(required) if not isinstance(required, torch.Tensor) else required,
                          device=states.device)
    single = req.dim() == 1
    req = req.reshape(-1, states.shape[1]).to(torch.int64)
    n_states = int(max(int(states.max()) if states.numel() else 0, int(req.max()) if req.numel() else 0, 1)) + 1
    levels = torch.arange(n_states, device=states.device)
    onehot = (states.to(torch.int64)[:, :, None] == levels).flatten(1).to(torch.float32)  # [R, h*S]
    forbidden = ((req[:, :, None] >= 0) & (req[:, :, None] != levels)).flatten(1).to(torch.float32)  # [B, h*S]
    mask = (forbidden @ onehot.T) == 0  # counts are small integers: exact in float32
    return mask[0] if single else mask


def blanket_area(areas: np.ndarray | torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Area of the blanket(s): sum of the satisfying regions' areas ([B] or a scalar)."""
    areas = torch.as_tensor(areas, dtype=torch.float64, device=mask.device)
    return mask.to(torch.float64) @ areas


def specialization(area: torch.Tensor | float, box_area: float) -> torch.Tensor | float:
    """s = 1 - blanket area / box area: 0 when the blanket fills the box, 1 when it is empty."""
    return 1.0 - area / box_area
