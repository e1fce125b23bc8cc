"""`apd mbh`: maximal patterns of a stored run, their minimal blankets on planes, s per class,
all written back into the graph in one transaction that replaces the run's MBH results.

The class statistics come from the graph (last-hidden-layer Pattern bits and ACTIVATES
counts per true label), the geometry from the exact partition of each plane: one partition
per plane serves every class and coverage.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from loaders.record import decode_bits, record
from toolkit.apd.neurons import ensure_neurons, neuron_uid
from toolkit.apd.runs import coarse_source, run_layers
from toolkit.device import resolve_device
from toolkit.errors import ApdError, no_such_run
from toolkit.mbh.blanket import blanket_area, blanket_mask, specialization
from toolkit.mbh.pattern import MaximalPatterns, check_coverages, maximal_patterns
from toolkit.mbh.planes import PlaneSpec, anchor_plane, random_planes, saved_planes
from toolkit.regions.partition import Partition
from toolkit.regions.runs import RunSource, plane_node, plane_partition, run_source
from toolkit.store import Store

# A re-run replaces these node labels of the run. Neuron nodes are shared with `apd neurons`
# (toolkit/apd/neurons.py): the missing ones are created, none is deleted.
REPLACED = ("Blanket", "Plane")


@dataclass(frozen=True)
class LayerStates:
    """The distinct patterns of a run's last hidden layer, decoded, with counts per true label."""

    layer: int  # 1-based, as Pattern.layer
    kind: str
    uids: np.ndarray  # [P] Pattern uids
    states: np.ndarray  # [P, h] int8
    rows: np.ndarray  # [Q] index into uids of each (pattern, label) row
    labels: np.ndarray  # [Q]
    counts: np.ndarray  # [Q]


def last_layer_states(store: Store, run: str, model: torch.nn.Module, x: np.ndarray) -> LayerStates:
    """Read the last hidden layer's patterns from the graph; width and activation kind come
    from one forward pass of the model (the hex bits alone do not fix the width)."""
    layer = run_layers(store, run)
    source = coarse_source(store, run)
    if source:  # its bits are K chosen neurons, not the layer's
        raise ApdError(f"run {run!r} is a coarse APD of {source!r}: run mbh on that run")
    rec = record(model, x[:1], device="cpu")
    if len(rec.layers) != layer:
        raise ApdError(f"run {run!r} has {layer} hidden layers but its model has {len(rec.layers)}: re-ingest it")
    last = rec.layers[-1]
    frame = store.query("label_patterns", run=run, layer=layer)
    uids, first, rows = np.unique(frame["uid"].to_numpy(), return_index=True, return_inverse=True)
    states = decode_bits(frame["bits"].to_numpy()[first], last.neurons, last.kind)
    return LayerStates(layer, last.kind, uids, states, rows, frame["label"].to_numpy(np.int64),
                       frame["n"].to_numpy(np.int64))


def class_blanket(store: Store, run: str, part: Partition, cls: int, coverage: float,
                  greedy: str = "individual", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, float]:
    """The blanket of class `cls` at `coverage` on an existing partition of one of the run's
    planes (e.g. for a picture): bool mask over its regions, and s."""
    _, _, mp = _class_patterns(store, run, [cls], [coverage], greedy, data_dir)
    mask = blanket_mask(part.layer_pattern(len(part.widths) - 1), mp.required[0, 0])
    return mask.numpy(), float(specialization(float(blanket_area(part.area, mask)), part.plane.box_area))


def _class_patterns(store: Store, run: str, classes: Sequence[int] | None, coverages: Sequence[float], greedy: str,
                    data_dir: str | os.PathLike | None) -> tuple[RunSource, LayerStates, MaximalPatterns]:
    """The run's model and data, its last-layer states from the graph, and the maximal
    patterns of `classes` (None: every class present), each of which must have samples."""
    src = run_source(store, run, data_dir)  # refuses a missing or changed model file
    layer = last_layer_states(store, run, src.model, src.data.x)
    present = np.unique(layer.labels[layer.counts > 0])
    classes = present.tolist() if classes is None else list(dict.fromkeys(int(c) for c in classes))
    for c in classes:
        if c not in present:
            raise ApdError(f"class {c} has no samples in run {run!r} (classes present: {present.tolist()})")
    mp = maximal_patterns(layer.states[layer.rows], layer.labels, classes, coverages, greedy, layer.counts)
    return src, layer, mp


def _key(coverage: float) -> str:
    return f"{coverage:g}"


def run_mbh(
    store: Store,
    run: str,
    coverages: Sequence[float] = (0.8,),
    planes: int = 10,
    anchors: list[int] | None = None,
    planes_from: str | None = None,
    classes: Sequence[int] | None = None,
    greedy: str = "individual",
    seed: int = 0,
    device: str = "auto",
    scale: float = 1.2,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """Maximal patterns per class and coverage, s on each plane, stored as Blanket, Neuron,
    Plane nodes with CONSTRAINS, COVERS, MEASURED edges; returns the `apd mbh --json` dict.

    Planes: `anchors` (one plane), else `planes_from` (another run's stored planes), else
    `planes` random ones (`seed`). Every input is checked before any work, and the graph is
    written only at the end, in one transaction.
    """
    coverages = check_coverages(coverages)
    resolve_device(device)  # an unknown device fails here, not after the maximal patterns
    if anchors is None and planes_from is None and planes < 1:
        raise ApdError(f"--planes must be at least 1, got {planes}")
    if planes_from is not None and planes_from not in set(store.query("runs")["run"]):
        raise no_such_run(planes_from)
    src, layer, mp = _class_patterns(store, run, classes, coverages, greedy, data_dir)
    if anchors is not None:
        specs = [anchor_plane(src.data, anchors, scale)]
    elif planes_from is not None:
        specs = saved_planes(store, planes_from, data_dir)
    else:
        specs = random_planes(src.data, planes, seed, scale)

    K, C, h = mp.required.shape
    required = torch.as_tensor(mp.required.reshape(K * C, h))
    s = np.zeros((len(specs), K, C))
    area = np.zeros((len(specs), K, C))
    counts = []
    for p, spec in enumerate(tqdm(specs, desc="mbh planes", unit="plane", disable=not progress)):
        part = plane_partition(src.model, spec.plane, device)
        last = part.layer_pattern(len(part.widths) - 1)
        if last.shape[1] != h:
            raise ApdError(f"the partition's last hidden layer has {last.shape[1]} neurons, the run's {h}")
        area[p] = blanket_area(part.area, blanket_mask(last, required)).numpy().reshape(K, C)
        s[p] = specialization(area[p], spec.plane.box_area)
        counts.append(part.count)

    covers = blanket_mask(layer.states, required).numpy()  # [K*C, P] patterns inside each blanket
    result = _result(run, mp, specs, counts, s, layer)
    _write(store, run, mp, specs, counts, s, area, layer, covers)
    result["stored"] = {"blankets": K * C, "planes": len(specs), "covers": int(covers.sum()),
                        "constraints": int((mp.required >= 0).sum())}
    return result


def _result(run: str, mp: MaximalPatterns, specs: list[PlaneSpec], counts: list[int], s: np.ndarray,
            layer: LayerStates) -> dict:
    keys = [_key(c) for c in mp.coverages]
    planes = [{
        "anchors": spec.anchors,
        "anchor_labels": spec.data.y[spec.anchors].tolist(),
        **spec.plane.to_dict(),
        "box_area": spec.plane.box_area,
        "regions": counts[p],
        "s": {k: {str(c): float(s[p, ki, ci]) for ci, c in enumerate(mp.classes)} for ki, k in enumerate(keys)},
        "s_mean": {k: float(s[p, ki].mean()) for ki, k in enumerate(keys)},
    } for p, spec in enumerate(specs)]
    classes = {k: {str(c): {
        "s": float(s[:, ki, ci].mean()),
        "s_min": float(s[:, ki, ci].min()),
        "s_max": float(s[:, ki, ci].max()),
        "constraints": [[int(i), int(mp.required[ki, ci, i])] for i in np.flatnonzero(mp.required[ki, ci] >= 0)],
        "base": int(mp.base[ci]),
        "joint": float(mp.joint[ki, ci]),
        "samples": int(mp.samples[ci]),
    } for ci, c in enumerate(mp.classes)} for ki, k in enumerate(keys)}
    return {
        "run": run,
        "layer": layer.layer,
        "activation": layer.kind,
        "greedy": mp.greedy,
        "coverage": mp.coverages,
        "planes": planes,
        "classes": classes,
        "s": {k: float(s[:, ki].mean()) for ki, k in enumerate(keys)},
    }


def _write(store: Store, run: str, mp: MaximalPatterns, specs: list[PlaneSpec], counts: list[int],
           s: np.ndarray, area: np.ndarray, layer: LayerStates, covers: np.ndarray) -> None:
    K, C, h = mp.required.shape
    cov = np.repeat(np.asarray(mp.coverages), C)
    cls = np.tile(np.asarray(mp.classes), K)
    b_uid = np.array([f"{run}:b:{_key(k)}:{c}" for k, c in zip(cov, cls)], dtype=object)
    flat_s = s.reshape(len(specs), K * C)
    blankets = pd.DataFrame({
        "uid": b_uid, "run": run, "class": cls, "coverage": cov, "greedy": mp.greedy, "layer": layer.layer,
        "s": flat_s.mean(0), "s_min": flat_s.min(0), "s_max": flat_s.max(0), "planes": len(specs),
        "constraints": mp.constraints.reshape(-1), "base": np.tile(mp.base, K), "joint": mp.joint.reshape(-1),
        "samples": np.tile(mp.samples, K),
    })
    req = mp.required.reshape(K * C, h)
    b, i = np.nonzero(req >= 0)
    n_uid = neuron_uid(run, layer.layer, np.arange(h))
    used = np.unique(i)
    ensure_neurons(store, run, pd.DataFrame({"uid": n_uid[used], "run": run, "layer": layer.layer, "index": used}))
    constrains = pd.DataFrame({"src": b_uid[b], "dst": n_uid[i], "status": req[b, i]})
    cb, cp = np.nonzero(covers)
    cover_rels = pd.DataFrame({"src": b_uid[cb], "dst": layer.uids[cp]})
    p_uid = [f"{run}:plane:{p:03d}" for p in range(len(specs))]
    plane_nodes = pd.DataFrame([plane_node(p_uid[p], run, spec.anchors, spec.data, spec.plane, spec.scale, counts[p])
                                for p, spec in enumerate(specs)])
    measured = pd.DataFrame({
        "src": np.repeat(p_uid, K * C), "dst": np.tile(b_uid, len(specs)),
        "s": flat_s.reshape(-1), "area": area.reshape(-1),
    })
    store.write(
        run,
        nodes={"Blanket": blankets, "Plane": plane_nodes},
        rels={"CONSTRAINS": constrains, "COVERS": cover_rels, "MEASURED": measured},
        replace=REPLACED,
    )
