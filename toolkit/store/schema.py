"""The graph schema, read from the LadybugDB DDL so that names and types live in one place.

Bulk frames are typed against it before they are written: LadybugDB silently truncates a
float written into an INT64 column, and both backends reject undeclared properties.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit.store.queries import read_text

_NODE = re.compile(r"CREATE NODE TABLE IF NOT EXISTS (\w+)\((.*), PRIMARY KEY\((\w+)\)\);")
_REL = re.compile(r"CREATE REL TABLE IF NOT EXISTS `?(\w+)`?\(FROM (\w+) TO (\w+)(?:, (.*))?\);")

_DTYPES = {"STRING": object, "INT64": np.int64, "DOUBLE": np.float64, "BOOLEAN": bool}


@dataclass(frozen=True)
class NodeTable:
    name: str
    props: dict[str, str]  # property -> LadybugDB type, in declaration order


@dataclass(frozen=True)
class RelTable:
    name: str
    src: str
    dst: str
    props: dict[str, str]


def _props(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pairs = [p.replace("`", "").split() for p in text.split(",")]
    return {name: typ for name, typ in pairs}


def _parse() -> tuple[dict[str, NodeTable], dict[str, RelTable]]:
    ddl = read_text("ladybug/schema")
    nodes = {m[0]: NodeTable(m[0], _props(m[1])) for m in _NODE.findall(ddl)}
    rels = {m[0]: RelTable(m[0], m[1], m[2], _props(m[3])) for m in _REL.findall(ddl)}
    return nodes, rels


ALL_NODES, RELS = _parse()
PENDING = "PendingWrite"  # the store's record of an unfinished write (toolkit/store/pending.py)
# A run's data: every node table but the bookkeeping one, which no replace, count or export touches.
NODES = {name: table for name, table in ALL_NODES.items() if name != PENDING}


def typed_nodes(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of `frame` that the table declares, in schema order, cast to their types.

    Every frame must carry `uid` and `run`; an unknown column is a programming error.
    """
    spec = NODES[table].props
    return _typed(table, frame, spec, required=("uid", "run"))


def typed_rels(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`src`, `dst` (uids) then the relationship's declared properties, cast to their types."""
    spec = {"src": "STRING", "dst": "STRING", **RELS[table].props}
    return _typed(table, frame, spec, required=("src", "dst"))


def _typed(table: str, frame: pd.DataFrame, spec: dict[str, str], required: tuple[str, ...]) -> pd.DataFrame:
    unknown = set(frame.columns) - set(spec)
    if unknown:
        raise ValueError(f"{table}: undeclared properties {sorted(unknown)}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: frame lacks {missing}")
    cols = [c for c in spec if c in frame.columns]
    out = {}
    for c in cols:
        col = frame[c]
        if col.isna().any():
            raise ValueError(f"{table}.{c}: bulk frames must not hold nulls")
        out[c] = col.astype(str).to_numpy(dtype=object) if spec[c] == "STRING" else col.to_numpy().astype(_DTYPES[spec[c]])
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
