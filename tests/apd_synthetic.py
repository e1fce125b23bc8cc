"""Synthetic runs for the analytics tests and bench: pattern ids shaped like a trained
net's, for tests/apd_graph.py's `write_run`."""
from __future__ import annotations

import numpy as np


def hierarchical(n: int, layers: int, classes: int = 10, seed: int = 0, error_rate: float = 0.05):
    """(patterns [n, L], label, pred) shaped like a trained net's: patterns coarse and
    aligned with the prediction at the last layer, refining towards the first, with noise."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < error_rate, rng.integers(0, classes, n), label)
    patterns = np.empty((n, layers), dtype=np.int64)
    aligned = rng.random(n) < 0.8
    patterns[:, -1] = np.where(aligned, pred * 4 + rng.integers(0, 4, n), rng.integers(0, 4 * classes, n))
    for j in range(layers - 2, -1, -1):
        fan = 3 + (layers - 1 - j)
        noisy = rng.random(n) < 0.1
        refined = patterns[:, j + 1] * fan + rng.integers(0, fan, n)
        patterns[:, j] = np.where(noisy, rng.integers(0, 50 * fan, n), refined)
    return patterns, label, pred
