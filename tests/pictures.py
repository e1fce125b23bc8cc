"""Pixels of the plane pictures, as the picture tests count them: the pixels inside the axes'
box and which of them are the blanket's red (the red share of a picture is 1 - s)."""
from __future__ import annotations

import numpy as np
from matplotlib.transforms import Bbox

from toolkit.viz.style import BLANKET_RGB

RED = np.rint(np.array(BLANKET_RGB) * 255)  # 0-255 channels


def box_pixels(rgb: np.ndarray, extent: Bbox) -> np.ndarray:
    """The pixels of a picture (rows top down) inside an axes' window extent (display
    coordinates: y up from the picture's bottom), one pixel trimmed on each side, where
    the box's edge is drawn."""
    h = rgb.shape[0]
    return rgb[h - int(np.floor(extent.y1)) + 1:h - int(np.ceil(extent.y0)) - 1,
               int(np.ceil(extent.x0)) + 1:int(np.floor(extent.x1)) - 1]


def blanket_red(pixels: np.ndarray, tol: int) -> np.ndarray:
    """Which RGB pixels (0-255) are the blanket's red, within `tol` on every channel."""
    return (np.abs(pixels - RED) <= tol).all(-1)
