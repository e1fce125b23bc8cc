"""Models: the toolkit's MLP checkpoints, user factories, and their piecewise-linear layers.

A checkpoint holds only plain data (architecture dict, state dict, pruning masks, training
record), so it loads with `torch.load(..., weights_only=True)`: no pickled modules, ever.
A user model comes from `--factory pkg.module:fn` (returns an `nn.Module`) plus a state dict.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from toolkit.errors import ApdError

FORMAT = "apd-mlp/1"
ACTIVATIONS = ("relu", "leaky_relu", "hardtanh")
# Piecewise-linear activation modules whose input (the pre-activation) defines a pattern.
# ReLU6 is a Hardtanh subclass, so it is found (and recorded with 3 states) too.
PL_KINDS = ((nn.LeakyReLU, "leaky_relu"), (nn.ReLU, "relu"), (nn.Hardtanh, "hardtanh"))


@dataclass
class LoadedModel:
    """A model ready for recording, with what the Run node records about it."""

    model: nn.Module
    arch: str
    features: int | None = None  # input width, when the checkpoint says (factories: unknown)
    epoch: int = -1
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PLLayer:
    """Hidden layer `layer` (1-based, module order): its activation module and kind."""

    layer: int
    name: str
    module: nn.Module
    kind: str


def build_mlp(
    in_dim: int, hidden: list[int], out_dim: int, activation: str = "relu", negative_slope: float = 0.01
) -> nn.Sequential:
    """fc1, act1, ..., fcL, actL, out: named so recorded layers read `act1`, `act2`, ..."""
    if activation not in ACTIVATIONS:
        raise ApdError(f"unknown activation {activation!r}: use {', '.join(ACTIVATIONS)}")
    if not hidden or min(hidden) < 1:
        raise ApdError(f"hidden widths must be positive integers (got {hidden})")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = in_dim
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, h)
        layers[f"act{i}"] = {
            "relu": nn.ReLU,
            "leaky_relu": lambda: nn.LeakyReLU(negative_slope),
            "hardtanh": nn.Hardtanh,
        }[activation]()
        width = h
    layers["out"] = nn.Linear(width, out_dim)
    return nn.Sequential(layers)


def arch_string(arch: dict) -> str:
    """e.g. `64-32-32-32-10 relu` (plus `density=0.03` for pruned networks)."""
    dims = "-".join(str(d) for d in [arch["in_dim"], *arch["hidden"], arch["out_dim"]])
    text = f"{dims} {arch['activation']}"
    return text if arch.get("density", 1.0) >= 1.0 else f"{text} density={arch['density']:g}"


def save_checkpoint(path: str | os.PathLike, model: nn.Module, arch: dict, masks: dict, record: dict) -> None:
    """Write a weights-only checkpoint (written to a temp file first, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "arch": arch,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "masks": {k: v.cpu() for k, v in masks.items()},
        "record": record,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_weights(path: str | os.PathLike) -> dict:
    """`torch.load(path, weights_only=True)` with user mistakes turned into ApdError."""
    path = Path(path)
    if not path.is_file():
        raise ApdError(f"no model file at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ApdError(f"cannot load {path} as weights only (pickled modules are refused): {first[:160]}") from None
    if not isinstance(data, dict):
        raise ApdError(f"{path} holds a {type(data).__name__}, not a checkpoint or state dict")
    return data


def load(path: str | os.PathLike, factory: str | None = None) -> LoadedModel:
    """An apd checkpoint, or (with `factory`) a user model plus the state dict in `path`."""
    data = read_weights(path)
    if factory:
        model = make_from_factory(factory)
        state = data["state_dict"] if data.get("format") == FORMAT else data
        _load_state(model, state, f"the state dict in {path} does not fit the model of factory {factory}")
        return LoadedModel(model.float().eval(), arch=f"factory {factory}", epoch=-1)
    if data.get("format") != FORMAT:
        raise ApdError(f"{path} is not an apd checkpoint: for a plain state dict pass --factory pkg.module:fn")
    arch = data["arch"]
    model = build_mlp(arch["in_dim"], arch["hidden"], arch["out_dim"], arch["activation"], arch["negative_slope"])
    _load_state(model, data["state_dict"], f"checkpoint {path} is inconsistent with its architecture")
    apply_masks(model, data["masks"])
    record = data["record"]
    return LoadedModel(model.float().eval(), arch_string(arch), arch["in_dim"], int(record.get("epoch", -1)), record)


def load_model(path: str | os.PathLike, factory: str | None = None) -> nn.Module:
    """Just the module (eval mode, float32): what regions/geometry need for a run's model."""
    return load(path, factory).model


def make_from_factory(spec: str) -> nn.Module:
    """Call `pkg.module:fn` (importable from the current directory too) and check it built a module."""
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise ApdError(f"factory {spec!r} must look like pkg.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except ImportError as exc:
        raise ApdError(f"cannot import factory module {mod_name!r}: {exc}") from None
    except AttributeError:
        raise ApdError(f"module {mod_name!r} has no function {fn_name!r}") from None
    model = fn()
    if not isinstance(model, nn.Module):
        raise ApdError(f"factory {spec} returned a {type(model).__name__}, not a torch nn.Module")
    return model


def apply_masks(model: nn.Module, masks: dict) -> None:
    """Zero the pruned weights (masks are fixed for the whole of training)."""
    with torch.no_grad():
        for name, mask in masks.items():
            model.get_parameter(name).mul_(mask.to(model.get_parameter(name).dtype))


def pl_layers(model: nn.Module) -> list[PLLayer]:
    """Every ReLU / LeakyReLU / Hardtanh module in module order, numbered 1..L; none is refused."""
    found = []
    for name, module in model.named_modules():
        kind = next((k for cls, k in PL_KINDS if isinstance(module, cls)), None)
        if kind:
            found.append(PLLayer(len(found) + 1, name, module, kind))
    if not found:
        raise ApdError(
            f"model {type(model).__name__} has no piecewise-linear activation modules (nn.ReLU, nn.LeakyReLU, "
            "nn.Hardtanh): patterns are recorded from those modules, so use them rather than torch.nn.functional"
        )
    return found


def file_hash(path: str | os.PathLike) -> str:
    """First 16 hex digits of the file's sha256: which exact weights a run came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _load_state(model: nn.Module, state: dict, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())
        raise ApdError(f"{what}: {detail[:240]}") from None
