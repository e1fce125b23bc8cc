"""Timing helper shared by the bench scripts."""
from __future__ import annotations

import time
from typing import Callable


def best(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    """Smallest wall time of `repeat` calls (the least disturbed by other processes), and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out
