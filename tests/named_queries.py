"""One parameter set for every named query in cypher/, for tests that run them all.

Add a row when you add a named query (tests/test_named_queries.py fails until you do).
`RUN` and `RUNS` are filled with the test's run names: the demo's by default.
"""
from __future__ import annotations

import json

import pandas as pd

RUN = "digits-test"
RUNS = ["digits-train", "digits-test"]

PARAMS: dict[str, dict] = {
    "apd_next": {"run": RUN},
    "activates_counts": {},
    "apd_predicts": {"run": RUN},
    "blanket_instances": {"run": RUN, "label": 3, "coverage": 0.8},
    "blankets": {"run": RUN},
    "cluster_sizes": {"run": RUN},
    "epochs": {"run": RUN},
    "flows": {"run": RUN, "layers": [2, 3], "l1": 2, "l2": 3, "l3": 3, "l4": 3, "l5": 3, "l6": 3, "min_strength": 1,
              "label": -1},
    "instance_hardness": {"run": RUN},
    "instance_patterns": {"run": RUN},
    "label_patterns": {"run": RUN, "layer": 3},
    "layer_instances": {"run": RUN, "layer": 1},
    "layer_summary": {"run": RUN},
    "neuron_stats": {"run": RUN},
    "neuron_uids": {"run": RUN},
    "neurons_contrast": {"run": RUN, "a": 0, "b": 1, "hi": 0.9, "lo": 0.1},
    "pattern_counts": {"runs": RUNS},
    "pattern_stability": {"run": RUN},
    "plane_blankets": {"run": RUN},
    "planes": {"run": RUN},
    "patterns": {"run": RUN},
    "pending_writes": {},
    "run_meta": {"run": RUN},
    "coarse_source": {"run": RUN},
    "runs": {},
    "transitions": {"run": RUN},
}


def params(name: str, run: str = RUN, runs: list[str] | None = None) -> dict:
    """The row for `name` with the run names replaced."""
    out = dict(PARAMS[name])
    if "run" in out:
        out["run"] = run
    if "runs" in out:
        out["runs"] = list(runs or RUNS)
    return out


def as_options(values: dict) -> list[str]:
    """The row as `apd query` options: `-p key=value` with JSON values."""
    return [arg for k, v in values.items() for arg in ("-p", f"{k}={v if isinstance(v, str) else json.dumps(v)}")]


def canonical(df: pd.DataFrame, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """A query's frame in an order every store agrees on: lists (flows' patterns) as JSON
    text, rows sorted by every column. Queries without ORDER BY return rows in storage
    order, which differs between backends and between a store and its compacted copy."""
    df = df.drop(columns=list(drop), errors="ignore").copy()
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, list)).any():
            df[c] = df[c].map(json.dumps)
    return df.sort_values(list(df.columns), ignore_index=True) if len(df) else df.reset_index(drop=True)
