"""`apd store info | check | compact`: what a store holds, whether its runs are whole and
undamaged, and a rewrite that gives back the space LadybugDB keeps after deletes and replaces.

LadybugDB never shrinks its file: a replaced run's pages stay allocated. `compact` refuses a
damaged store (toolkit/store/integrity.py), exports the live graph (LadybugDB's EXPORT
DATABASE) and imports it into a fresh file, both inside a work folder it creates next to the
store, verifies every count, then swaps the files by rename. The toolkit deletes only what
it created: that work folder (a cut-off compact's is recognised by its owner file), never a
glob over the user's folder; a failure at any point leaves the store as it was.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from toolkit.errors import ApdError, one_line
from toolkit.paths import writable_path
from toolkit.store import integrity, open_store, pending, queries
from toolkit.store.base import Store, StoreError
from toolkit.store.guard import store_bytes, store_files
from toolkit.store.schema import RELS

OWNER = "apd-compact"  # the file that marks a compact's work folder as the toolkit's


def _local(location: str) -> Path:
    if "://" in location:
        raise ApdError("apd store check/compact work on a LadybugDB file; Neo4j manages its own storage")
    return Path(location)


def files(location: str) -> dict[str, int]:
    """The store's files (main file and LadybugDB's side files) and their sizes in bytes."""
    return {str(f): f.stat().st_size for f in store_files(location)}


def rel_counts(store: Store) -> dict[str, int]:
    """Relationships per type, over all runs."""
    return {t: int(store._run(queries.body("count_rels", table=t, src=r.src, dst=r.dst))["edges"].iloc[0])
            for t, r in RELS.items()}


def info(location: str, wait: float = 0.0) -> dict:
    """Location, bytes per file (a LadybugDB file; None on a server), runs with their node
    counts, and writes that never finished."""
    with open_store(location, read_only=True, wait=wait) as s:
        runs = s.runs()
        marks = pending.pending(s)
    local = "://" not in location
    cols = ["run", "dataset", "split", "instances"] + [c for c in runs.columns if c.startswith("n_")]
    return {
        "path": str(Path(location).resolve()) if local else location,
        "files": files(location) if local else {},
        "bytes": store_bytes(location) if local else None,
        "runs": runs[[c for c in cols if c in runs.columns]],
        "pending": marks,
    }


def problems(store: Store) -> list[str]:
    """Every way a run's stored counts disagree with each other or its rows are damaged (one
    line each; empty = whole)."""
    out = [f"run {w.run}: a write started {w.started} never finished" for w in pending.pending(store).itertuples()]
    runs = store.query("runs").set_index("run")
    counts = store.counts()
    nodes = counts.pivot_table(index="run", columns="label", values="nodes", aggfunc="sum", fill_value=0) \
        if len(counts) else pd.DataFrame()
    for orphan in sorted(set(nodes.index) - set(runs.index)):
        if set(nodes.columns[nodes.loc[orphan] > 0]) != {"Epoch"}:  # Epoch-only: an older apd train's history
            out.append(f"run {orphan}: has nodes but no Run node")
    acts = store.query("activates_counts")
    history = runs["history_only"].eq(True)
    for run in runs.index[history]:
        out += _history_problems(run, int(runs.loc[run, "layers"]), nodes.loc[run] if run in nodes.index else None)
        out += integrity.damage(store, run)
    for run, meta in runs[~history].iterrows():
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
        out += integrity.damage(store, run)
    return out


def _history_problems(run: str, layers: int, counts: pd.Series | None) -> list[str]:
    """A run of `apd train --record-every`: its Run and Epoch nodes only, one Epoch per
    recorded epoch and hidden layer."""
    held = {} if counts is None else {k: int(v) for k, v in counts.items() if v > 0}
    other = sorted(set(held) - {"Run", "Epoch"})
    out = [f"run {run}: holds only training history but has {', '.join(other)} nodes"] if other else []
    epochs = held.get("Epoch", 0)
    if not epochs or epochs % layers:
        out.append(f"run {run}: {epochs} Epoch nodes, not a whole number of epochs of {layers} layers")
    return out


def check(location: str, wait: float = 0.0) -> dict:
    """Open writable (which finishes any recovery, and waits out a writer), then validate
    every run's counts and rows."""
    path = _local(location)
    with open_store(str(path), create=False, wait=wait) as s:
        found = _problems_or_unreadable(s)
        runs = len(s.query("runs"))
    return {"path": str(path.resolve()), "runs": runs, "problems": found}


def _problems_or_unreadable(store: Store) -> list[str]:
    """`problems`, or one line when damage stops even the counting queries."""
    try:
        return problems(store)
    except (StoreError, UnicodeDecodeError, RuntimeError, ValueError) as exc:
        return [f"the store cannot be read through: {one_line(exc)}"]


def _snapshot(store: Store) -> tuple[list, dict, list]:
    counts = store.counts()
    return (sorted(map(tuple, counts[["run", "label", "nodes"]].values.tolist())), rel_counts(store),
            store.query("runs").to_dict("records"))


def compact(location: str, out: str | None = None, wait: float = 0.0) -> dict:
    """Rewrite the live graph into a fresh file; swap it in (or link it as `out`)."""
    path = _local(location)
    final = Path(out) if out else path
    if out and (final.exists() or final.resolve() == path.resolve()):
        raise ApdError(f"--out {final} exists: choose a new file")
    if out:
        writable_path(final, "--out")  # before the export, not as LadybugDB's IO exception after it
    before = store_bytes(path)
    with open_store(str(path), read_only=True, wait=wait) as s:  # a damaged file is never opened for writing
        found = _problems_or_unreadable(s)
    if found:
        raise ApdError(f"store {path} is damaged, compact leaves it as it is: {found[0]}"
                       + (f" (and {len(found) - 1} more: run `apd store check`)" if len(found) > 1 else ""))
    with open_store(str(path), create=False, wait=wait) as s:  # holds the lock; recovers first
        _remove_cut_off_work(path, final)  # under the lock, so never a running compact's
        want = _snapshot(s)
        work = _work_folder(path, final)
        try:
            s._run(f"EXPORT DATABASE '{_quoted(work / 'export')}'")
        except BaseException:
            shutil.rmtree(work)
            raise
    try:
        target = _imported(work)
        with open_store(str(target), read_only=True) as fresh:
            if _snapshot(fresh) != want:
                raise StoreError(f"compact: the copy's counts differ from {path}; the store is unchanged")
        after = store_bytes(target)
        with open_store(str(path), read_only=True, wait=wait) as again:  # no writer can start while held
            if _snapshot(again) != want:
                raise StoreError(f"compact: {path} changed while compacting; the store is unchanged, run it again")
            if out:
                os.link(target, final)  # fails rather than replace a file that appeared meanwhile
            else:
                os.replace(path, work / "old.lbug")
                os.replace(target, path)
        if not out:
            try:
                with open_store(str(path), read_only=True):
                    pass
            except BaseException:
                os.replace(work / "old.lbug", path)
                raise
    finally:
        shutil.rmtree(work)
    return {"path": str(final.resolve()), "bytes_before": before, "bytes_after": after,
            "runs": len({r for r, _, _ in want[0]})}


def _imported(work: Path) -> Path:
    """A fresh store in `work` holding the export in `work/export`."""
    import ladybug

    target = work / "store.lbug"
    db = ladybug.Database(str(target))
    try:
        ladybug.Connection(db).execute(f"IMPORT DATABASE '{_quoted(work / 'export')}'")
    except RuntimeError as exc:
        raise StoreError(f"compact failed, the store is unchanged: {one_line(exc)}") from None
    finally:
        db.close()
    return target


def _work_folder(path: Path, final: Path) -> Path:
    """A fresh folder beside `final` (same filesystem: the swap is a rename), marked ours."""
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.compact-"))
    (work / OWNER).write_text(f"{path.resolve()}\n{os.getpid()}\n")
    return work


def _remove_cut_off_work(path: Path, final: Path) -> None:
    """Work folders of this store's earlier compacts that were killed: ours by their owner file,
    and cut off because the store's lock, which the caller holds, was free."""
    for work in final.parent.glob(f".{final.name}.compact-*"):
        owner = work / OWNER
        if work.is_dir() and owner.is_file() and owner.read_text().split("\n")[0] == str(path.resolve()):
            shutil.rmtree(work)


def _quoted(p: Path) -> str:
    """A path inside a Cypher string literal (EXPORT/IMPORT take no parameters)."""
    text = str(p.resolve())
    if "'" in text or "\\" in text:
        raise ApdError(f"compact cannot work next to {p}: its path holds a quote or backslash")
    return text
