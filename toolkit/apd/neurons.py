"""`apd neurons`: a Neuron node for every hidden neuron of a run, with what it does.

- `active` / `rate`: instances of the run whose state of the neuron is 1 (ReLU: z > 0;
  Hardtanh: the linear state, as Pattern.ones counts), and their share;
- `(:Neuron)-[:ACTIVE_FOR {count, rate}]->(:Label)`: the same per *predicted* class, towards
  the run's predicted-label nodes (the extended APD's), rate = share of that class's instances;
  per true class would need Label nodes the graph does not have, and MBH already covers it;
- `flips` / `flipped` / `flips_from`: between consecutive snapshot runs (`--runs GLOB`,
  ordered by epoch, instances matched by idx), the share and count of matched instances whose
  state of the neuron differs from the previous snapshot's (`flips_from`); -1 and "" for a run
  with no previous snapshot (the first one, or `--run` alone).

Computed from the graph (distinct Pattern bits and each instance's pattern), not at ingest:
flips need the other snapshots, and ingest stays as fast as it was. The layer widths and
activation kinds come from one forward pass of the run's model (the hex bits alone do not fix
the width), as `apd mbh` does.

Neuron nodes are shared with `apd mbh` (its CONSTRAINS edges end on them; uid
`run:n:layer:index`): each command creates the ones missing and neither deletes any, so a
re-run of either leaves the other's results intact; a re-ingest or `apd drop` removes them.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from tqdm import tqdm

from loaders.record import record, unpack_states
from toolkit.apd.neighbours import LayerInput, layer_input
from toolkit.apd.runs import run_layers, snapshot_runs
from toolkit.errors import ApdError
from toolkit.regions.runs import run_source
from toolkit.store import Store

NO_FLIPS = -1.0  # flips of a run without a previous snapshot
_CHUNK = 8192  # instances compared at once for flips


def neuron_uid(run: str, layer: int, index: np.ndarray) -> np.ndarray:
    """The uids `apd mbh` and `apd neurons` share."""
    return np.array([f"{run}:n:{layer}:{j}" for j in index], dtype=object)


def ensure_neurons(store: Store, run: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Create the rows of `frame` (Neuron nodes) whose uid does not exist yet, in one
    transaction that deletes nothing; returns the rows that already existed."""
    have = frame["uid"].isin(set(store.query("neuron_uids", run=run)["uid"]))
    if (~have).any():
        store.write(run, nodes={"Neuron": frame[~have]})
    return frame[have]


def layer_shapes(store: Store, run: str, data_dir: str | os.PathLike | None = None) -> list[tuple[int, str]]:
    """(neurons, activation kind) of each hidden layer, from one forward pass of the run's model."""
    layers = run_layers(store, run)
    src = run_source(store, run, data_dir)
    rec = record(src.model, src.data.x[:1], device="cpu")
    if len(rec.layers) != layers:
        raise ApdError(f"run {run!r} has {layers} hidden layers but its model has {len(rec.layers)}: re-ingest it")
    return [(layer.neurons, layer.kind) for layer in rec.layers]


def layer_states(store: Store, run: str, layer: int, neurons: int, kind: str) -> tuple[LayerInput, np.ndarray]:
    """One layer's instances and the states int8 [P, neurons] of its distinct patterns."""
    li = layer_input(store, run, layer)
    return li, unpack_states(li.packed, neurons, kind)


def flip_counts(prev: tuple[LayerInput, np.ndarray], cur: tuple[LayerInput, np.ndarray]) -> tuple[np.ndarray, int]:
    """Per neuron, how many instances (matched by idx) change state between two runs; and how many matched."""
    (pi, ps), (ci, cs) = prev, cur
    _, a, b = np.intersect1d(pi.idx, ci.idx, assume_unique=True, return_indices=True)
    flipped = np.zeros(cs.shape[1], dtype=np.int64)
    for start in range(0, len(a), _CHUNK):
        sl = slice(start, start + _CHUNK)
        flipped += (ps[pi.pattern[a[sl]]] != cs[ci.pattern[b[sl]]]).sum(0)
    return flipped, len(a)


def neuron_frames(run: str, layer: int, li: LayerInput, states: np.ndarray, flipped: np.ndarray | None,
                  matched: int, previous: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Neuron nodes with their statistics, and ACTIVE_FOR edges, of one layer."""
    h = states.shape[1]
    per_class = (states == 1).T.astype(np.int64) @ li.count  # [h, C] active instances per predicted class
    active = per_class.sum(1)
    index = np.arange(h)
    uid = neuron_uid(run, layer, index)
    nodes = pd.DataFrame({
        "uid": uid, "run": run, "layer": layer, "index": index, "active": active,
        "rate": active / max(int(li.count.sum()), 1),
        "flips": NO_FLIPS if flipped is None else flipped / max(matched, 1),
        "flipped": -1 if flipped is None else flipped, "flips_from": previous,
    })
    n, c = np.divmod(np.arange(per_class.size), per_class.shape[1])  # every (neuron, class) pair
    rels = pd.DataFrame({"src": uid[n], "dst": [f"{run}:y:{v}" for v in li.classes[c]],
                         "count": per_class[n, c], "rate": per_class[n, c] / li.count.sum(0)[c]})
    return nodes, rels


def snapshots_of_one_split(store: Store, runs: str) -> list[str]:
    """Runs matching the glob in epoch order (toolkit/apd/runs.snapshot_runs); one dataset and split."""
    chosen = snapshot_runs(store, runs)
    all_runs = store.query("runs").set_index("run").loc[chosen]
    if len(all_runs[["dataset", "split"]].drop_duplicates()) > 1:
        raise ApdError(f"runs matching {runs!r} mix datasets or splits: snapshots must share one dataset and split")
    return chosen


def run_neurons(store: Store, run: str | None = None, runs: str | None = None,
                data_dir: str | os.PathLike | None = None, progress: bool = False) -> pd.DataFrame:
    """Statistics of every hidden neuron of `run`, or of each snapshot run matching `runs`
    (with flips against the previous one), written to the graph (a re-run replaces them);
    returns one summary row per run and layer."""
    if (run is None) == (runs is None):
        raise ApdError("give exactly one of --run NAME and --runs GLOB (snapshot runs)")
    chosen = [run] if run is not None else snapshots_of_one_split(store, runs)
    summary, prev, prev_shapes, prev_states = [], None, None, []
    for name in tqdm(chosen, desc="neurons", unit="run", disable=not progress or len(chosen) < 2):
        shapes = layer_shapes(store, name, data_dir)
        if prev_shapes is not None and shapes != prev_shapes:
            raise ApdError(f"snapshot runs {prev!r} and {name!r} have different hidden layers: "
                           f"{prev_shapes} vs {shapes}")
        nodes, rels, current = [], [], []
        for layer, (neurons, kind) in enumerate(shapes, start=1):
            cur = layer_states(store, name, layer, neurons, kind)
            flipped, matched = (None, 0) if prev is None else flip_counts(prev_states[layer - 1], cur)
            n, r = neuron_frames(name, layer, *cur, flipped, matched, prev or "")
            nodes.append(n)
            rels.append(r)
            current.append(cur)
            summary.append({"run": name, "layer": layer, "neurons": neurons, "dead": int((n["active"] == 0).sum()),
                            "always": int((n["rate"] == 1).sum()), "mean_rate": float(n["rate"].mean()),
                            "flips_from": prev or "",
                            "mean_flips": float(n["flips"].mean()) if flipped is not None else float("nan")})
        _write(store, name, pd.concat(nodes, ignore_index=True), pd.concat(rels, ignore_index=True))
        prev, prev_shapes, prev_states = name, shapes, current
    return pd.DataFrame(summary)


def _write(store: Store, run: str, nodes: pd.DataFrame, rels: pd.DataFrame) -> None:
    """Missing Neurons are created with their statistics; existing ones (e.g. made by
    `apd mbh`) get theirs updated, keeping their CONSTRAINS edges; ACTIVE_FOR is replaced."""
    existing = ensure_neurons(store, run, nodes)
    store.write(run, rels={"ACTIVE_FOR": rels}, replace_rels=("ACTIVE_FOR",),
                updates={"Neuron": existing.drop(columns=["run", "layer", "index"])})
