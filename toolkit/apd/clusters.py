"""Backward splitting of a stored run, written back as Cluster nodes, IN and SPLIT_INTO edges.

Each instance gets one IN edge, to its final cluster (also `Instance.cluster`); the
clusters above it are reached through SPLIT_INTO, whose `gain` is the information gain of
the parent's split.
"""
from __future__ import annotations

from dataclasses import dataclass

import igraph as ig
import numpy as np
import pandas as pd

from toolkit.apd.hardness import log2_bin
from toolkit.apd.runs import read_patterns
from toolkit.apd.splitting import EPS, SplitResult, split
from toolkit.errors import ApdError
from toolkit.store import Store

TARGETS = ("pred", "label")


@dataclass(frozen=True)
class SplitSummary:
    run: str
    target: str
    clusters: pd.DataFrame  # the Cluster nodes written, by cid
    history: dict  # statistics of the splitting tree
    levels: pd.DataFrame  # per level: clusters, final, singletons, mean purity


def cluster_table(result: SplitResult, pred: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """Per cluster: size, level, layers, purity and majority of the predicted label, share correct, final."""
    cid = result.membership.ravel()
    member = cid >= 0
    inst = np.repeat(np.arange(len(pred)), result.membership.shape[1])[member]
    cid = cid[member]
    n_clusters = len(result.clusters)
    values, code = np.unique(pred, return_inverse=True)
    pairs, counts = np.unique(cid * len(values) + code.ravel()[inst], return_counts=True)
    owner, label = pairs // len(values), pairs % len(values)
    order = np.lexsort((label, -counts, owner))  # per cluster: largest count, then smallest label
    best = order[np.unique(owner[order], return_index=True)[1]]
    size = np.bincount(cid, minlength=n_clusters)
    layers_of = {lvl: "-".join(map(str, range(lvl, result.layers + 1))) for lvl in range(1, result.layers + 2)}
    c = result.clusters
    return pd.DataFrame({
        "cid": c.index.to_numpy(),
        "size": size,
        "purity": counts[best] / size,
        "correct": np.bincount(cid, weights=correct[inst].astype(float), minlength=n_clusters) / size,
        "level": c["level"].to_numpy(),
        "layers": c["level"].map(layers_of).to_numpy(),
        "label": values[label[best]],
        "final": c["final"].to_numpy(),
        "parent": c["parent"].to_numpy(),
        "gain": c["gain"].to_numpy(),
    })


def history_stats(result: SplitResult) -> tuple[dict, pd.DataFrame]:
    """The splitting tree (igraph): depth, leaves, leaf-size distribution, and a per-level table."""
    c = result.clusters
    child = np.flatnonzero(c["parent"].to_numpy() >= 0)
    tree = ig.Graph(n=len(c), edges=np.column_stack([c["parent"].to_numpy()[child], child]).tolist(), directed=True)
    depth = np.asarray(tree.distances(source=0, mode="out")[0])
    leaves = np.asarray(tree.outdegree()) == 0
    leaf_sizes = c["size"].to_numpy()[leaves]
    bins = log2_bin(leaf_sizes)
    dist = pd.Series(bins).value_counts().sort_index()
    stats = {
        "clusters": len(c),
        "leaves": int(leaves.sum()),
        "depth": int(depth.max()),
        "singletons": int((leaf_sizes == 1).sum()),
        "largest_leaf": int(leaf_sizes.max()),
        "median_leaf": float(np.median(leaf_sizes)),
        "leaf_sizes": {f"{2**b}-{2**(b + 1) - 1}" if b else "1": int(k) for b, k in dist.items()},
    }
    levels = c.assign(singleton=c["size"] == 1).groupby("level", sort=False).agg(
        clusters=("size", "size"), final=("final", "sum"), singletons=("singleton", "sum"),
        instances=("size", "sum"), split=("split", "sum"),
    ).reset_index()
    return stats, levels


def split_run(store: Store, run: str, target: str = "pred", eps: float = EPS) -> SplitSummary:
    """Backward-split a stored run and replace its clusters in the graph."""
    if target not in TARGETS:
        raise ApdError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    data = read_patterns(store, run)
    result = split(data.patterns, data.pred if target == "pred" else data.label, eps=eps)
    table = cluster_table(result, data.pred, data.correct)
    uid = run + ":c:" + table["cid"].astype(str)
    inst_uid = run + ":i:" + pd.Series(data.idx).astype(str)
    nodes = table.drop(columns=["parent", "gain"]).assign(uid=uid, run=run)
    kids = table["parent"] >= 0
    split_into = pd.DataFrame({"src": uid[table["parent"][kids]].to_numpy(), "dst": uid[kids].to_numpy(),
                               "gain": table["gain"][table["parent"][kids]].to_numpy()})
    member = pd.DataFrame({"src": inst_uid, "dst": uid[result.final_cluster].to_numpy()})
    store.write(run, {"Cluster": nodes}, {"IN": member, "SPLIT_INTO": split_into}, replace=["Cluster"],
                updates={"Instance": pd.DataFrame({"uid": inst_uid, "cluster": result.final_cluster})})
    stats, levels = history_stats(result)
    return SplitSummary(run, target, table, stats, levels)
