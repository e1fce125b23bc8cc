"""Where the hard instances are: errors and forgetting events against final-cluster size, and
stable vs unstable patterns per layer (the papers' analyses, as tables).

Small final clusters are the "hard" regions of the APD: these tables say how much of the
errors and forgetting events they hold. Read from the graph after `apd split`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit.apd.runs import run_layers
from toolkit.errors import ApdError
from toolkit.store import Store

SHARE = 0.9  # the cumulative share of errors / forgetting events reported as a cluster size


@dataclass(frozen=True)
class Hardness:
    by_size: pd.DataFrame  # per log2 bin of final-cluster size
    stability: pd.DataFrame  # per layer: stable / unstable patterns with instances and errors
    summary: dict


def log2_bin(sizes: np.ndarray) -> np.ndarray:
    """floor(log2(size)) for positive integer sizes, exact (no float log rounding)."""
    return np.frexp(np.asarray(sizes))[1] - 1


def size_bins(sizes: pd.DataFrame) -> pd.DataFrame:
    """Per-size rows (size, clusters, instances, errors, forgetting) -> per log2 bin with shares."""
    b = log2_bin(sizes["size"].to_numpy())
    out = sizes.assign(bin=b).groupby("bin").agg(
        clusters=("clusters", "sum"), instances=("instances", "sum"),
        errors=("errors", "sum"), forgetting=("forgetting", "sum")).reset_index()
    out.insert(1, "size_min", 2 ** out["bin"])
    out.insert(2, "size_max", 2 ** (out["bin"] + 1) - 1)
    out["correct"] = out["instances"] - out["errors"]
    for col in ("correct", "errors", "forgetting"):
        total = out[col].sum()
        out[f"{col}_share"] = out[col] / total if total else 0.0
    out["errors_cum"] = out["errors_share"].cumsum()
    out["forgetting_cum"] = out["forgetting_share"].cumsum()
    return out.drop(columns="bin")


def size_at_share(sizes: pd.DataFrame, column: str, share: float = SHARE) -> int | None:
    """Smallest cluster size s such that clusters of size <= s hold `share` of `column`."""
    total = sizes[column].sum()
    if total == 0:
        return None
    cum = sizes[column].cumsum().to_numpy() / total
    return int(sizes["size"].to_numpy()[np.argmax(cum >= share - 1e-12)])


def _median_size(sizes: pd.DataFrame, weights: pd.Series) -> float | None:
    """Median final-cluster size over the instances counted by `weights` (per size row)."""
    w = weights.to_numpy()
    return float(np.median(np.repeat(sizes["size"].to_numpy(), w))) if w.sum() else None


def stability_table(rows: pd.DataFrame) -> pd.DataFrame:
    """`pattern_stability` rows (layer, stable, patterns, instances, errors) -> one row per layer."""
    wide = rows.assign(kind=np.where(rows["stable"].astype(bool), "stable", "unstable")).pivot_table(
        index="layer", columns="kind", values=["patterns", "instances", "errors"], aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([["patterns", "instances", "errors"], ["stable", "unstable"]]),
                        fill_value=0)
    wide.columns = [f"{kind}_{what}" for what, kind in wide.columns]
    return wide.astype("int64").reset_index()


def hardness(store: Store, run: str) -> Hardness:
    """Hardness tables of a split run; ApdError if it has not been split."""
    run_layers(store, run)
    sizes = store.query("cluster_sizes", run=run)
    if sizes.empty:
        raise ApdError(f"run {run!r} has no clusters: run `apd split --run {run}` first")
    errors = sizes["errors"]
    summary = {
        "instances": int(sizes["instances"].sum()),
        "errors": int(errors.sum()),
        "forgetting_events": int(sizes["forgetting"].sum()),
        "final_clusters": int(sizes["clusters"].sum()),
        f"size_{int(SHARE * 100)}_errors": size_at_share(sizes, "errors"),
        f"size_{int(SHARE * 100)}_forgetting": size_at_share(sizes, "forgetting"),
        f"size_{int(SHARE * 100)}_instances": size_at_share(sizes, "instances"),
        "median_size_correct": _median_size(sizes, sizes["instances"] - errors),
        "median_size_wrong": _median_size(sizes, errors),
    }
    return Hardness(size_bins(sizes), stability_table(store.query("pattern_stability", run=run)), summary)
