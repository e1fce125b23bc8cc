"""Damage a store's own checks cannot see: every run's rows read end to end and cross-checked.

LadybugDB keeps no checksums on its data pages, so a flipped byte is read back as data: a
pattern's key or bits change, a uid changes, a string stops being UTF-8. Counts alone miss
most of it. Here every property of every node and relationship of a run is read (the same
reads `apd export` makes, so a run that passes can also be exported and compacted) and the
values that determine each other are checked: a pattern's key is the hash of its bits, its
support the number of instances activating it, an instance is correct when its label is its
prediction, uids are built from the run, the layer, the key, the index or the label value,
and the uid index finds every node a scan returns. Floating-point properties (distances,
inradii) have no such partner: a flip there is beyond any check without page checksums.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from loaders.record import pattern_keys, rows_from_hex
from toolkit.errors import ApdError, one_line
from toolkit.export import read_nodes, read_rels
from toolkit.store.base import Store
from toolkit.store.schema import NODES, RELS

# How each kind of node's uid is made from its properties (loaders/ingest.py builds them).
UIDS = {"Instance": ("i", "idx"), "Label": ("y", "value")}
LOOKUP_BATCH = 100_000  # uids per index lookup


def damage(store: Store, run: str) -> list[str]:
    """One line per problem found in `run`'s rows (empty: every row read and agreed)."""
    out: list[str] = []
    nodes, rels = {}, {}
    for table in NODES:
        try:
            nodes[table] = frame = read_nodes(store, run, table)
            out += _node_problems(run, table, frame) + _index_problems(store, run, table, frame["uid"].tolist())
        except (ApdError, UnicodeDecodeError, RuntimeError, ValueError) as exc:
            out.append(f"run {run}: its {table} nodes cannot be read ({one_line(exc)})")
    for table in RELS:
        try:
            rels[table] = frame = read_rels(store, run, table)
        except (ApdError, UnicodeDecodeError, RuntimeError, ValueError) as exc:
            out.append(f"run {run}: its {table} relationships cannot be read ({one_line(exc)})")
            continue
        if frame.duplicated(["src", "dst"]).any():
            out.append(f"run {run}: {int(frame.duplicated(['src', 'dst']).sum())} duplicate {table} relationships")
    if "Pattern" in nodes and "ACTIVATES" in rels and len(nodes["Pattern"]):
        got = rels["ACTIVATES"]["dst"].value_counts()
        pats = nodes["Pattern"]
        bad = pats["support"].to_numpy() != got.reindex(pats["uid"]).fillna(0).to_numpy()
        if bad.any():
            out.append(f"run {run}: {int(bad.sum())} Pattern supports differ from their ACTIVATES edges "
                       f"(first: {pats['uid'][bad].iloc[0]!r})")
    return out


def _index_problems(store: Store, run: str, table: str, uids: list[str]) -> list[str]:
    found = sum(int(store.query_template("lookup_uids", {"table": table}, uids=uids[i:i + LOOKUP_BATCH])["found"].iloc[0])
                for i in range(0, len(uids), LOOKUP_BATCH))
    if found != len(uids):
        return [f"run {run}: the uid index finds {found} of its {len(uids)} {table} nodes"]
    return []


def _node_problems(run: str, table: str, frame: pd.DataFrame) -> list[str]:
    if not len(frame):
        return []
    out = []
    if frame["uid"].duplicated().any():
        out.append(f"run {run}: {int(frame['uid'].duplicated().sum())} {table} nodes share a uid")
    if table in UIDS:
        tag, prop = UIDS[table]
        bad = frame["uid"].to_numpy() != (f"{run}:{tag}:" + frame[prop].astype(str)).to_numpy()
        if bad.any():
            out.append(f"run {run}: {int(bad.sum())} {table} uids do not match their {prop} "
                       f"(first: {frame['uid'][bad].iloc[0]!r})")
    if table == "Pattern":
        out += _pattern_problems(run, frame)
    if table == "Instance":
        bad = frame["correct"].to_numpy() != (frame["label"] == frame["pred"]).to_numpy()
        if bad.any():
            out.append(f"run {run}: {int(bad.sum())} Instance nodes are `correct` where label and pred disagree, "
                       "or the other way round")
    return out


def _pattern_problems(run: str, frame: pd.DataFrame) -> list[str]:
    """Each pattern's key is `pattern_keys` of its bits; its uid is run:p:layer:key."""
    out = []
    uid = (f"{run}:p:" + frame["layer"].astype(str) + ":" + frame["key"].astype(str)).to_numpy()
    bad = frame["uid"].to_numpy() != uid
    if bad.any():
        out.append(f"run {run}: {int(bad.sum())} Pattern uids do not match their layer and key "
                   f"(first: {frame['uid'][bad].iloc[0]!r})")
    for layer, group in frame.groupby("layer"):
        wrong = _wrong_keys(group["bits"].to_numpy(), group["key"].to_numpy())
        if wrong:
            out.append(f"run {run}: layer {layer}: {wrong} of {len(group)} Pattern keys do not match their bits")
    return out


def _wrong_keys(bits: np.ndarray, keys: np.ndarray) -> int:
    """How many keys disagree with their bits, under the layer's bit count (not stored: the
    one of the eight counts a byte length allows that most keys agree with)."""
    lengths = {len(b) for b in bits}
    if len(lengths) != 1 or lengths.pop() % 2:
        return len(bits)  # bits of a layer all have the same even number of hex digits
    try:
        raw = rows_from_hex(bits)
    except ValueError:
        return len(bits)
    nbytes = raw.shape[1]
    words = np.zeros((len(raw), 8 * -(-nbytes // 8)), dtype=np.uint8)
    words[:, :nbytes] = raw
    counts = range(8 * nbytes - 7, 8 * nbytes + 1) if nbytes else [0]
    return min(int((pattern_keys(words, nbits) != keys).sum()) for nbits in counts)
