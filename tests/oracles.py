"""Independent computations the tests compare the toolkit with, written from DESIGN.md's
definitions on the original torch modules (never through toolkit.regions.pl_network, which
the code under test uses): activation states by a plain forward pass (pre-hooks on the
activation modules, so each module's own parameters, e.g. LeakyReLU's negative_slope, drive
it), a plane's regions as polygon areas with the states at an interior point, a blanket's s
from those, maximal patterns by a plain loop over the definition, and flows by a pandas
group-by (also the bench's pandas baseline).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from toolkit.regions.partition import partition
from toolkit.regions.plane import Plane

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Hardtanh)


def module_inputs(model: nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[tuple[nn.Module, torch.Tensor]]:
    """(module, input) of every module of these kinds, in call order, seen by forward pre-hooks
    that are always removed: the independent oracle the recorded and partitioned patterns meet."""
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [m.register_forward_pre_hook(lambda m, args: seen.append((m, args[0])))
               for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def forward(model: nn.Module, x, dtype: torch.dtype = torch.float64) -> tuple[list[np.ndarray], np.ndarray]:
    """(states per hidden layer [n, width] int8, logits [n, classes]) by a torch forward pass of
    `model` in `dtype` (converted in place and back: float32 -> float64 -> float32 is exact, and
    pruned modules cannot be deep-copied). State: ReLU / LeakyReLU 1 iff z > 0; Hardtanh
    (z > min) + (z > max)."""
    was = next(model.parameters()).dtype
    xt = torch.as_tensor(np.asarray(x)).to(dtype)
    model.to(dtype)
    try:
        seen = module_inputs(model, xt, ACTIVATIONS)
        with torch.no_grad():
            logits = model(xt).numpy()
    finally:
        model.to(was)
    states = []
    for module, z in seen:
        z = z.flatten(1)
        if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh too
            s = (z > module.min_val).to(torch.int8) + (z > module.max_val).to(torch.int8)
        else:
            s = (z > 0).to(torch.int8)
        states.append(s.numpy())
    return states, logits


def layer_states(model: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    """States of every activation's input, layer by layer, from a float64 forward pass."""
    return forward(model, x)[0]


def hidden_states(model: torch.nn.Module, x: np.ndarray, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Every hidden neuron's state [n, neurons], the layers side by side, from a forward pass
    in `dtype` (float32 where the recorded patterns are compared: ingest runs in float32)."""
    return np.concatenate(forward(model, x, dtype)[0], 1)


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
    return forward(model, x)[1].argmax(1)


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


def greedy_maximal(states: np.ndarray, coverage: float, joint: bool = False) -> tuple[dict[int, int], float]:
    """Maximal pattern of one class from its samples' states [n, h], as DESIGN.md defines it:
    constant neurons first (the base); then candidates at their majority status (the lowest
    status among equally frequent ones), one at a time, while the joint coverage stays >=
    `coverage`, stopping at the first that would drop it below. Order: decreasing individual
    coverage (the majority status's share, i.e. max(p, 1 - p) for two statuses), tied scores
    all kept in neuron-index order (pattern.py's documented tie order); with `joint`, the
    candidate leaving the highest joint coverage (lowest index on ties).
    Returns ({neuron: status}, joint coverage reached)."""
    n, h = states.shape
    major, share = {}, {}
    for i in range(h):
        values, counts = np.unique(states[:, i], return_counts=True)
        major[i] = int(values[np.argmax(counts)])  # np.unique sorts: the first maximum is the lowest status
        share[i] = counts.max() / n
    chosen = {i: major[i] for i in range(h) if share[i] == 1.0}
    covered = np.ones(n, dtype=bool)
    candidates = [i for i in range(h) if i not in chosen]
    if not joint:
        candidates.sort(key=lambda i: (-share[i], i))
    while candidates:
        if joint:
            best = max(candidates, key=lambda i: ((covered & (states[:, i] == major[i])).sum(), -i))
        else:
            best = candidates[0]
        after = covered & (states[:, best] == major[best])
        if after.sum() < coverage * n:
            break
        chosen[best] = major[best]
        covered = after
        candidates.remove(best)
    return dict(sorted(chosen.items())), covered.mean()


def flows_groupby(keys: pd.DataFrame, pred, correct, min_strength: int = 1) -> pd.DataFrame:
    """Flows as DESIGN.md defines them, by pandas: `keys` has one row per instance and one column
    per layer of the flow, holding anything that identifies the instance's pattern there.
    Returns the key columns plus strength (instances), purity (share of the most frequent
    predicted label), label (that label; the smallest on ties) and errors, one row per flow
    with strength >= min_strength, in no particular order."""
    names = list(keys.columns)
    cols = [f"_k{j}" for j in range(len(names))]  # pandas mislabels integer key columns with as_index=False
    frame = keys.set_axis(cols, axis=1).assign(_pred=np.asarray(pred), _wrong=~np.asarray(correct, dtype=bool))
    out = frame.groupby(cols).agg(strength=("_pred", "size"), errors=("_wrong", "sum")).reset_index()
    votes = frame.groupby(cols + ["_pred"]).size().rename("top").reset_index()
    best = votes[votes["top"] == votes.groupby(cols)["top"].transform("max")].groupby(cols).agg(
        label=("_pred", "min"), top=("top", "first")).reset_index()
    out = out.merge(best, on=cols)
    out["purity"] = out["top"] / out["strength"]
    out = out[out["strength"] >= min_strength].drop(columns="top").rename(columns=dict(zip(cols, names)))
    return out.astype({"strength": "int64", "errors": "int64", "label": "int64"}).reset_index(drop=True)


def as_listed(flows: pd.DataFrame) -> pd.DataFrame:
    """`flows_groupby` rows whose key columns hold pattern uids, listed as `apd flows` lists
    them: strongest first, then by the uids layer by layer, numbered by fid."""
    cols = [c for c in flows.columns if c not in ("strength", "errors", "label", "purity")]
    flows = flows.sort_values(["strength", *cols], ascending=[False] + [True] * len(cols), kind="stable")
    return pd.DataFrame({"fid": np.arange(len(flows)), "patterns": flows[cols].to_numpy().tolist(),
                         **{c: flows[c].to_numpy() for c in ("strength", "purity", "errors", "label")}})
