"""Builds a small, hand-made APD graph as frames, and writes it as a run, for the tests and
benches of the store, the named queries and the analytics."""
from __future__ import annotations

import numpy as np
import pandas as pd

from loaders.record import hex_rows, pattern_keys
from toolkit.store.schema import NODES

BITS = 16  # each pattern id is stored as 16 bits, as a layer of 16 neurons would


def pattern_bits(ids: np.ndarray) -> np.ndarray:
    """Pattern ids as the `bits` hex strings of 16-neuron patterns."""
    return hex_rows(np.asarray(ids, dtype=">u2").view(np.uint8).reshape(-1, 2))


def pattern_key(ids) -> np.ndarray:
    """The keys ingest gives those bits (loaders/record.py), so `apd store check` finds them whole."""
    rows = np.zeros((np.size(ids), 8), dtype=np.uint8)
    rows[:, :2] = np.asarray(ids, dtype=">u2").reshape(-1).view(np.uint8).reshape(-1, 2)
    return pattern_keys(rows, BITS)


def pattern_uid(run: str, layer: int, pid: int) -> str:
    return f"{run}:p:{layer}:{pattern_key([pid])[0]}"


def apd_frames(run: str, patterns: np.ndarray, label: np.ndarray, pred: np.ndarray) -> tuple[dict, dict]:
    """Run/Instance/Pattern/Label nodes and ACTIVATES/NEXT/PREDICTS edges from an [n, L] array of
    per-layer pattern ids (stored as 16 bits, keyed as ingest keys them), computed with plain pandas."""
    n, L = patterns.shape
    err = (label != pred).astype(int)
    inst = pd.DataFrame({"uid": [f"{run}:i:{i}" for i in range(n)], "run": run, "idx": np.arange(n),
                         "label": label, "pred": pred, "correct": err == 0, "forgetting": 0,
                         "never_learned": False, "cluster": -1})
    long = pd.DataFrame({"idx": np.repeat(np.arange(n), L), "layer": np.tile(np.arange(1, L + 1), n),
                         "pid": patterns.reshape(-1), "err": np.repeat(err, L)})
    ids = np.unique(long["pid"])
    long["key"] = pd.Series(pattern_key(ids), index=ids).reindex(long["pid"]).to_numpy()
    long["puid"] = run + ":p:" + long["layer"].astype(str) + ":" + long["key"]
    pats = long.groupby(["layer", "pid", "key", "puid"], as_index=False).agg(support=("idx", "size"),
                                                                             errors=("err", "sum"))
    pattern = pd.DataFrame({"uid": pats["puid"], "run": run, "layer": pats["layer"], "key": pats["key"],
                            "bits": pattern_bits(pats["pid"]), "ones": 0, "support": pats["support"],
                            "errors": pats["errors"]})
    acts = pd.DataFrame({"src": run + ":i:" + long["idx"].astype(str), "dst": long["puid"], "layer": long["layer"]})
    wide = long.pivot(index="idx", columns="layer", values="puid")
    nxt = pd.concat([pd.DataFrame({"src": wide[l], "dst": wide[l + 1], "err": err}) for l in range(1, L)])
    nxt = nxt.groupby(["src", "dst"], as_index=False).agg(count=("err", "size"), errors=("err", "sum"))
    labels = pd.DataFrame({"uid": [f"{run}:y:{v}" for v in np.unique(pred)], "run": run, "value": np.unique(pred)})
    pr = pd.DataFrame({"src": wide[L], "dst": [f"{run}:y:{v}" for v in pred], "err": err})
    pr = pr.groupby(["src", "dst"], as_index=False).agg(count=("err", "size"), errors=("err", "sum"))
    runs = pd.DataFrame({"uid": [run], "run": [run], "dataset": ["synthetic"], "split": ["test"], "epoch": [-1],
                         "instances": [n], "layers": [L], "accuracy": [float((err == 0).mean())],
                         "history_only": [False], "official_split": [False], "split_note": ["synthetic"]})
    nodes = {"Run": runs, "Instance": inst, "Pattern": pattern, "Label": labels}
    rels = {"ACTIVATES": acts, "NEXT": nxt, "PREDICTS": pr}
    return nodes, rels


def random_run(n: int = 200, L: int = 3, seed: int = 0, width: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patterns [n, L] with `width` ids per layer, label, pred) for 3 classes, 80 % right."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, width, size=(n, L))
    label = rng.integers(0, 3, size=n)
    pred = np.where(rng.random(n) < 0.8, label, rng.integers(0, 3, size=n))
    return patterns, label, pred


def random_apd(run: str, n: int = 200, L: int = 3, seed: int = 0, width: int = 6) -> tuple[dict, dict]:
    """The frames of a `random_run`."""
    return apd_frames(run, *random_run(n, L, seed, width))


def write_run(store, run: str, patterns, label, pred, forgetting=None, epoch: int = -1) -> tuple[dict, dict]:
    """Write one run from an [n, L] pattern-id array, replacing whatever the run held (every
    node label, as a re-ingest does); returns its frames."""
    nodes, rels = apd_frames(run, np.asarray(patterns), np.asarray(label), np.asarray(pred))
    if forgetting is not None:
        nodes["Instance"]["forgetting"] = np.asarray(forgetting)
    nodes["Run"]["epoch"] = epoch
    store.write(run, nodes, rels, replace=list(NODES))
    return nodes, rels


def write_random_run(store, run: str, n: int = 200, L: int = 3, seed: int = 0, width: int = 6) -> tuple[dict, dict]:
    """Write a `random_run` (its frames are `random_apd`'s); returns its frames."""
    return write_run(store, run, *random_run(n, L, seed, width))
