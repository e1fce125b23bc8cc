"""Models: the toolkit's checkpoints (MLPs and a LeNet-5-style conv net) and user factories.

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

from loaders.checkpoint import ACTIVATIONS, ARCHS, check_checkpoint, check_masks
from toolkit.errors import ApdError, one_line

FORMAT = "apd/2"  # arch["kind"] is "mlp" or "lenet5"
FORMATS = (FORMAT, "apd-mlp/1")  # apd-mlp/1: MLP checkpoints written before conv nets, still loaded
LENET_SIDE = 28  # LeNet-5 takes 28x28 single-channel images (MNIST, Fashion-MNIST)


@dataclass
class LoadedModel:
    """A model ready for recording, with what the Run node records about it."""

    model: nn.Module
    arch: str
    features: int | None = None  # input width, when the checkpoint says (factories: unknown)
    epoch: int = -1
    record: dict = field(default_factory=dict)


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
        layers[f"act{i}"] = _activation(activation, negative_slope)
        width = h
    layers["out"] = nn.Linear(width, out_dim)
    return nn.Sequential(layers)


def build_lenet5(out_dim: int = 10, activation: str = "relu", negative_slope: float = 0.01) -> nn.Sequential:
    """LeNet-5 style for flat 28x28 inputs: (conv 5x5, act, 2x2 average pool) x 2, fc 120-84-out.

    Average pooling, as in the original: it is linear, so the exact partition engine needs
    no argmax cells for it. Takes the flat [B, 784] rows the datasets give.
    """
    if activation not in ACTIVATIONS:
        raise ApdError(f"unknown activation {activation!r}: use {', '.join(ACTIVATIONS)}")
    return nn.Sequential(OrderedDict([
        ("image", nn.Unflatten(1, (1, LENET_SIDE, LENET_SIDE))),
        ("conv1", nn.Conv2d(1, 6, 5, padding=2)), ("act1", _activation(activation, negative_slope)),
        ("pool1", nn.AvgPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("act2", _activation(activation, negative_slope)),
        ("pool2", nn.AvgPool2d(2)),
        ("flat", nn.Flatten()),
        ("fc1", nn.Linear(16 * 5 * 5, 120)), ("act3", _activation(activation, negative_slope)),
        ("fc2", nn.Linear(120, 84)), ("act4", _activation(activation, negative_slope)),
        ("out", nn.Linear(84, out_dim)),
    ]))


def build_model(arch: dict) -> nn.Sequential:
    """The module an architecture dict describes (checkpoint format apd/2 or apd-mlp/1)."""
    kind = arch.get("kind", "mlp")
    if kind == "lenet5":
        if arch["in_dim"] != LENET_SIDE * LENET_SIDE:
            raise ApdError(f"--arch lenet5 takes 28x28 images (784 features), the data has {arch['in_dim']}")
        return build_lenet5(arch["out_dim"], arch["activation"], arch["negative_slope"])
    if kind != "mlp":
        raise ApdError(f"unknown architecture {kind!r}: use {', '.join(ARCHS)}")
    return build_mlp(arch["in_dim"], arch["hidden"], arch["out_dim"], arch["activation"], arch["negative_slope"])


def _activation(activation: str, negative_slope: float) -> nn.Module:
    return {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(negative_slope), "hardtanh": nn.Hardtanh}[activation]()


def arch_string(arch: dict) -> str:
    """e.g. `64-32-32-32-10 relu` or `lenet5 1x28x28-6x28x28-16x10x10-120-84-10 relu`: the
    input, each hidden layer's output shape (channels x height x width for conv layers: the
    bits of its pattern) and the classes (plus `density=0.03` for pruned networks)."""
    if arch.get("kind", "mlp") == "lenet5":
        side = LENET_SIDE
        shapes = [f"1x{side}x{side}", f"6x{side}x{side}", "16x10x10", "120", "84", str(arch["out_dim"])]
        text = f"lenet5 {'-'.join(shapes)} {arch['activation']}"
        return text if arch.get("density", 1.0) >= 1.0 else f"{text} density={arch['density']:g}"
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
        if not _looks_like_torch(path):
            raise ApdError(f"{path} is not a PyTorch checkpoint (neither a torch zip archive nor a pickle)") from None
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
        state = data.get("state_dict") if data.get("format") in FORMATS else data
        if not isinstance(state, dict):
            raise ApdError(f"checkpoint {path} lacks key 'state_dict'")
        _load_state(model, state, f"the state dict in {path} does not fit the model of factory {factory}")
        return LoadedModel(model.float().eval(), arch=f"factory {factory}", epoch=-1)
    if data.get("format") not in FORMATS:
        raise ApdError(f"{path} is not an apd checkpoint: for a plain state dict pass --factory pkg.module:fn")
    check_checkpoint(data, path)
    arch = data["arch"]
    model = build_model(arch)
    _load_state(model, data["state_dict"], f"checkpoint {path} is inconsistent with its architecture")
    check_masks(model, data["masks"], path)
    apply_masks(model, data["masks"])
    record = data["record"]
    return LoadedModel(model.float().eval(), arch_string(arch), arch["in_dim"], record.get("epoch", -1), record)


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


def _looks_like_torch(path: Path) -> bool:
    """torch.save writes a zip archive (or, in old versions, a pickle starting with 0x80)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


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
        raise ApdError(f"{what}: {one_line(exc, 240)}") from None
