"""Maximal (decision) patterns per class: which last-hidden-layer neurons a class pins down.

For class P over its samples: the neurons whose state is constant form the base; then
neurons are added one by one at their majority state, in order of decreasing individual
coverage (the majority state's share: max(p, 1 - p) for two states), while the joint
coverage (share of P's samples satisfying every constraint so far) stays >= c_P; the first
neuron that would drop it below stops the search. Ties in individual coverage are all kept
(ordered by neuron index); a neuron whose individual coverage is below c_P can never be
added, since joint coverage never exceeds it. `greedy="joint"` instead picks, at each step,
the neuron that keeps the joint coverage highest.

Neither order depends on c_P, only the stopping point does: every coverage is a prefix of
one order, so one pass serves a whole coverage list and lower coverages give supersets of
constraints (nested blankets) by construction.

States are the stored ones: ReLU / LeakyReLU 0 (z <= 0) or 1 (z > 0, active); Hardtanh
0 (low), 1 (linear), 2 (high). A 3-state neuron is constrained to its majority state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from toolkit.errors import ApdError

GREEDY = ("individual", "joint")


@dataclass(frozen=True)
class MaximalPatterns:
    """required[k, c, i] = state neuron i must have for class classes[c] at coverages[k], -1 = free."""

    required: np.ndarray  # [K, C, h] int8
    joint: np.ndarray  # [K, C] joint coverage reached (share of the class's samples covered)
    base: np.ndarray  # [C] constant neurons of the class
    samples: np.ndarray  # [C] samples of the class
    classes: list[int]
    coverages: list[float]
    greedy: str

    @property
    def constraints(self) -> np.ndarray:
        """[K, C] number of constrained neurons."""
        return (self.required >= 0).sum(2)


def check_coverages(coverages: Sequence[float]) -> list[float]:
    """Coverages must lie in (0, 1]; duplicates are dropped, order kept."""
    out = [float(c) for c in coverages]
    bad = [c for c in out if not 0.0 < c <= 1.0]
    if not out or bad:
        raise ApdError(f"--coverage values must lie in (0, 1], got {bad or 'none'}")
    return list(dict.fromkeys(out))


def maximal_patterns(
    states: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int],
    coverages: Sequence[float],
    greedy: str = "individual",
    weights: np.ndarray | None = None,
) -> MaximalPatterns:
    """Maximal pattern of every class at every coverage.

    states: [N, h] int8 neuron states of N samples (or N distinct patterns with `weights`
    [N] giving how many samples of that label share the pattern); labels: [N] true labels.
    Raises ApdError for a coverage outside (0, 1] or a class without samples.
    """
    if greedy not in GREEDY:
        raise ApdError(f"--greedy must be one of {', '.join(GREEDY)}, got {greedy!r}")
    coverages = check_coverages(coverages)
    states = np.asarray(states, dtype=np.int8)
    labels = np.asarray(labels)
    w_all = np.ones(len(states), dtype=np.int64) if weights is None else np.asarray(weights, dtype=np.int64)
    n_states = int(states.max()) + 1 if states.size else 2
    onehot = states[:, :, None] == np.arange(max(n_states, 2), dtype=np.int8)  # [N, h, S]
    h = states.shape[1]
    required = np.full((len(coverages), len(classes), h), -1, dtype=np.int8)
    joint = np.zeros((len(coverages), len(classes)))
    base = np.zeros(len(classes), dtype=np.int64)
    samples = np.zeros(len(classes), dtype=np.int64)
    for c, cls in enumerate(classes):  # a handful of classes; everything inside is vectorised
        rows = labels == cls
        w = w_all[rows]
        total = int(w.sum())
        if total == 0:
            raise ApdError(f"class {cls} has no samples in this run")
        samples[c] = total
        counts = np.einsum("n,nhs->hs", w, onehot[rows].astype(np.int64))  # [h, S] exact integer counts
        major = counts.argmax(1).astype(np.int8)
        top = counts.max(1)
        constant = top == total
        base[c] = int(constant.sum())
        sat = states[rows] == major  # [n, h] sample satisfies the neuron's majority state
        order, curve = _order(sat, w, top, constant, greedy)
        curve = curve / total
        for k, cov in enumerate(coverages):
            # joint coverage is non-increasing along the order: the prefix is where it stays >= c_P
            keep = int(np.searchsorted(-curve, -cov, side="right"))
            chosen = order[:keep]
            required[k, c, chosen] = major[chosen]
            joint[k, c] = curve[keep - 1] if keep else 1.0
    return MaximalPatterns(required, joint, base, samples, list(classes), coverages, greedy)


def _order(sat: np.ndarray, w: np.ndarray, top: np.ndarray, constant: np.ndarray, greedy: str):
    """Neuron order and the joint covered weight after each step (non-increasing)."""
    if greedy == "individual":
        order = np.lexsort((np.arange(len(top)), -top))  # decreasing coverage, ties by index, none dropped
        covered = np.logical_and.accumulate(sat[:, order], axis=1)
        return order, w @ covered
    # joint: base first (it never lowers coverage), then the best next neuron each step
    base = np.flatnonzero(constant)
    rest = list(np.flatnonzero(~constant))
    order, curve = list(base), [int(w.sum())] * len(base)
    alive = np.ones(len(w), dtype=bool)
    sat_f = sat.astype(np.int64)
    while rest:
        gain = (w * alive) @ sat_f[:, rest]  # covered weight if each candidate were added
        best = int(np.argmax(gain))  # first max: ties go to the lower neuron index
        j = rest.pop(best)
        alive &= sat[:, j]
        order.append(j)
        curve.append(int(gain[best]))
    return np.asarray(order, dtype=np.int64), np.asarray(curve, dtype=np.float64)
