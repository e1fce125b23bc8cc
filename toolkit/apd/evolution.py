"""How the number of distinct patterns per layer changes in training: across snapshot runs,
or from the Epoch nodes `apd train --record-every` stores (no snapshot files needed)."""
from __future__ import annotations

from fnmatch import fnmatchcase

import pandas as pd

from toolkit.errors import ApdError, no_such_run
from toolkit.store import Store
from toolkit.store.base import StoreError


def evolution(store: Store, runs: str) -> pd.DataFrame:
    """One row per run matching the glob `runs`, ordered by epoch: epoch, accuracy, patterns per layer."""
    all_runs = store.query("runs")
    matched = all_runs["run"].map(lambda r: fnmatchcase(r, runs))
    chosen = all_runs[matched & ~all_runs["history_only"].eq(True)]  # training-history runs have no patterns
    if chosen.empty:
        raise ApdError(f"no run matches {runs!r} (`apd runs` lists them)")
    counts = store.query("pattern_counts", runs=chosen["run"].tolist())
    wide = counts.pivot(index="run", columns="layer", values="patterns").fillna(0).astype("int64")
    wide.columns = [f"layer_{c}" for c in wide.columns]
    table = chosen[["run", "epoch", "instances", "accuracy"]].merge(wide.reset_index(), on="run", how="left")
    return table.sort_values(["epoch", "run"], ignore_index=True)


def epoch_table(store: Store, run: str) -> pd.DataFrame:
    """One row per recorded epoch of `run`: epoch, split, instances, loss, accuracy, patterns per layer."""
    try:
        rows = store.query("epochs", run=run)
    except StoreError as exc:  # a store made before Epoch nodes existed has no Epoch table
        if "Epoch does not exist" not in str(exc):
            raise
        rows = pd.DataFrame()
    if rows.empty and run not in set(store.query("runs")["run"]):
        raise no_such_run(run)
    if rows.empty:
        raise ApdError(f"run {run!r} has no recorded epochs: train it with `apd train --record-every N --run {run}`")
    wide = rows.pivot(index="epoch", columns="layer", values="patterns").astype("int64")
    wide.columns = [f"layer_{c}" for c in wide.columns]
    meta = rows.drop_duplicates("epoch").set_index("epoch")[["split", "instances", "loss", "accuracy"]]
    return meta.join(wide).reset_index().sort_values("epoch", ignore_index=True)
