"""`apd store info | check | compact`: what a store holds, whether its runs are whole, and
a rewrite that gives back the space LadybugDB keeps after deletes and replaces.

LadybugDB never shrinks its file: a replaced run's pages stay allocated. `compact` exports
the live graph (LadybugDB's EXPORT DATABASE), imports it into a fresh file next to the
store, verifies every count, then swaps the files with os.replace; the old file is kept as
`PATH.bak` until the new one has opened, so a failure at any point leaves a whole store.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from toolkit.errors import ApdError
from toolkit.store import open_store, pending, queries
from toolkit.store.base import Store, StoreError
from toolkit.store.guard import store_bytes
from toolkit.store.schema import RELS


def _local(location: str) -> Path:
    if "://" in location:
        raise ApdError("apd store info/check/compact work on a LadybugDB file; Neo4j manages its own storage")
    return Path(location)


def files(location: str) -> dict[str, int]:
    """The store's files (main file and side files) and their sizes in bytes."""
    p = Path(location)
    return {str(f): f.stat().st_size for f in sorted([p, *p.parent.glob(p.name + ".*")]) if f.is_file()}


def rel_counts(store: Store) -> dict[str, int]:
    """Relationships per type, over all runs."""
    return {t: int(store._run(queries.body("count_rels", table=t, src=r.src, dst=r.dst))["edges"].iloc[0])
            for t, r in RELS.items()}


def info(location: str, wait: float = 0.0) -> dict:
    """Path, bytes per file, runs with their node counts, and writes that never finished."""
    path = _local(location)
    with open_store(str(path), read_only=True, wait=wait) as s:
        runs = s.runs()
        marks = pending.pending(s)
    cols = ["run", "dataset", "split", "instances"] + [c for c in runs.columns if c.startswith("n_")]
    return {
        "path": str(path.resolve()),
        "files": files(str(path)),
        "bytes": store_bytes(path),
        "runs": runs[[c for c in cols if c in runs.columns]],
        "pending": marks,
    }


def problems(store: Store) -> list[str]:
    """Every way a run's stored counts disagree with each other (one line each; empty = whole)."""
    out = [f"run {w.run}: a write started {w.started} never finished" for w in pending.pending(store).itertuples()]
    runs = store.query("runs").set_index("run")
    counts = store.counts()
    nodes = counts.pivot_table(index="run", columns="label", values="nodes", aggfunc="sum", fill_value=0) \
        if len(counts) else pd.DataFrame()
    for orphan in sorted(set(nodes.index) - set(runs.index)):
        out.append(f"run {orphan}: has nodes but no Run node")
    acts = store.query("activates_counts")
    for run, meta in runs.iterrows():
        n, layers = int(meta["instances"]), int(meta["layers"])
        stored = int(nodes.loc[run, "Instance"]) if run in nodes.index and "Instance" in nodes else 0
        if stored != n:
            out.append(f"run {run}: {stored} Instance nodes, Run.instances says {n}")
        per_layer = store.query("layer_summary", run=run)
        if len(per_layer) != layers:
            out.append(f"run {run}: patterns on {len(per_layer)} layers, Run.layers says {layers}")
        for r in per_layer.itertuples():
            if int(r.instances) != n:
                out.append(f"run {run}: layer {r.layer} patterns support {int(r.instances)} instances, not {n}")
        mine = acts[acts["run"] == run]
        for r in mine.itertuples():
            if int(r.edges) != n:
                out.append(f"run {run}: {int(r.edges)} ACTIVATES edges on layer {r.layer}, not {n}")
        if len(mine) != layers:
            out.append(f"run {run}: ACTIVATES edges on {len(mine)} layers, Run.layers says {layers}")
        nxt = store.query("apd_next", run=run)
        for r in nxt.itertuples():
            if int(r.instances) != n:
                out.append(f"run {run}: NEXT edges from layer {r.layer} count {int(r.instances)} instances, not {n}")
        predicted = int(store.query("apd_predicts", run=run)["instances"].sum())
        if predicted != n:
            out.append(f"run {run}: PREDICTS edges count {predicted} instances, not {n}")
    return out


def check(location: str, wait: float = 0.0) -> dict:
    """Open writable (which finishes any recovery), then validate every run's counts."""
    path = _local(location)
    with open_store(str(path), create=False, wait=wait) as s:
        found = problems(s)
        runs = len(s.query("runs"))
    return {"path": str(path.resolve()), "runs": runs, "problems": found}


def _snapshot(store: Store) -> tuple[list, dict]:
    counts = store.counts()
    return sorted(map(tuple, counts[["run", "label", "nodes"]].values.tolist())), rel_counts(store)


def compact(location: str, out: str | None = None, wait: float = 0.0) -> dict:
    """Rewrite the live graph into a fresh file; swap it in (or write it to `out`)."""
    path = _local(location)
    target = Path(out) if out else path.with_name(path.name + ".compact")
    if out and (target.exists() or target.resolve() == path.resolve()):
        raise ApdError(f"--out {target} exists: choose a new file")
    export = path.with_name(path.name + ".export")
    for leftover in (export, target) if not out else (export,):  # from an earlier compact that was cut off
        _remove(leftover)
    before = store_bytes(path)
    with open_store(str(path), create=False, wait=wait) as s:  # holds the lock; recovers first
        want = _snapshot(s)
        s._run(f"EXPORT DATABASE '{_quoted(export)}'")
    try:
        import ladybug

        db = ladybug.Database(str(target))
        try:
            ladybug.Connection(db).execute(f"IMPORT DATABASE '{_quoted(export)}'")
        finally:
            db.close()
        with open_store(str(target), read_only=True) as fresh:
            got = _snapshot(fresh)
        if got != want:
            raise StoreError(f"compact: the copy's counts differ from {path}; the store is unchanged")
    except BaseException:
        _remove(target)
        raise
    finally:
        _remove(export)
    after = store_bytes(target)
    if not out:
        bak = path.with_name(path.name + ".bak")
        os.replace(path, bak)
        os.replace(target, path)
        with open_store(str(path), read_only=True):
            pass
        bak.unlink()
    return {"path": str((target if out else path).resolve()), "bytes_before": before, "bytes_after": after,
            "runs": len({r for r, _, _ in want[0]})}


def _quoted(p: Path) -> str:
    """A path inside a Cypher string literal (EXPORT/IMPORT take no parameters)."""
    text = str(p.resolve())
    if "'" in text or "\\" in text:
        raise ApdError(f"compact cannot work next to {p}: its path holds a quote or backslash")
    return text


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    for f in [p, *p.parent.glob(p.name + ".*")] if p.parent.is_dir() else []:
        if f.is_file():
            f.unlink()
