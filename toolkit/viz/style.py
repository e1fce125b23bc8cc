"""Shared colours, so every picture of the report speaks the same visual language."""
from __future__ import annotations

import numpy as np

CORRECT = "#4c78a8"  # instances, flows and links without errors
ERROR = "#d62728"  # errors, and the blanket on plane pictures
FORGETTING = "#f58518"
INSTANCES = "#54a24b"
OTHER = "#bab0ac"  # the "other" bucket of a capped Sankey column
BLANKET_RGB = (0.84, 0.15, 0.16)  # ERROR as an RGB triple for matplotlib
BOUNDARY = "#111111"

_OK = np.array([76, 120, 168], dtype=float)
_BAD = np.array([214, 39, 40], dtype=float)


def error_colours(share: np.ndarray, alpha: float = 0.45) -> list[str]:
    """rgba strings from blue (no errors) to red (all errors), one per share in [0, 1]."""
    s = np.clip(np.asarray(share, dtype=float), 0.0, 1.0)[:, None]
    rgb = np.rint((1 - s) * _OK + s * _BAD).astype(int)
    return [f"rgba({r},{g},{b},{alpha})" for r, g, b in rgb]


def region_colours(n: int, seed: int = 0) -> np.ndarray:
    """[n, 4] RGBA: light, well-spread colours so neighbouring regions differ (none reads as red)."""
    rng = np.random.default_rng(seed)
    hue = rng.permutation(n) / max(n, 1)
    hue = 0.12 + 0.7 * hue  # skip the reds (hue near 0 / 1): red is kept for the blanket
    sat = 0.35 + 0.25 * rng.random(n)
    val = 0.80 + 0.15 * rng.random(n)
    return _hsv_to_rgba(hue, sat, val)


def grey_colours(n: int, seed: int = 0) -> np.ndarray:
    """[n, 4] RGBA light greys: regions outside a blanket, so red stands out."""
    v = 0.78 + 0.17 * np.random.default_rng(seed).random(n)
    return np.column_stack([v, v, v, np.ones(n)])


def _hsv_to_rgba(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    rgb = table[i, np.arange(len(h))]
    return np.column_stack([rgb, np.ones(len(h))])
