"""Forgetting events (Toneva et al.), vectorised over instances.

A presentation is one epoch's minibatch forward pass over the instance (before the
update). A forgetting event is a presentation where the instance was classified correctly
followed by one where it was not. Instances never correct at any presentation are
*never learned*: flagged, with 0 events, and not to be read as "unforgettable".
"""
from __future__ import annotations

import numpy as np
import torch


def forgetting_events(correct: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """From a [presentations, instances] boolean matrix: (events int64 [n], never_learned bool [n])."""
    c = torch.as_tensor(correct, dtype=torch.bool)
    if c.ndim != 2:
        raise ValueError(f"correctness matrix must be 2-D [presentations, instances], got shape {tuple(c.shape)}")
    events = (c[:-1] & ~c[1:]).sum(dim=0)
    never = ~c.any(dim=0)
    return events.numpy().astype(np.int64), never.numpy()
