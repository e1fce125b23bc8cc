"""Backward splitting (Craighero et al., Algorithm 1, as the authors' code runs it), on arrays.

The authors process a FIFO queue of (cluster, level). Popping a cluster at level l only
enqueues clusters at level l - 1, so the queue always holds the rest of one level followed
by the next one: it runs level by level ("waves"). Each cluster's fate depends only on its
own instances, so a wave can be processed for all its clusters at once with group-bys over
whole arrays. Cluster ids follow the FIFO's creation order: parents in id order, the
children of one parent in ascending pattern id.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EPS = 1e-12


@dataclass(frozen=True)
class SplitResult:
    """The splitting history and the final partition.

    clusters: one row per cluster, indexed by cid (0 = root, all instances, level L+1):
      parent (-1 for the root), level (the layer whose patterns define it), size,
      gain (information gain of its own split when it was examined, NaN when it never was:
      singletons and level-1 clusters), split (whether that gain was accepted), final.
    membership: [n, L+1] cluster id of every instance at levels L+1, L, ..., 1 (column j is
      level L+1-j), -1 below the level where its branch stopped.
    final_cluster: [n] the leaf each instance ends in.
    """

    clusters: pd.DataFrame
    membership: np.ndarray
    final_cluster: np.ndarray
    layers: int


def _entropy(group: np.ndarray, target: np.ndarray, n_groups: int, k: int) -> np.ndarray:
    """Base-2 entropy of the target counts within each group (groups 0..n_groups-1)."""
    pairs, counts = np.unique(group * k + target, return_counts=True)
    owner = pairs // k
    sizes = np.bincount(group, minlength=n_groups)
    p = counts / sizes[owner]
    return np.bincount(owner, weights=-p * np.log2(p), minlength=n_groups)


def split(pattern_ids: np.ndarray, target: np.ndarray, eps: float = EPS) -> SplitResult:
    """Split all instances backwards from the last hidden layer by their activation patterns.

    pattern_ids: [n, L] integer pattern id of each instance at hidden layers 1..L (ids need
    only be distinct within a layer). target: [n] labels whose entropy drives the gain
    (the predicted label in the papers).
    """
    pattern_ids = np.asarray(pattern_ids)
    n, n_layers = pattern_ids.shape
    if n == 0 or n_layers == 0:
        raise ValueError("split needs at least one instance and one layer")
    target = np.unique(np.asarray(target), return_inverse=True)[1].ravel()
    k = int(target.max()) + 1

    cap = 1 + n * n_layers  # each wave creates at most n clusters
    parent = np.full(cap, -1, dtype=np.int64)
    level = np.zeros(cap, dtype=np.int64)
    size = np.zeros(cap, dtype=np.int64)
    gain = np.full(cap, np.nan)
    accepted = np.zeros(cap, dtype=bool)
    final = np.zeros(cap, dtype=bool)
    level[0], size[0], count = n_layers + 1, n, 1
    membership = np.full((n, n_layers + 1), -1, dtype=np.int64)
    membership[:, 0] = 0
    current = np.zeros(n, dtype=np.int64)
    active = np.arange(n)  # instances whose cluster waits in the queue at this level
    for lvl in range(n_layers + 1, 1, -1):
        if active.size == 0:
            break
        cids, local = np.unique(current[active], return_inverse=True)
        pids, pattern = np.unique(pattern_ids[active, lvl - 2], return_inverse=True)
        keys, child = np.unique(local * len(pids) + pattern, return_inverse=True)
        child_parent = keys // len(pids)
        child_size = np.bincount(child)
        h_parent = _entropy(local, target[active], len(cids), k)
        h_children = _entropy(child, target[active], len(keys), k)
        weighted = np.bincount(child_parent, weights=child_size * h_children, minlength=len(cids))
        g = h_parent - weighted / np.bincount(local)
        ok = g > eps
        gain[cids], accepted[cids], final[cids] = g, ok, ~ok

        kept = ok[child_parent]
        new_ids = count + np.arange(int(kept.sum()))
        count += len(new_ids)
        child_id = np.full(len(keys), -1, dtype=np.int64)
        child_id[kept] = new_ids
        parent[new_ids] = cids[child_parent[kept]]
        level[new_ids] = lvl - 1
        size[new_ids] = child_size[kept]
        final[new_ids] = (size[new_ids] == 1) | (lvl - 1 == 1)

        moved = active[ok[local]]
        current[moved] = child_id[child[ok[local]]]
        membership[moved, n_layers + 2 - lvl] = current[moved]
        active = moved[~final[current[moved]]]

    keep = slice(0, count)
    clusters = pd.DataFrame(
        {"parent": parent[keep], "level": level[keep], "size": size[keep], "gain": gain[keep],
         "split": accepted[keep], "final": final[keep]}
    ).rename_axis("cid")
    return SplitResult(clusters=clusters, membership=membership, final_cluster=current, layers=n_layers)
