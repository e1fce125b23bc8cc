"""Export a run out of the store: one table as CSV / Parquet, or the whole run as the header
and data CSVs of `neo4j-admin database import full`.

The bulk importer is the way to load runs of millions of instances into Neo4j: it writes
the store files directly, far faster than transactional `UNWIND` batches over Bolt.
Everything is read with the `export_*` templates in cypher/, a column at a time, so the
same statements serve every label and relationship type on both backends.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from toolkit.apd.flows import parse_layers, query_flows
from toolkit.apd.runs import run_layers
from toolkit.errors import ApdError, no_such_run
from toolkit.paths import default_mode, writable_path
from toolkit.store import Store
from toolkit.store.schema import NODES, RELS

TABLES = {"instances": "Instance", "patterns": "Pattern", "clusters": "Cluster", "neurons": "Neuron"}
# Relationship tables: per-instance distances of `apd neighbours` (on ACTIVATES), its NEAR edges.
REL_TABLES = {"distances": ("ACTIVATES", {"src": "instance", "dst": "pattern"}),
              "near": ("NEAR", {"src": "pattern", "dst": "neighbour"})}
WHAT = (*TABLES, "flows", *REL_TABLES)
FORMATS = ("csv", "parquet")
# neo4j-admin header types for the schema's LadybugDB types (strings need no suffix).
ADMIN_TYPES = {"STRING": "", "INT64": ":long", "DOUBLE": ":double", "BOOLEAN": ":boolean"}
MARKER = "import.sh"  # a folder holding it is an earlier export, safe to replace
ADMIN_ROWS = 500_000  # rows per block of CSV lines built at once (bounds the export's memory)


def _check_run(store: Store, run: str) -> None:
    if run not in set(store.query("runs")["run"]):
        raise no_such_run(run)


def read_nodes(store: Store, run: str, table: str) -> pd.DataFrame:
    """Every property of `run`'s `table` nodes, one row per node in uid order."""
    frame = pd.DataFrame()
    for prop in [p for p in NODES[table].props if p != "uid"]:
        got = store.query_template("export_node_prop", {"table": table, "prop": prop}, run=run)
        if "uid" not in frame:
            frame["uid"] = got["uid"].to_numpy()
        elif not (got["uid"].to_numpy() == frame["uid"].to_numpy()).all():
            raise ApdError(f"{table} nodes of run {run!r} changed while exporting: export again")
        frame[prop] = got["value"].to_numpy()
    return _typed(frame, NODES[table].props)


def read_rels(store: Store, run: str, table: str) -> pd.DataFrame:
    """`src`, `dst` uids and every property of `run`'s `table` relationships, in (src, dst) order."""
    rel = RELS[table]
    ends = {"table": table, "src": rel.src, "dst": rel.dst}
    frame = store.query_template("export_rel_ends", ends, run=run)[["src", "dst"]].reset_index(drop=True)
    for prop in rel.props:
        got = store.query_template("export_rel_prop", {**ends, "prop": prop}, run=run)
        if not (got["src"].to_numpy() == frame["src"].to_numpy()).all():
            raise ApdError(f"{table} relationships of run {run!r} changed while exporting: export again")
        frame[prop] = got["value"].to_numpy()
    return _typed(frame, {"src": "STRING", "dst": "STRING", **rel.props})


def _typed(frame: pd.DataFrame, spec: dict[str, str]) -> pd.DataFrame:
    """Integers stay integers where a property is unset (nullable Int64, not float)."""
    for c, t in spec.items():
        if c in frame and t == "INT64":
            frame[c] = frame[c].astype("Int64")
        elif c in frame and t == "BOOLEAN":
            frame[c] = frame[c].astype("boolean")
        elif c in frame and t == "DOUBLE":
            frame[c] = frame[c].astype("float64")
    return frame


def table(store: Store, run: str, what: str, layers: str | None = None, min_strength: int = 1) -> pd.DataFrame:
    """One of `instances`, `patterns`, `clusters`, `neurons` (node properties), `flows` (computed
    in Cypher), `distances` (ACTIVATES with `apd neighbours`' distances) or `near` (NEAR edges)."""
    if what not in WHAT:
        raise ApdError(f"--what must be one of {', '.join(WHAT)} (got {what!r})")
    n_layers = run_layers(store, run)  # an unknown run, or one without instances, is refused here
    if what == "flows":
        flows = query_flows(store, run, parse_layers(layers, n_layers), min_strength)
        return flows.assign(patterns=flows["patterns"].map(" ".join))
    if what in REL_TABLES:
        rel, names = REL_TABLES[what]
        frame = read_rels(store, run, rel).rename(columns=names)
        if what == "distances" and frame["near_same"].isna().all():
            raise ApdError(f"run {run!r} has no distances: run `apd neighbours --run {run}` first")
        return frame
    frame = read_nodes(store, run, TABLES[what])
    if what == "clusters" and frame.empty:
        raise ApdError(f"run {run!r} has no clusters: run `apd split --run {run}` first")
    sort = {"instances": ["idx"], "patterns": ["layer", "key"], "clusters": ["cid"], "neurons": ["layer", "index"]}[what]
    return frame.sort_values(sort, ignore_index=True)


def export_table(store: Store, run: str, what: str, fmt: str, out: str | os.PathLike,
                 layers: str | None = None, min_strength: int = 1) -> dict:
    """Write one table to `out` (through a temp file: an interrupted export leaves nothing)."""
    if fmt not in FORMATS:
        raise ApdError(f"--format {fmt} writes a folder: use --out DIR with --format neo4j-admin, "
                       f"or --format {' / '.join(FORMATS)} for --what")
    other = {f".{f}" for f in FORMATS} - {f".{fmt}"}
    if Path(out).suffix.lower() in other:
        raise ApdError(f"--out {Path(out).name} names another format than --format {fmt}")
    out = writable_path(out, "--out")
    frame = table(store, run, what, layers, min_strength)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        default_mode(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"run": run, "what": what, "format": fmt, "rows": len(frame), "columns": list(frame.columns),
            "path": str(out)}


def _admin_csv(frame: pd.DataFrame, header: list[str], folder: Path, name: str) -> dict:
    """`name.header.csv` (one line) and `name.csv` (rows, no header).

    Strings are always quoted: neo4j-admin reads an empty unquoted field as no property, so
    an empty string (e.g. Run.factory when there is none) came back as null; nulls stay
    empty and unquoted. Booleans as true/false. Lines are built a column at a time.
    """
    (folder / f"{name}.header.csv").write_text(",".join(header) + "\n")
    with open(folder / f"{name}.csv", "w") as out:
        for start in range(0, len(frame), ADMIN_ROWS):
            part = frame.iloc[start : start + ADMIN_ROWS]
            fields = [_admin_field(part[c]) for c in part.columns]
            lines = fields[0].str.cat(fields[1:], sep=",") if len(fields) > 1 else fields[0]
            out.write("\n".join(lines.tolist()) + "\n")
    return {"name": name, "rows": len(frame), "header": f"{name}.header.csv", "data": f"{name}.csv"}


def _admin_field(col: pd.Series) -> pd.Series:
    """One column as neo4j-admin CSV fields: quoted strings, true/false, numbers; '' for null."""
    present = col.notna()
    if str(col.dtype) in ("boolean", "bool"):
        text = col.map({True: "true", False: "false"}).astype(object)
    elif pd.api.types.is_string_dtype(col.dtype) or col.dtype == object:
        text = '"' + col.astype(str).str.replace('"', '""', regex=False) + '"'
    else:
        text = col.astype(str)
    return text.where(present, "").astype(str).reset_index(drop=True)


def _earlier_export(folder: Path) -> bool:
    """A folder holding an export's files and nothing else: replacing it deletes no one else's."""
    ours = {MARKER} | {f"{n}{ext}" for n in (*NODES, *RELS) for ext in (".header.csv", ".csv")}
    entries = list(folder.iterdir())
    return (folder / MARKER).is_file() and all(e.is_file() and e.name in ours for e in entries)


def export_admin(store: Store, run: str, out: str | os.PathLike, progress: bool = False) -> dict:
    """The whole run as `neo4j-admin database import full` input in folder `out`, plus import.sh.

    Node files carry `uid:ID` (uids are unique across runs: one ID space), typed property
    columns and `:LABEL`; relationship files `:START_ID`, `:END_ID`, `:TYPE` and typed
    properties. A folder that holds an earlier export (and nothing else) is replaced whole.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _earlier_export(out))):
        raise ApdError(f"--out {out} must be a new or empty folder (or an earlier `apd export` folder "
                       "holding nothing else)")
    writable_path(out / MARKER, "--out")
    _check_run(store, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    bar = tqdm(total=len(NODES) + len(RELS), desc="export", unit="table", disable=not progress)
    try:
        nodes, rels, uids = [], [], {}
        for name, spec in NODES.items():
            frame = read_nodes(store, run, name)
            uids[name] = frame["uid"].to_numpy()
            bar.update()
            if len(frame):
                header = [f"{p}:ID" if p == "uid" else f"{p}{ADMIN_TYPES[t]}" for p, t in spec.props.items()]
                nodes.append(_admin_csv(frame.assign(**{":LABEL": name}), header + [":LABEL"], tmp, name))
        for name, rel in RELS.items():
            frame = read_rels(store, run, name)
            # only ends inside the export: a coarse run's COARSENS names its source's Run node
            frame = frame[np.isin(frame["dst"].to_numpy(), uids[rel.dst])].reset_index(drop=True)
            bar.update()
            if len(frame):
                frame.insert(2, ":TYPE", name)
                header = [":START_ID", ":END_ID", ":TYPE"] + [f"{p}{ADMIN_TYPES[t]}" for p, t in rel.props.items()]
                rels.append(_admin_csv(frame, header, tmp, name))
        (tmp / MARKER).write_text(_import_script(nodes, rels))
        (tmp / MARKER).chmod(0o755)
        default_mode(tmp, directory=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return {"run": run, "format": "neo4j-admin", "path": str(out), "nodes": nodes, "relationships": rels}


def _import_script(nodes: list[dict], rels: list[dict]) -> str:
    args = [f"    --nodes={n['header']},{n['data']} \\" for n in nodes]
    args += [f"    --relationships={r['header']},{r['data']} \\" for r in rels]
    return "\n".join([
        "#!/bin/sh",
        "# Load this export into a new Neo4j 5 database with the offline bulk importer.",
        "# Run it where neo4j-admin is (the Neo4j server's bin/, or its Docker image), with the",
        "# target database stopped or not yet created. Usage: ./import.sh [DATABASE]  (default neo4j)",
        "# Afterwards: CREATE DATABASE <name> (Enterprise) or restart (Community, database neo4j),",
        "# then `apd runs --store neo4j://...` lists the run; the first writing apd command creates",
        "# the uid constraints and run indexes. NEO4J_ADMIN names another neo4j-admin command",
        "# (split on spaces), e.g. NEO4J_ADMIN=\"/opt/neo4j/bin/neo4j-admin\" ./import.sh.",
        "set -e",
        'cd "$(dirname "$0")"',
        '${NEO4J_ADMIN:-neo4j-admin} database import full "${1:-neo4j}" \\',
        *args,
        "    --overwrite-destination=false",
        "",
    ])


__all__ = ["export_table", "export_admin", "table", "read_nodes", "read_rels", "WHAT", "FORMATS"]
