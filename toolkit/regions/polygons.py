"""Batched convex polygons: padded vertex rings [n, M, 2] with counts [n].

Padding slots repeat vertex 0, so min/max of an affine function over the ring and the
shoelace area need no masks; only cuts look at the counts.
"""
from __future__ import annotations

import torch

SNAP = 1e-12  # |z| <= SNAP * (scale of z over the box) counts as exactly 0


def valid_mask(counts: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=counts.device) < counts[:, None]


def repad(verts: torch.Tensor, counts: torch.Tensor, width: int) -> torch.Tensor:
    """Trim or extend rings to `width` slots, padding with vertex 0."""
    n, m, _ = verts.shape
    if width <= m:
        verts = verts[:, :width]
    else:
        verts = torch.cat([verts, verts[:, :1].expand(n, width - m, 2)], 1)
    return torch.where(valid_mask(counts, width)[..., None], verts, verts[:, :1])


def areas(verts: torch.Tensor) -> torch.Tensor:
    """Shoelace areas (counter-clockwise positive), relative to vertex 0 for accuracy."""
    p = verts - verts[:, :1]
    q = torch.roll(p, -1, 1)
    return 0.5 * (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(1)


def centroids(verts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Vertex means: strictly interior points of non-degenerate convex polygons."""
    mask = valid_mask(counts, verts.shape[1])[..., None]
    return (verts * mask).sum(1) / counts[:, None].to(verts.dtype)


def cut(verts: torch.Tensor, counts: torch.Tensor, z: torch.Tensor):
    """Split every polygon by the zero line of an affine function with vertex values z.

    z must already be snapped (|z| <= tol set to 0): a zero vertex goes to both sides
    unchanged, and new vertices appear only on edges whose ends have strictly opposite
    signs. Returns (pos_verts, pos_counts, neg_verts, neg_counts), rings of width M + 1;
    a side with no vertex of that sign may come back with fewer than 3 vertices.
    """
    n, m, _ = verts.shape
    w = m + 1
    valid = valid_mask(counts, m)
    # padding repeats vertex 0, so rolling closes every ring at its last valid vertex
    zn = torch.roll(z, -1, 1)
    vn = torch.roll(verts, -1, 1)
    crossing = valid & (((z > 0) & (zn < 0)) | ((z < 0) & (zn > 0)))
    t = torch.where(crossing, z / torch.where(crossing, z - zn, torch.ones_like(z)), torch.zeros_like(z))
    x = verts + t[..., None] * (vn - verts)
    rows = torch.arange(n, device=z.device)[:, None] * w
    dump = n * w
    out = []
    for keep in (valid & (z >= 0), valid & (z <= 0)):
        per_edge = keep.long() + crossing.long()
        start = torch.cumsum(per_edge, 1) - per_edge
        flat = torch.empty(dump + 1, 2, dtype=verts.dtype, device=verts.device)
        flat[torch.where(keep, rows + start, dump).reshape(-1)] = verts.reshape(-1, 2)
        flat[torch.where(crossing, rows + start + keep.long(), dump).reshape(-1)] = x.reshape(-1, 2)
        cnt = per_edge.sum(1)
        ring = flat[:dump].view(n, w, 2)
        out += [torch.where(valid_mask(cnt, w)[..., None], ring, ring[:, :1]), cnt]
    return tuple(out)
