"""Where tensors live: one rule for recording, partitions and geometry."""
from __future__ import annotations

import torch

from toolkit.errors import ApdError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it is a user mistake."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ApdError("--device cuda asked for, but torch sees no CUDA device: use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ApdError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)
