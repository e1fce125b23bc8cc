"""Independent computations the tests compare the toolkit with, written from DESIGN.md's
definitions on the original torch modules (never through toolkit.regions.pl_network, which
the code under test uses): activation states by a plain forward pass, a plane's regions as
polygon areas with the states at an interior point, and a blanket's s from those.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from toolkit.regions.partition import partition
from toolkit.regions.plane import Plane


def layer_states(model: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    """States of every activation's input, layer by layer, from a float64 copy of the
    modules: ReLU z > 0, Hardtanh (z > min) + (z > max). The model itself is left as it was."""
    h = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    out = []
    with torch.no_grad():
        for module in copy.deepcopy(model).double():
            if isinstance(module, torch.nn.ReLU):
                out.append((h > 0).numpy().astype(np.int8))
            elif isinstance(module, torch.nn.Hardtanh):
                out.append((h > module.min_val).numpy().astype(np.int8) + (h > module.max_val).numpy())
            h = module(h)
    return out


def preactivations(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Hidden pre-activations of a Linear/activation chain, straight from its modules: the
    output of every Linear but the last, concatenated. Autograd of this gives each region's
    hyperplanes without pl_network."""
    zs, h = [], x
    mods = list(model)
    for i, m in enumerate(mods):
        h = m(h)
        if isinstance(m, torch.nn.Linear) and i + 1 < len(mods):
            zs.append(h)
    return torch.cat(zs, -1)


def required(out: dict, key: str, cls: int, h: int) -> np.ndarray:
    """A blanket of `apd mbh --json` output as each neuron's required status (-1: free)."""
    req = np.full(h, -1, dtype=np.int8)
    for i, status in out["classes"][key][str(cls)]["constraints"]:
        req[i] = status
    return req


def predictions(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Arg-max class of a float64 forward pass of the modules."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.as_tensor(np.asarray(x), dtype=torch.float64)).argmax(1).numpy()


def region_table(model: torch.nn.Module, plane: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Every region of a plane (a dict with origin, basis, box): its polygon's area by the
    shoelace formula, and its last-layer states from a forward pass at an interior point
    (the vertex mean; regions are convex). Returns (areas, states, box area)."""
    pl = Plane(np.array(plane["origin"]), np.array(plane["basis"]), tuple(plane["box"]))
    polys = partition(model, pl, device="cpu").polygons()
    area = np.array([0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1)))
                     for p in polys])
    assert area.sum() == pytest.approx(pl.box_area, rel=1e-9)  # the regions tile the box
    inner = pl.to_input(np.array([p.mean(0) for p in polys]))
    return area, layer_states(model, inner)[-1], pl.box_area


def exact_s(regions: tuple[np.ndarray, np.ndarray, float], req: np.ndarray) -> float:
    """s = 1 - (area of the regions whose states satisfy the blanket) / box area; `req`
    holds each neuron's required status, -1 where the blanket leaves it free."""
    area, states, box_area = regions
    return 1.0 - area[((req < 0) | (states == req)).all(1)].sum() / box_area
