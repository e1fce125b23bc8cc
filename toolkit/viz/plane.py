"""Plane partitions as pictures: regions as polygons, the decision boundary, the three
anchors, and optionally a class's blanket in red with its specialization s.

Drawn with matplotlib (pure Python, PNG or SVG) so that it needs no browser; the
padded vertex rings of a Partition go to one PolyCollection as they are (padding repeats
vertex 0, which draws nothing), so 10^4-10^5 regions need no per-region Python.
"""
from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from toolkit.errors import ApdError  # noqa: E402
from toolkit.regions.partition import Partition  # noqa: E402
from toolkit.regions.plane import Plane  # noqa: E402
from toolkit.store import Store  # noqa: E402
from toolkit.viz import style  # noqa: E402

if TYPE_CHECKING:
    import torch

    from loaders.datasets import Dataset

FORMATS = (".png", ".svg")


@dataclass
class RunPlane:
    """A run's plane through three instances, partitioned with its decision boundary."""

    part: Partition
    anchors: list[int]
    anchor_labels: list[int]
    anchors_uv: np.ndarray  # [3, 2]


def run_plane(store: Store, run: str, anchors: list[int], device: str = "auto", scale: float = 1.2,
              data_dir: str | os.PathLike | None = None) -> RunPlane:
    """Partition the plane through three of the run's instances (model and data from the Run node)."""
    from toolkit.regions.runs import anchored_plane, run_source

    src = run_source(store, run, data_dir)
    idx, plane = anchored_plane(src.data, anchors, scale)
    return _drawn_plane(src.model, plane, idx, src.data, device)


def stored_plane(store: Store, run: str, index: int = 0, device: str = "auto",
                 data_dir: str | os.PathLike | None = None) -> RunPlane:
    """The run's `index`-th stored Plane node (uid order), rebuilt from its anchors and box as
    `apd mbh --planes-from` rebuilds it, partitioned by the run's model."""
    from toolkit.mbh.planes import saved_planes
    from toolkit.regions.runs import run_source

    spec = saved_planes(store, run, data_dir)[index]
    return _drawn_plane(run_source(store, run, data_dir).model, spec.plane, spec.anchors, spec.data, device)


def _drawn_plane(model: torch.nn.Module, plane: Plane, anchors: list[int], data: Dataset, device: str) -> RunPlane:
    from toolkit.regions.runs import plane_partition

    part = plane_partition(model, plane, device, decision=True)
    return RunPlane(part, anchors, data.y[anchors].tolist(), plane.project(data.x[anchors]))


def default_anchors(labels: np.ndarray, first: int | None = None) -> list[int]:
    """The first instance of three distinct labels (of `first`, then the two smallest others)."""
    uniq, where = np.unique(labels, return_index=True)
    if len(uniq) < 3:
        raise ApdError("a plane needs anchors of three distinct labels; this run has fewer")
    order = np.argsort(uniq != first, kind="stable") if first is not None else np.arange(len(uniq))
    return sorted(where[order[:3]].tolist())


def plane_picture(part: Partition, anchors_uv: np.ndarray, anchor_text: list[str], blanket: np.ndarray | None = None,
                  s: float | None = None, title: str = "", size: float = 6.5, dpi: int = 120) -> Figure:
    """Regions coloured one by one (grey outside the blanket when a bool mask over the regions
    is given, red inside), the decision boundary in black, the anchors marked."""
    head = title or f"{part.count} regions"
    if s is not None:
        head += f"  (blanket in red, s = {s:.3f})"
    head = textwrap.fill(head, int(size * 13))  # wrapped, and the figure grows per extra line: never clipped
    height = size + 0.18 * head.count("\n")
    fig = plt.figure(figsize=(size, height), dpi=dpi)
    ax = fig.add_axes((0.04, 0.04 * size / height, 0.92, 0.88 * size / height))
    n = part.count
    if blanket is None:
        colours = style.region_colours(n)
    else:
        mask = np.asarray(blanket, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"blanket mask has shape {mask.shape}, the partition has {n} regions")
        colours = style.grey_colours(n)
        colours[mask] = (*style.BLANKET_RGB, 1.0)
    ax.add_collection(PolyCollection(part.vertices.numpy(), facecolors=colours, edgecolors=colours,
                                     linewidths=0.3, antialiased=False))
    if part.decision is not None and len(part.decision.segments):
        ax.add_collection(LineCollection(part.decision.segments.numpy(), colors=style.BOUNDARY, linewidths=1.0))
    uv = np.asarray(anchors_uv, dtype=float)
    ax.scatter(uv[:, 0], uv[:, 1], s=46, c="white", edgecolors="black", linewidths=1.2, zorder=3)
    umin, umax, vmin, vmax = part.plane.box
    for (u, v), text in zip(uv, anchor_text):  # the label on the side facing the box's centre: never clipped
        right, top = u > (umin + umax) / 2, v > (vmin + vmax) / 2
        ax.annotate(text, (u, v), xytext=(-6 if right else 6, -6 if top else 6), textcoords="offset points",
                    ha="right" if right else "left", va="top" if top else "bottom", fontsize=9, zorder=4,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xlim(umin, umax)
    ax.set_ylim(vmin, vmax)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(head, fontsize=10)
    return fig


def picture_path(out: str | os.PathLike) -> Path:
    """`out` if a PNG / SVG can be written there: checked before the partition is computed."""
    from toolkit.paths import output_file

    return output_file(out, FORMATS)


def save_picture(fig: Figure, out: str | os.PathLike) -> Path:
    """Write PNG or SVG by suffix, through a temporary file so nothing half-written is left."""
    path = picture_path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format=path.suffix[1:].lower())
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for the HTML report), closing it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()
