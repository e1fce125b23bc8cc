"""`apd export --format neo4j-admin`, really imported: its own import.sh runs Neo4j's
`neo4j-admin database import full` (tools/neo4j/admin, the test server's jars) into a fresh
database, a server starts on that data, and every named query answers as on the LadybugDB
store the run was exported from.

The export's header and data files are checked against the store in tests/test_export.py;
this is the end-to-end proof that Neo4j's importer reads them as meant (IDs, types,
booleans, labels, relationship ends). Without Java and Maven it is skipped, unless
APD_REQUIRE_NEO4J=1 (CI), where it fails, as for every other Neo4j test (tests/conftest.py).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.cli import Apd
from tests.named_queries import RUN, params
from tests.neo4j_server import missing_tools, neo4j_server
from toolkit.store import open_store, queries

ADMIN = Path(__file__).resolve().parent.parent / "tools" / "neo4j" / "admin"
# Named queries that must return rows on the demo's test run: a comparison of empty frames proves nothing.
MUST_HAVE_ROWS = {"apd_next", "apd_predicts", "activates_counts", "cluster_sizes", "flows", "instance_hardness",
                  "instance_patterns", "label_patterns", "layer_summary", "pattern_counts", "patterns", "run_meta",
                  "runs", "transitions"}


@pytest.fixture
def server_tools():
    why = missing_tools()
    if why:
        if os.environ.get("APD_REQUIRE_NEO4J") == "1":
            pytest.fail(f"APD_REQUIRE_NEO4J=1 but {why}")
        pytest.skip(why)


def run_import(export: Path, home: Path) -> subprocess.CompletedProcess:
    """The export's own import.sh, with neo4j-admin from the test server's jars."""
    return subprocess.run([str(export / "import.sh"), "neo4j"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NEO4J_ADMIN": f"{ADMIN} {home}"})


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order whatever order a backend returned them in (lists sort by their text),
    nulls alike: LadybugDB gives an integer column holding nulls as floats with NaN, the
    driver as objects with None."""
    frame = frame.copy()
    for c in frame.columns:
        if frame[c].isna().any():
            numeric = pd.to_numeric(frame[c], errors="coerce")
            same = numeric.notna() == frame[c].notna()
            frame[c] = numeric.astype("float64") if same.all() else frame[c].astype(object).where(frame[c].notna(), None)
    order = frame.astype(str).sort_values(list(frame.columns), kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def test_imported_run_answers_every_named_query_like_ladybugdb(server_tools, demo_store, tmp_path):
    with open_store(demo_store) as s:  # one run in each store, so the queries over all runs agree too
        s.drop_run("digits-train")
    export, home = tmp_path / "export", tmp_path / "home"
    Apd(demo_store)("split", "--run", RUN)  # Cluster nodes, IN and SPLIT_INTO edges in the export too
    Apd(demo_store)("export", "--run", RUN, "--format", "neo4j-admin", "--out", str(export))

    done = run_import(export, home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Imported:" in done.stdout
    again = run_import(export, home)  # --overwrite-destination=false: an existing database is kept
    assert again.returncode != 0
    assert "already exist" in (again.stdout + again.stderr).lower(), again.stdout + again.stderr

    saved = os.environ.get("APD_NEO4J_PASSWORD")
    try:
        with neo4j_server(tmp_path / "server", data=home / "data") as srv, open_store(demo_store, read_only=True) as lbug:
            os.environ["APD_NEO4J_PASSWORD"] = srv["password"]
            with open_store(srv["bolt"], read_only=True) as neo:
                assert neo.counts(RUN).to_dict() == lbug.counts(RUN).to_dict()
                with_rows = set()
                for name in queries.names():
                    args = params(name, runs=[RUN])
                    want, got = lbug.query(name, **args), neo.query(name, **args)
                    assert list(got.columns) == list(want.columns), name
                    assert len(got) == len(want), name
                    pd.testing.assert_frame_equal(canonical(got), canonical(want), check_dtype=False, obj=name)
                    if len(want):
                        with_rows.add(name)
                assert MUST_HAVE_ROWS <= with_rows, sorted(MUST_HAVE_ROWS - with_rows)
    finally:
        os.environ.pop("APD_NEO4J_PASSWORD") if saved is None else os.environ.__setitem__("APD_NEO4J_PASSWORD", saved)
