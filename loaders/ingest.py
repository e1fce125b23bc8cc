"""`apd ingest`: record a model's patterns over one dataset split and write the run's APD.

Writes Run, Instance, Pattern (support, errors), Label (predicted labels) nodes and
ACTIVATES, NEXT (count, errors), PREDICTS (count, errors) edges, all frames built with
array operations. Re-ingesting a run replaces everything stored under its name. Small runs
go in one transaction; larger ones write the graph and then instances chunk by chunk, and
a failure midway drops the run, so no half-written run is ever left.

Forgetting: instances of the split a checkpoint was trained on get its per-instance counts;
every other instance (test split, other data, factory models) gets forgetting 0 and
never_learned false: they were never presented in training, so neither notion applies.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from loaders.datasets import Dataset, load_dataset, split_provenance
from loaders.models import file_hash, load
from loaders.record import Recording, record
from toolkit.errors import ApdError
from toolkit.store import Store, open_store
from toolkit.store.schema import NODES

DEFAULT_DATASET = "digits"  # for a model whose checkpoint names no dataset (a factory's state dict)
CHUNK_INSTANCES = 250_000  # instances per write once a run is too big for one transaction
_RUN_NAME = re.compile(r"[A-Za-z0-9_.@+-]+")
# what a (re-)ingest replaces: everything of the run except the Epoch nodes training recorded
_RUN_TABLES = [t for t in NODES if t != "Epoch"]


def ingest(
    model_path: str | os.PathLike,
    dataset: str | Dataset | None = None,
    split: str = "train",
    run: str | None = None,
    store: Store | str | None = None,
    device: str = "auto",
    batch_size: int = 4096,
    factory: str | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
    wait: float = 0.0,
) -> dict:
    """Record `model_path` over `dataset`/`split` and write run `run`; returns a summary dict.

    A store given by location is opened (and locked, waiting up to `wait` seconds for another
    writer) before the model is loaded, so a second writer fails before doing any work.
    `dataset` None takes the one the checkpoint was trained on (digits for a factory model);
    a dataset other than that one is ingested with a warning (in the result's `warnings`):
    a Fashion-MNIST model on MNIST scores near chance, and nothing else would say why.
    """
    run = f"{Path(model_path).stem}-{split}" if run is None else run  # --run "" is refused, not defaulted
    if not _RUN_NAME.fullmatch(run):
        raise ApdError(f"run name {run!r} may only hold letters, digits and . _ @ + -")
    if not isinstance(store, Store):
        with open_store(store, wait=wait) as s:
            return ingest(model_path, dataset, split, run, s, device, batch_size, factory, data_dir, progress)
    loaded = load(model_path, factory)
    trained_on = loaded.record.get("dataset")
    if dataset is None:
        dataset = trained_on or DEFAULT_DATASET
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, split, data_dir)
    warnings = []
    if trained_on and trained_on != ds.name:
        warnings.append(f"model {model_path} was trained on {trained_on}, not {ds.name}: its patterns and "
                        "accuracy here describe data it never saw")
    arch = loaded.arch
    if loaded.features is not None and ds.features != loaded.features:
        raise ApdError(f"model {model_path} takes {loaded.features} features but dataset {ds.name} has {ds.features}")
    rec = record(loaded.model, ds.x, batch_size=batch_size, device=device, progress=progress)
    if len(ds) and int(ds.y.max()) >= rec.outputs:  # accuracy and errors would count a class it cannot predict
        raise ApdError(f"dataset {ds.name} has label {int(ds.y.max())} but model {model_path} has {rec.outputs} "
                       f"classes: labels must lie in 0..{rec.outputs - 1}")
    if factory is not None:
        dims = [ds.features, *(layer.neurons for layer in rec.layers), rec.outputs]
        kinds = "/".join(dict.fromkeys(layer.kind for layer in rec.layers))
        arch = f"{'-'.join(map(str, dims))} {kinds}"
    forgetting, never, source = _forgetting(loaded.record, ds)
    frames = build_frames(run, rec, ds.y, forgetting, never, ds.rows, instances=len(ds) <= CHUNK_INSTANCES)
    correct = rec.pred == ds.y
    official, note = split_provenance(ds.name, ds.meta)
    run_node = {
        "uid": run,
        "run": run,
        "model": str(Path(model_path).resolve()),
        "model_hash": file_hash(model_path),
        "factory": factory or "",
        "dataset": ds.name,
        "split": ds.split,
        "epoch": loaded.epoch,
        "arch": arch,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "instances": len(ds),
        "layers": len(rec.layers),
        "accuracy": float(correct.mean()),
        "history_only": False,
        "official_split": official,
        "split_note": note,
    }
    frames["nodes"]["Run"] = pd.DataFrame([run_node])
    with _opened(store) as s:
        write_frames(s, run, frames)
    return {
        **run_node,
        "store": s.location,
        "forgetting_from": source,
        "patterns": [
            {"layer": r.layer, "module": r.name, "kind": r.kind, "neurons": r.neurons, "patterns": r.patterns}
            for r in rec.layers
        ],
        "labels": len(frames["nodes"]["Label"]),
        "next_edges": len(frames["rels"]["NEXT"]),
        "predicts_edges": len(frames["rels"]["PREDICTS"]),
        "activates_edges": len(ds) * len(rec.layers),
        "warnings": warnings,
    }


def build_frames(
    run: str, rec: Recording, y: np.ndarray, forgetting: np.ndarray, never_learned: np.ndarray,
    rows: np.ndarray | None = None, instances: bool = True,
) -> dict:
    """Every node and edge frame of a run except Run, vectorised over instances and patterns.

    `rows` are the instances' rows in the user's source (Instance.row); default their index.
    With `instances=False` the Instance nodes and ACTIVATES edges are not built here: the
    result's "instances" entry is `(n, fn)`, `fn(start, stop)` building them chunk by chunk,
    so a large run's write never holds a frame of every instance.
    """
    n, L = rec.ids.shape
    if len(y) != n:
        raise ApdError(f"{len(y)} labels for {n} recorded instances")
    wrong = rec.pred != y
    nodes: dict[str, pd.DataFrame] = {}
    pattern_frames, pattern_uids = [], []
    for i, layer in enumerate(rec.layers):
        keys = layer.keys()
        uids = _join(f"{run}:p:{layer.layer}:", keys)
        pattern_uids.append(uids)
        pattern_frames.append(pd.DataFrame({
            "uid": uids, "run": run, "layer": layer.layer, "key": keys, "bits": layer.bits(), "ones": layer.ones(),
            "support": np.bincount(rec.ids[:, i], minlength=layer.patterns),
            "errors": np.bincount(rec.ids[:, i], weights=wrong, minlength=layer.patterns).astype(np.int64),
        }))
    nodes["Pattern"] = pd.concat(pattern_frames, ignore_index=True)
    labels = np.unique(rec.pred)
    label_uid = _join(f"{run}:y:", labels)
    nodes["Label"] = pd.DataFrame({"uid": label_uid, "run": run, "value": labels})

    nxt = [
        _pair_counts(rec.ids[:, i], rec.ids[:, i + 1], rec.layers[i + 1].patterns, wrong, pattern_uids[i], pattern_uids[i + 1])
        for i in range(L - 1)
    ]
    next_frame = pd.concat(nxt, ignore_index=True) if nxt else pd.DataFrame(columns=["src", "dst", "count", "errors"])
    label_pos = np.searchsorted(labels, rec.pred)
    predicts = _pair_counts(rec.ids[:, L - 1], label_pos, len(labels), wrong, pattern_uids[L - 1], label_uid)
    frames: dict = {"nodes": nodes, "rels": {"NEXT": next_frame, "PREDICTS": predicts}}

    def chunk(start: int, stop: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Instance nodes start..stop and their ACTIVATES edges, layer-major."""
        idx = np.arange(start, stop)
        inst_uid = _join(f"{run}:i:", idx)
        inst = pd.DataFrame({
            "uid": inst_uid, "run": run, "idx": idx, "row": idx if rows is None else rows[start:stop],
            "label": y[start:stop], "pred": rec.pred[start:stop], "correct": ~wrong[start:stop],
            "forgetting": forgetting[start:stop], "never_learned": never_learned[start:stop], "cluster": -1,
        })
        activates = pd.DataFrame({
            "src": np.tile(inst_uid, L),
            "dst": np.concatenate([pattern_uids[i][rec.ids[start:stop, i]] for i in range(L)]),
            "layer": np.repeat(np.arange(1, L + 1), stop - start),
        })
        return inst, activates

    if instances:
        nodes["Instance"], frames["rels"]["ACTIVATES"] = chunk(0, n)
    else:
        frames["instances"] = (n, chunk)
    return frames


def write_frames(store: Store, run: str, frames: dict) -> None:
    """Replace the run with these frames (from `build_frames`): one transaction, or chunk by
    chunk inside one batch, so a failure or a kill midway rolls the run back
    (toolkit/store/pending.py)."""
    nodes, rels = frames["nodes"], frames["rels"]
    if "instances" in frames:
        n, chunk = frames["instances"]
    else:
        instances, activates = nodes["Instance"], rels["ACTIVATES"]
        n = len(instances)
        # ACTIVATES is layer-major: instance i's edge of layer l is row l * n + i.
        layers = len(activates) // n if n else 0

        def chunk(start: int, stop: int) -> tuple[pd.DataFrame, pd.DataFrame]:
            rows = (np.arange(layers)[:, None] * n + np.arange(start, stop)).ravel()
            return instances.iloc[start:stop], activates.iloc[rows]

        if n <= CHUNK_INSTANCES:
            with store.batch(run, _RUN_TABLES, op="ingest"):
                store.write(run, nodes=nodes, rels=rels, replace=_RUN_TABLES)
            return
    graph_nodes = {k: v for k, v in nodes.items() if k != "Instance"}
    graph_rels = {k: v for k, v in rels.items() if k != "ACTIVATES"}
    with store.batch(run, _RUN_TABLES, op="ingest"):
        store.write(run, nodes=graph_nodes, rels=graph_rels, replace=_RUN_TABLES)
        for start in range(0, n, CHUNK_INSTANCES):
            inst_part, act_part = chunk(start, min(n, start + CHUNK_INSTANCES))
            store.write(run, nodes={"Instance": inst_part}, rels={"ACTIVATES": act_part})


def summary(store: Store, run: str) -> dict:
    """The APD of one run as stored: patterns per layer, labels, node and edge counts (read back via Cypher)."""
    layers = store.query("layer_summary", run=run)
    nxt = store.query("apd_next", run=run)
    predicts = store.query("apd_predicts", run=run)
    per_layer = [
        {"layer": int(r.layer), "patterns": int(r.patterns), "instances": int(r.instances), "errors": int(r.errors)}
        for r in layers.itertuples()
    ]
    labels = len(predicts)
    next_edges = int(nxt["edges"].sum()) if len(nxt) else 0
    predicts_edges = int(predicts["edges"].sum()) if len(predicts) else 0
    return {
        "run": run,
        "patterns_per_layer": per_layer,
        "labels": labels,
        "apd_nodes": sum(p["patterns"] for p in per_layer) + labels,
        "apd_edges": next_edges + predicts_edges,
        "next_edges": next_edges,
        "predicts_edges": predicts_edges,
    }


def _forgetting(record: dict, ds: Dataset) -> tuple[np.ndarray, np.ndarray, str]:
    """Counts from the checkpoint when `ds` is the split it was trained on; else 0 / false."""
    n = len(ds)
    counts = record.get("forgetting")
    if counts is not None and record.get("dataset") == ds.name and ds.split == "train" and len(counts) == n:
        return counts.numpy().astype(np.int64), record["never_learned"].numpy().astype(bool), "checkpoint"
    return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), "none"


def _pair_counts(
    a: np.ndarray, b: np.ndarray, nb: int, wrong: np.ndarray, a_uid: np.ndarray, b_uid: np.ndarray
) -> pd.DataFrame:
    """Distinct (a, b) id pairs over instances, with instance count and misclassified count."""
    pairs, inv, counts = np.unique(a * nb + b, return_inverse=True, return_counts=True)
    errors = np.bincount(inv.reshape(-1), weights=wrong, minlength=len(pairs)).astype(np.int64)
    return pd.DataFrame({"src": a_uid[pairs // nb], "dst": b_uid[pairs % nb], "count": counts, "errors": errors})


def _join(prefix: str, values: np.ndarray) -> np.ndarray:
    """prefix + str(value) for every value, as an object array of Python strings."""
    return (prefix + pd.Series(values).astype(str)).to_numpy(dtype=object)


@contextmanager
def _opened(store: Store | str | None) -> Iterator[Store]:
    """Use the caller's open Store, or open (and close) one from a location."""
    if isinstance(store, Store):
        yield store
        return
    with open_store(store) as s:
        yield s
