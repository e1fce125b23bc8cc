"""A 2D plane in input space, spanned by three samples, with a square box on it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Plane:
    """x(u, v) = origin + u * basis[0] + v * basis[1], over box (umin, umax, vmin, vmax)."""

    origin: np.ndarray  # [d] float64
    basis: np.ndarray  # [2, d] float64, orthonormal rows
    box: tuple[float, float, float, float]

    @property
    def box_area(self) -> float:
        umin, umax, vmin, vmax = self.box
        return (umax - umin) * (vmax - vmin)

    def to_input(self, uv: np.ndarray) -> np.ndarray:
        """Plane coordinates [..., 2] -> input points [..., d]."""
        return self.origin + np.asarray(uv, dtype=np.float64) @ self.basis

    def project(self, x: np.ndarray) -> np.ndarray:
        """Input points [..., d] -> plane coordinates [..., 2] (orthogonal projection)."""
        return (np.asarray(x, dtype=np.float64) - self.origin) @ self.basis.T

    def to_dict(self) -> dict:
        return {"origin": self.origin.tolist(), "basis": self.basis.tolist(), "box": list(self.box)}


def plane_from_anchors(
    x0: np.ndarray,
    x1: np.ndarray,
    x2: np.ndarray,
    scale: float = 1.2,
    box: Sequence[float] | None = None,
) -> Plane:
    """Plane through three inputs (DESIGN.md section 1).

    Origin = x0; basis = Gram-Schmidt of (x1 - x0, x2 - x0); box = square centred on the
    three points' mean (plane coordinates) with half-side `scale` x their largest offset
    from that mean, unless `box` = (umin, umax, vmin, vmax) is given.
    """
    x0, x1, x2 = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (x0, x1, x2))
    if not (x0.shape == x1.shape == x2.shape):
        raise ValueError(f"anchors have different sizes: {x0.size}, {x1.size}, {x2.size}")
    if not np.all(np.isfinite(np.stack([x0, x1, x2]))):
        raise ValueError("anchors contain NaN or inf")
    e1 = x1 - x0
    n1 = np.linalg.norm(e1)
    e2 = x2 - x0
    if n1 == 0.0:
        raise ValueError("anchors are collinear")
    b1 = e1 / n1
    e2 = e2 - (e2 @ b1) * b1
    e2 = e2 - (e2 @ b1) * b1  # second pass: orthogonal to machine precision
    n2 = np.linalg.norm(e2)
    if n2 <= 1e-10 * max(n1, np.linalg.norm(x2 - x0)):
        raise ValueError("anchors are collinear")
    basis = np.stack([b1, e2 / n2])
    if box is None:
        pts = (np.stack([x0, x1, x2]) - x0) @ basis.T
        centre = pts.mean(0)
        half = scale * float(np.linalg.norm(pts - centre, axis=1).max())  # Python floats overflow to inf quietly
        if not math.isfinite((2 * half) * (2 * half)):
            raise ValueError(f"scale {scale:g} makes the box's area overflow float64: use a smaller --scale")
        box = (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)
    box = tuple(float(b) for b in box)
    if len(box) != 4 or not (box[0] < box[1] and box[2] < box[3]) or not np.isfinite(box).all():
        raise ValueError(f"box must be finite (umin, umax, vmin, vmax) with umin < umax and vmin < vmax, got {box}")
    if not math.isfinite((box[1] - box[0]) * (box[3] - box[2])):
        raise ValueError(f"box {box} is too large: its area overflows float64")
    return Plane(x0, basis, box)


def check_anchor_indices(indices: Sequence[int], n: int) -> list[int]:
    """Validate three distinct anchor indices into a dataset of n instances."""
    idx = [int(i) for i in indices]
    if len(idx) != 3:
        raise ValueError(f"need exactly 3 anchor indices, got {len(idx)}")
    for i in idx:
        if not 0 <= i < n:
            raise ValueError(f"anchor index {i} out of range (0..{n - 1})")
    if len(set(idx)) != 3:
        raise ValueError(f"anchor indices must be distinct, got {idx}")
    return idx
