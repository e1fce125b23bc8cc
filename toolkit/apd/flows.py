"""Flows: instances that share their patterns on a set of layers, with strength and purity.

Computed in Cypher (`cypher/flows.cypher`, six layer slots).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from toolkit.apd.runs import run_layers
from toolkit.errors import ApdError
from toolkit.store import Store

SLOTS = 6  # layer slots in cypher/flows.cypher
COLUMNS = ["fid", "patterns", "strength", "purity", "errors", "label"]


def parse_layers(text: str | None, n_layers: int) -> list[int]:
    """`--layers 2,3` -> [2, 3] (sorted, unique); default the last two hidden layers."""
    if text is None:
        return list(range(max(1, n_layers - 1), n_layers + 1))
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ApdError(f"--layers {text!r} is not a comma-separated list of layer numbers") from None
    if not layers or layers[0] < 1 or layers[-1] > n_layers:
        raise ApdError(f"--layers {text!r} out of range: this run has hidden layers 1..{n_layers}")
    if len(layers) > SLOTS:
        raise ApdError(f"--layers: flows span at most {SLOTS} layers, got {len(layers)}")
    return layers


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Number the flows in their order and keep the public columns."""
    return pd.DataFrame({"fid": np.arange(len(frame)), **{c: frame[c].to_numpy() for c in COLUMNS[1:]}})


def query_flows(store: Store, run: str, layers: list[int], min_strength: int = 1, label: int | None = None) -> pd.DataFrame:
    """Flows from the graph: fid, patterns (uids in layer order), strength, purity, errors, label.

    label: only instances of this true label (None: all).
    """
    slots = layers + [layers[-1]] * (SLOTS - len(layers))
    params = {f"l{j + 1}": layer for j, layer in enumerate(slots)}
    rows = store.query("flows", run=run, layers=layers, min_strength=int(min_strength),
                       label=-1 if label is None else int(label), **params)
    cols = [f"p{j + 1}" for j in range(len(layers))]
    rows["patterns"] = rows[cols].to_numpy().tolist()
    return _finish(rows)


def run_flows(store: Store, run: str, layers: str | None = None, min_strength: int = 1,
              label: int | None = None) -> tuple[list[int], pd.DataFrame]:
    """Compute a run's flows in Cypher and replace its Flow nodes and THROUGH edges.

    With `label` the flows of that true label's instances are only returned: Flow nodes
    describe the whole run, so a restricted view never replaces them.
    """
    chosen = parse_layers(layers, run_layers(store, run))
    flows = query_flows(store, run, chosen, min_strength, label)
    if label is not None:
        if flows.empty:  # say so when the label itself is absent, rather than "0 flows"
            present = np.unique(store.query("label_patterns", run=run, layer=chosen[0])["label"].to_numpy())
            if label not in present:
                raise ApdError(f"no instance has true label {label} (labels: {', '.join(map(str, present))})")
        return chosen, flows
    name = "-".join(map(str, chosen))
    uid = run + ":f:" + name + ":" + flows["fid"].astype(str)
    nodes = flows.drop(columns="patterns").assign(uid=uid, run=run, layers=name)
    through = pd.DataFrame({"src": np.repeat(uid.to_numpy(), len(chosen)),
                            "dst": np.concatenate(flows["patterns"].tolist()) if len(flows) else []})
    store.write(run, {"Flow": nodes}, {"THROUGH": through}, replace=["Flow"])
    return chosen, flows

