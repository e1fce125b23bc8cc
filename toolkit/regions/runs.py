"""Region geometry of a stored run: rebuild its model and inputs from the Run node, then
partition planes through its instances or measure each instance's region.

The Run node records the model file (and factory), the dataset and the split; the run's
`Instance.idx` is the row of that split, so geometry lines up with the graph.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch import nn
from tqdm import tqdm

from loaders.datasets import Dataset, load_dataset
from loaders.models import file_hash, load_model
from toolkit.apd.runs import history_only_run
from toolkit.errors import ApdError, no_such_run
from toolkit.regions.geometry import boundary_distance, inradius, segment_regions
from toolkit.regions.partition import Partition, partition
from toolkit.regions.plane import Plane, check_anchor_indices, plane_from_anchors
from toolkit.store import Store


@dataclass
class RunSource:
    """The model and inputs behind a stored run."""

    run: str
    model: nn.Module
    data: Dataset


def run_source(store: Store, run: str, data_dir: str | os.PathLike | None = None) -> RunSource:
    """Reload a run's model and its split's inputs, refusing if either changed since ingest."""
    runs = store.query("runs")
    row = runs[runs["run"] == run]
    if row.empty:
        raise no_such_run(run)
    if row["history_only"].eq(True).iloc[0]:
        raise history_only_run(run)
    meta = row.iloc[0]
    if not os.path.isfile(meta["model"]):
        raise ApdError(f"the model of run {run!r} is gone: {meta['model']}")
    if file_hash(meta["model"]) != meta["model_hash"]:
        raise ApdError(f"the model file {meta['model']} changed since run {run!r} was ingested: re-ingest it")
    data = load_dataset(meta["dataset"], meta["split"], data_dir)
    if len(data) != meta["instances"]:
        raise ApdError(f"dataset {meta['dataset']}/{meta['split']} has {len(data)} instances, "
                       f"run {run!r} has {meta['instances']}: re-ingest it")
    return RunSource(run, load_model(meta["model"], meta["factory"] or None), data)


def anchored_plane(
    data: Dataset, anchors: list[int], scale: float = 1.2, box: list[float] | None = None
) -> tuple[list[int], Plane]:
    """The plane through three of a dataset's instances (checked indices, ApdError if bad)."""
    try:
        idx = check_anchor_indices(anchors, len(data))
        return idx, plane_from_anchors(*data.x[idx], scale=scale, box=box)
    except ValueError as exc:
        raise ApdError(str(exc)) from None


def plane_partition(model: nn.Module, plane: Plane, device: str = "auto", decision: bool = False,
                    progress: bool = False) -> Partition:
    """Exact partition of `plane`'s box for `model`; engine refusals become ApdError."""
    try:
        return partition(model, plane, device=device, decision=decision, progress=progress)
    except ValueError as exc:
        raise ApdError(str(exc)) from None


def plane_node(uid: str, run: str, anchors: list[int], data: Dataset, plane: Plane, scale: float,
               regions: int) -> dict:
    """A Plane node: the anchors, their dataset/split and the box rebuild the plane exactly."""
    umin, umax, vmin, vmax = plane.box
    return {"uid": uid, "run": run, "anchors": ",".join(map(str, anchors)), "dataset": data.name,
            "split": data.split, "scale": scale, "umin": umin, "umax": umax, "vmin": vmin, "vmax": vmax,
            "box_area": plane.box_area, "regions": regions}


def plane_regions(
    store: Store,
    run: str,
    anchors: list[int],
    device: str = "auto",
    scale: float = 1.2,
    box: list[float] | None = None,
    data_dir: str | os.PathLike | None = None,
    save: bool = False,
    progress: bool = False,
) -> dict:
    """Exact partition of the plane through three of the run's instances: counts and area.

    save: also store the plane as a Plane node of the run (kept if that plane is there already).
    """
    src = run_source(store, run, data_dir)
    idx, plane = anchored_plane(src.data, anchors, scale, box)
    part = plane_partition(src.model, plane, device, progress=progress)
    labels = np.bincount(part.label.cpu().numpy(), minlength=src.data.classes)
    out = {
        "run": run,
        "anchors": idx,
        "anchor_labels": src.data.y[idx].tolist(),
        **part.summary(),
        "box_area": part.plane.box_area,
        "regions_by_predicted_class": labels.tolist(),
        "device": str(device),
    }
    if save:
        box_key = ",".join(f"{b:.12g}" for b in plane.box)
        uid = f"{run}:plane:{'-'.join(map(str, idx))}@{box_key}"
        if uid not in set(store.query("planes", run=run)["uid"]):
            node = plane_node(uid, run, idx, src.data, plane, scale, part.count)
            store.write(run, nodes={"Plane": pd.DataFrame([node])})
        out["plane"] = uid
    return out


def run_geometry(
    store: Store,
    run: str,
    device: str = "auto",
    with_inradius: bool = False,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Distance to the region boundary (and inradius within the data's range) for every
    instance of a run, written to `Instance.boundary_dist` / `Instance.inradius`."""
    src = run_source(store, run, data_dir)
    x = src.data.x
    try:
        dist = boundary_distance(src.model, x, device=device, progress=progress).numpy()
        table = pd.DataFrame({"idx": np.arange(len(x)), "label": src.data.y, "boundary_dist": dist})
        if with_inradius:
            box = (float(x.min()), float(x.max()))
            radii = [inradius(src.model, chunk, box=box, device=device).radius
                     for chunk in tqdm(np.array_split(x, max(1, len(x) // 64)), desc="inradius", disable=not progress)]
            table["inradius"] = np.concatenate(radii)
    except ValueError as exc:
        raise ApdError(str(exc)) from None
    updates = table.drop(columns=["idx", "label"]).assign(uid=run + ":i:" + table["idx"].astype(str))
    store.write(run, updates={"Instance": updates})
    return table


def run_segment(
    store: Store, run: str, ends: list[int], device: str = "auto", data_dir: str | os.PathLike | None = None
) -> dict:
    """Regions crossed along the segment between two of the run's instances (exact)."""
    src = run_source(store, run, data_dir)
    if len(ends) != 2 or not all(0 <= i < len(src.data) for i in ends):
        raise ApdError(f"--segment takes two instance indices in 0..{len(src.data) - 1}, got {ends}")
    if ends[0] == ends[1]:  # as --anchors must be distinct: a zero-length segment is a typo, not a question
        raise ApdError(f"--segment takes two distinct instances, got {ends}")
    seg = segment_regions(src.model, src.data.x[ends[0]], src.data.x[ends[1]], device=device)
    return {"run": run, "segment": ends, "regions": seg.count, "length": float(np.linalg.norm(
        src.data.x[ends[1]].astype(np.float64) - src.data.x[ends[0]]))}
