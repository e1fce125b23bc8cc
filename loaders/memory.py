"""Whether a network fits in memory for training, decided before anything is allocated.

`apd train --hidden 1000000000` (or a label of 10**12, which makes the output layer that
wide) used to end in the allocator's traceback; here the parameter count is computed from
the architecture and the bytes training holds (weights, gradients, optimizer state, the
checkpoint's copy, one batch of activations) are compared with the memory available.
"""
from __future__ import annotations

import os

import torch

from toolkit.errors import ApdError

GB = 1 << 30
LENET_FEATURES = 16 * 5 * 5  # LeNet-5's flattened conv output feeding fc1


def parameter_count(arch: dict) -> int:
    """Weights and biases of the network an architecture dict describes (loaders/models.py)."""
    if arch["kind"] == "lenet5":
        convs = (1 * 25 + 1) * 6 + (6 * 25 + 1) * 16
        widths = [LENET_FEATURES, 120, 84, arch["out_dim"]]
        return convs + sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    widths = [arch["in_dim"], *arch["hidden"], arch["out_dim"]]
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


def training_bytes(arch: dict, batch_size: int, optimizer: str, momentum: float, epochs: int, instances: int) -> int:
    """Bytes training holds beyond the data: float32 weights, gradients, optimizer state (Adam
    two moments, SGD a momentum buffer if any) and the checkpoint's copy, a batch's
    activations forward and backward, and the epochs x instances correctness matrix."""
    copies = 3 + (2 if optimizer == "adam" else 1 if momentum else 0)
    widths = [arch["in_dim"], *arch["hidden"], arch["out_dim"]] if arch["kind"] == "mlp" \
        else [arch["in_dim"], 6 * 28 * 28, 16 * 10 * 10, 120, 84, arch["out_dim"]]
    return 4 * (copies * parameter_count(arch) + 3 * batch_size * sum(widths)) + epochs * instances


def available_bytes(device: torch.device) -> int:
    """Free memory on `device`: the GPU's free memory, else the kernel's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_fits(arch: dict, dims: str, batch_size: int, optimizer: str, momentum: float, epochs: int, instances: int,
               device: torch.device) -> None:
    """ApdError in one line when training `arch` (described as `dims`) needs more memory than is free."""
    need = training_bytes(arch, batch_size, optimizer, momentum, epochs, instances)
    have = available_bytes(device)
    if need > have:
        raise ApdError(f"training a {dims} network ({parameter_count(arch):,} parameters, {epochs:,} epochs of "
                       f"{instances:,} instances) needs about {need / GB:,.1f} GB, more than the {have / GB:,.1f} GB "
                       f"free on {device.type}: choose smaller --hidden widths, --batch-size or --epochs (the output "
                       "width is the data's largest label + 1)")
