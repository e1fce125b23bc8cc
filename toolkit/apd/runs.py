"""What the analytics read from a run: its shape, and every instance's pattern per layer."""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd

from toolkit.errors import ApdError, no_such_run
from toolkit.store import Store


@dataclass(frozen=True)
class RunPatterns:
    """Instances of a run in `idx` order, with integer pattern ids per hidden layer.

    frame keeps the rows as the query returned them (idx, layer, key, label, pred, correct)
    for group-bys that need the keys themselves.
    """

    idx: np.ndarray
    patterns: np.ndarray  # [n, L] int, distinct ids within a layer
    label: np.ndarray
    pred: np.ndarray
    correct: np.ndarray
    frame: pd.DataFrame


def history_only_run(run: str) -> ApdError:
    """The one wording for a run of `apd train --record-every` asked for what needs instances."""
    return ApdError(f"run {run!r} holds only training history (Epoch nodes, no instances): "
                    f"`apd evolution --run {run}` reads it; `apd ingest MODEL --run {run}` adds its instances")


def coarse_source(store: Store, run: str) -> str:
    """The run a coarse APD (`apd coarsen`) was derived from; "" for an ingested run."""
    frame = store.query("coarse_source", run=run)
    return str(frame["source"].iloc[0]) if len(frame) else ""


def snapshot_runs(store: Store, glob: str, also: str | None = None) -> list[str]:
    """Runs matching `glob` (and `also`), ordered by epoch then name.

    The epoch is the Run node's (an ingested snapshot takes it from its checkpoint); runs
    without one come last. Sorted as numbers, so epoch 10 follows epoch 9."""
    runs = store.query("runs")
    chosen = runs[[fnmatchcase(r, glob) or r == also for r in runs["run"]]]
    if not chosen["run"].map(lambda r: fnmatchcase(r, glob)).any():
        raise ApdError(f"no run matches {glob!r} (`apd runs` lists them)")
    epoch = pd.to_numeric(chosen["epoch"], errors="coerce")
    return chosen.assign(epoch=epoch).sort_values(["epoch", "run"], na_position="last")["run"].tolist()


def run_layers(store: Store, run: str) -> int:
    """The run's number of hidden layers L; ApdError for an unknown run or one without instances
    (a run of `apd train --record-every` holds Epoch nodes only: every analytic that reads
    instances says so in one line through here)."""
    meta = store.query("run_meta", run=run)
    if meta.empty:
        raise no_such_run(run)
    if meta["history_only"].eq(True).iloc[0]:
        raise history_only_run(run)
    if int(meta["instances"].iloc[0]) == 0:
        raise ApdError(f"run {run!r} has no instances: ingest it again with `apd ingest`")
    return int(meta["layers"].iloc[0])


def read_patterns(store: Store, run: str) -> RunPatterns:
    """One query for the whole run, pivoted with array indexing (no per-instance Python)."""
    n_layers = run_layers(store, run)
    frame = store.query("instance_patterns", run=run)
    idx, row = np.unique(frame["idx"].to_numpy(), return_inverse=True)
    layer = frame["layer"].to_numpy()
    if len(frame) != len(idx) * n_layers or layer.min() < 1 or layer.max() > n_layers:
        raise ApdError(f"run {run!r} is incomplete: not every instance has one pattern per layer 1..{n_layers}")
    patterns = np.full((len(idx), n_layers), -1, dtype=np.int64)
    patterns[row, layer - 1] = pd.factorize(frame["key"], sort=True)[0]  # ids in key order: stable cids
    if (patterns < 0).any():
        raise ApdError(f"run {run!r} is incomplete: not every instance has one pattern per layer 1..{n_layers}")
    per = frame.iloc[np.unique(row, return_index=True)[1]]  # one row per instance, in idx order
    return RunPatterns(idx, patterns, per["label"].to_numpy(), per["pred"].to_numpy(),
                       per["correct"].to_numpy().astype(bool), frame)
