"""Planes for MBH: random ones through three samples of three distinct classes, or another
run's stored planes, so that networks (and snapshots of one network) meet identical planes."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from loaders.datasets import Dataset, load_dataset
from toolkit.errors import ApdError
from toolkit.regions.plane import Plane
from toolkit.regions.runs import anchored_plane
from toolkit.store import Store


@dataclass(frozen=True)
class PlaneSpec:
    """A plane and where it came from: anchor indices into `data`, and the box scale."""

    anchors: list[int]
    plane: Plane
    data: Dataset
    scale: float


def random_anchors(labels: np.ndarray, n: int, seed: int = 0) -> list[list[int]]:
    """n anchor triples, each three samples of three distinct random classes; the first
    planes of a seed are the same whatever n."""
    classes = np.unique(labels)
    if len(classes) < 3:
        raise ApdError(f"random planes need samples of 3 classes, the run has {len(classes)}")
    if n < 1:
        raise ApdError(f"--planes must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], classes)
    sizes = np.bincount(np.searchsorted(classes, labels), minlength=len(classes))
    draws = rng.random((n, len(classes) + 3))  # one row per plane: more planes extend, never reshuffle
    picked = np.argsort(draws[:, :-3], axis=1)[:, :3]  # 3 distinct classes per plane
    offsets = (draws[:, -3:] * sizes[picked]).astype(np.int64)  # one random sample of each
    return order[starts[picked] + offsets].tolist()


def random_planes(data: Dataset, n: int, seed: int = 0, scale: float = 1.2) -> list[PlaneSpec]:
    """n random planes over `data` (see random_anchors)."""
    return [anchor_plane(data, a, scale) for a in random_anchors(data.y, n, seed)]


def anchor_plane(data: Dataset, anchors: list[int], scale: float = 1.2, box: list[float] | None = None) -> PlaneSpec:
    idx, plane = anchored_plane(data, anchors, scale, box)
    return PlaneSpec(idx, plane, data, scale)


def saved_planes(store: Store, run: str, data_dir: str | os.PathLike | None = None) -> list[PlaneSpec]:
    """The Plane nodes of `run`, rebuilt from their anchors, dataset/split and box."""
    rows = store.query("planes", run=run)
    if rows.empty:
        raise ApdError(f"run {run!r} has no stored planes: run `apd mbh --run {run}` or `apd regions --save` first")
    datasets: dict[tuple[str, str], Dataset] = {}
    specs = []
    for row in rows.itertuples():
        key = (row.dataset, row.split)
        if key not in datasets:
            datasets[key] = load_dataset(row.dataset, row.split, data_dir)
        anchors = [int(a) for a in row.anchors.split(",")]
        specs.append(anchor_plane(datasets[key], anchors, row.scale, [row.umin, row.umax, row.vmin, row.vmax]))
    return specs
