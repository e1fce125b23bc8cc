"""The structure of an apd checkpoint, checked whole before a model is built from it.

A hand-edited or foreign file used to fail deep in the loader (a KeyError for a missing
`arch`, an AttributeError for a mask naming no parameter, a RuntimeError for a mask of the
wrong shape, a ValueError for `record.epoch = 'abc'`); here each is one line naming the key.
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from toolkit.errors import ApdError

ACTIVATIONS = ("relu", "leaky_relu", "hardtanh")
ARCHS = ("mlp", "lenet5")
SECTIONS = ("arch", "state_dict", "masks", "record")


def check_checkpoint(data: dict, path: str | os.PathLike) -> None:
    """Raise ApdError naming the first missing or wrong key of an apd checkpoint `data`."""
    for key in SECTIONS:
        if key not in data:
            raise ApdError(f"checkpoint {path} lacks key {key!r}: it is not a whole apd checkpoint")
        if not isinstance(data[key], dict):
            raise ApdError(f"checkpoint {path}: {key!r} is a {type(data[key]).__name__}, not a dict")
    _check_arch(data["arch"], path)
    for section in ("state_dict", "masks"):
        for name, value in data[section].items():
            if not isinstance(value, torch.Tensor):
                raise ApdError(f"checkpoint {path}: {section}[{name!r}] is a {type(value).__name__}, not a tensor")
    _check_record(data["record"], path)


def check_masks(model: nn.Module, masks: dict, path: str | os.PathLike) -> None:
    """Every mask names one of the model's parameters and has its shape."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ApdError(f"checkpoint {path}: masks[{name!r}] names no parameter of its model "
                           f"(it has {', '.join(params)})")
        if tuple(mask.shape) != tuple(params[name].shape):
            raise ApdError(f"checkpoint {path}: masks[{name!r}] has shape {list(mask.shape)}, "
                           f"its parameter {list(params[name].shape)}")


def _check_arch(arch: dict, path: str | os.PathLike) -> None:
    kind = arch.get("kind", "mlp")
    if kind not in ARCHS:
        raise ApdError(f"checkpoint {path}: arch.kind {kind!r} is not one of {', '.join(ARCHS)}")
    for key in ("in_dim", "out_dim", "activation", "negative_slope") + (("hidden",) if kind == "mlp" else ()):
        if key not in arch:
            raise ApdError(f"checkpoint {path} lacks key 'arch.{key}'")
    for key in ("in_dim", "out_dim"):
        if not _positive_int(arch[key]):
            raise ApdError(f"checkpoint {path}: arch.{key} must be a positive integer (got {arch[key]!r})")
    if kind == "mlp" and not (isinstance(arch["hidden"], list) and arch["hidden"]
                              and all(_positive_int(h) for h in arch["hidden"])):
        raise ApdError(f"checkpoint {path}: arch.hidden must be a list of positive integers (got {arch['hidden']!r})")
    if arch["activation"] not in ACTIVATIONS:
        raise ApdError(f"checkpoint {path}: arch.activation {arch['activation']!r} is not one of "
                       f"{', '.join(ACTIVATIONS)}")
    if not _finite_number(arch["negative_slope"]):
        raise ApdError(f"checkpoint {path}: arch.negative_slope must be a number (got {arch['negative_slope']!r})")
    density = arch.get("density", 1.0)
    if not (_finite_number(density) and 0 < density <= 1):
        raise ApdError(f"checkpoint {path}: arch.density must be a number in (0, 1] (got {density!r})")


def _check_record(record: dict, path: str | os.PathLike) -> None:
    epoch = record.get("epoch", -1)
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ApdError(f"checkpoint {path}: record.epoch must be an integer (got {epoch!r})")
    if "forgetting" in record:
        counts, never = record["forgetting"], record.get("never_learned")
        if not (isinstance(counts, torch.Tensor) and isinstance(never, torch.Tensor) and counts.shape == never.shape):
            raise ApdError(f"checkpoint {path}: record.forgetting and record.never_learned must be tensors "
                           "of one length")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
