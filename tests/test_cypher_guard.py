"""`apd cypher` reads the store's graph and nothing else, on both backends.

Each hostile statement runs through the real CLI against a store holding a run, beside a
watched folder with a canary file and a victim file: the command must exit 1 with one
`refused` line, the canary's contents must appear in no output, every file in the folder
must keep its bytes and mtime, nothing may appear in it, and the graph must keep its counts.
The backends' plan checks are also tested on their own (statements the token gate would
stop first), and every named query must pass both gates: the guard refuses no real read.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.apd_graph import random_apd, write_random_run
from tests.cli import Apd
from tests.named_queries import PARAMS, params
from tests.neo4j_server import empty_neo4j
from toolkit.store import open_store, queries, statement
from toolkit.store.ladybug import plan_refusal
from toolkit.store.schema import ALL_NODES, RELS

CANARY = "apd-canary-7f3a9c"

HOSTILE = [  # (statement, what the refusal names); {canary}, {victim}, {new}, {dir} lie in the watched folder
    ("CREATE (:Label {uid: 'x', run: 'x', value: 1})", "CREATE writes"),
    ("match (n:Instance) set n.label = 0", "SET writes"),
    ("MATCH (n) // a comment\n DETACH DELETE n", "DETACH writes"),
    ("/* read */ MERGE (:Label {uid: 'x'})", "MERGE writes"),
    ("MATCH (n:Instance) REMOVE n.label", "REMOVE writes"),
    ("MATCH (n:Instance) FOREACH (x IN [1] | SET n.label = x)", "FOREACH writes"),
    ("CREATE INDEX evil IF NOT EXISTS FOR (n:Instance) ON (n.label)", "CREATE writes"),
    ("DROP TABLE Instance", "DROP changes the schema"),
    ("ALTER TABLE Instance ADD evil INT64", "ALTER changes the schema"),
    ("COPY (RETURN 'x' AS x) TO '{new}'", "COPY writes files"),
    ("COPY (MATCH (i:Instance) RETURN i.uid AS uid) TO '{victim}'", "COPY writes files"),
    ("CoPy/**/(RETURN 1 AS x) TO '{new}'", "COPY writes files"),
    ("COPY Instance FROM '{canary}'", "COPY writes files"),
    ("EXPORT DATABASE '{dir}'", "EXPORT writes files"),
    ("IMPORT DATABASE '{dir}'", "IMPORT reads files"),
    ("LOAD FROM '{canary}' (file_format='csv', header=false, delim=':') RETURN column0 AS user LIMIT 2",
     "LOAD reads files"),
    ("load from '{canary}' return *", "LOAD reads files"),
    ("LOAD CSV FROM 'file://{canary}' AS line RETURN line", "LOAD reads files"),
    ("load csv with headers from 'file://{canary}' as l return l", "LOAD reads files"),
    ("ATTACH '{new}' AS o (dbtype lbug)", "ATTACH opens another database"),
    ("USE system SHOW USERS", "USE opens another database"),
    ("INSTALL json", "INSTALL loads code"),
    ("RETURN 1 AS a; COPY (RETURN 1 AS x) TO '{new}'", "one statement at a time"),
    ("MATCH (n:Run) RETURN n.run AS r;\n// and then\nCREATE (:Label {uid: 'y'})", "one statement at a time"),
    ("CALL threads=4", "it calls threads"),
    ("CALL project_graph('g', ['Pattern'], ['NEXT'])", "it calls project_graph"),
    ("CALL dbms.listConfig() YIELD name RETURN name", "it calls dbms.listConfig"),
    ("CALL db.createLabel('Evil')", "it calls db.createLabel"),
    ("CALL apoc.load.json('file://{canary}')", "it calls apoc.load.json"),
    ("CALL `dbms`.`components`()", "it calls dbms.components"),
    ("SHOW TRANSACTIONS", "SHOW manages the server"),
    ("BEGIN TRANSACTION", "BEGIN manages transactions"),
    ("CHECKPOINT", "CHECKPOINT manages transactions"),
    ("RETURN 'x AS x", "a string that never closes"),
    ("MATCH (n) RETURN n /* then COPY", "a comment that never closes"),
]

READS = {  # statements that must pass, per backend, with the rows they return
    "common": [
        ("MATCH (n:Run) RETURN n.run AS `COPY`", 1),
        ("MATCH (n:Run) WHERE n.run = 'COPY (RETURN 1) TO x' RETURN n.run AS r", 0),
        ("// LOAD FROM '/etc/passwd'\nMATCH (i:Instance) RETURN i.uid AS uid LIMIT 3", 3),
        ("MATCH (a:Pattern)-[:NEXT*1..2]->(b:Pattern) WHERE a.run = $run RETURN count(*) AS n", 1),
        ("MATCH (i:Instance) WHERE i.run = $run RETURN i.label AS label, count(*) AS n ORDER BY label", 3),
    ],
    "lbug": [("CALL show_tables() RETURN *", len(ALL_NODES) + len(RELS)), ("CALL table_info('Instance') RETURN *", None)],
    "neo4j": [("CALL db.labels() YIELD label RETURN label", None), ("CYPHER 5 MATCH (p:Pattern) RETURN count(p) AS n", 1)],
}


def _watched(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>", p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _run_r(store_path: str) -> None:
    with open_store(store_path) as s:
        write_random_run(s, "r", n=60, seed=2)


@pytest.fixture
def world(shared_store, tmp_path):
    """A store holding run `r` (shared: the refused statements must leave it as it is) and a
    watched folder of this test's own."""
    store_path, _ = shared_store(_run_r)
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "canary.csv").write_text(f"root:{CANARY}:19000:0:99999:7:::\n")
    (folder / "victim.csv").write_text("the user's own notes\n")
    fill = {"canary": folder / "canary.csv", "victim": folder / "victim.csv", "new": folder / "new.csv",
            "dir": folder / "exported"}
    return store_path, folder, {k: str(v) for k, v in fill.items()}


@pytest.mark.parametrize("text, why", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_cypher_touches_nothing_but_the_graph(world, text, why):
    store_path, folder, fill = world
    with open_store(store_path, read_only=True) as s:
        counts = s.counts()
    before = _watched(folder)
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    result = Apd(store_path)("cypher", text, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: refused: `apd cypher` is read-only") and why in lines[0], \
        result.stderr
    assert CANARY not in result.output
    assert _watched(folder) == before
    with open_store(store_path, read_only=True) as s:
        pd.testing.assert_frame_equal(s.counts(), counts)


def test_reads_of_the_graph_pass(world, backend):
    store_path, _, _ = world
    apd = Apd(store_path)
    for text, rows in READS["common"] + READS[backend]:
        got = apd.json("cypher", text, "-p", "run=r")
        assert rows is None or len(got) == rows, (text, got)
    patterns = len(random_apd("r", n=60, seed=2)[0]["Pattern"])
    assert apd.json("cypher", "MATCH (p:Pattern) WHERE p.run = $run RETURN count(p) AS n", "-p", "run=r") == \
        [{"n": patterns}]


def test_every_named_query_passes_both_gates(world):
    """No false refusal: the toolkit's own reads are reads by both gates' judgement."""
    with open_store(world[0], read_only=True) as s:
        for name in PARAMS:
            text = queries.body(name)
            assert statement.refusal(text, s.schema_calls) is None, name
            assert s._plan_refusal(text, params(name, run="r", runs=["r"])) is None, name


def test_ladybug_plans_judged_without_the_token_gate(tmp_path):
    """The plan gate alone refuses what the token gate stops first: COPY TO, LOAD FROM, a
    standalone CALL, a write. Planning (EXPLAIN) of these creates and reads nothing."""
    canary = tmp_path / "canary.csv"
    canary.write_text(f"{CANARY}\n")
    with open_store(str(tmp_path / "s.lbug")) as s:
        plans = {text: str(s._run("EXPLAIN " + text).iloc[0, 0]) for text in (
            f"COPY (RETURN 1 AS x) TO '{tmp_path / 'new.csv'}'",
            f"LOAD FROM '{canary}' (header=false) RETURN column0",
            "CALL threads=4",
            "CREATE (:Label {uid: 'x', run: 'x', value: 1})",
            "MATCH (i:Instance) RETURN count(i) AS n")}
    whys = [plan_refusal(p) for p in plans.values()]
    assert whys[0] == "its plan holds COPY_TO, which is not a read of the graph"
    assert whys[1].startswith("it calls read_csv") and whys[1].endswith("which reads outside the graph"), whys[1]
    assert "STANDALONE_CALL" in whys[2]
    assert whys[3] is not None and "not a read of the graph" in whys[3]
    assert whys[4] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.csv", "s.lbug"]


def test_neo4j_plans_judged_without_the_token_gate(neo4j_server, tmp_path):
    empty_neo4j(neo4j_server["bolt"])
    with open_store(neo4j_server["bolt"], read_only=True) as s:
        assert s._plan_refusal("CREATE (:Label {uid: 'x'})", {}) == "it writes"
        assert s._plan_refusal("LOAD CSV FROM 'file:///x.csv' AS l RETURN l", {}) == "LOAD CSV reads files"
        assert s._plan_refusal("CALL dbms.components()", {}) == "it changes the schema or the system"
        assert s._plan_refusal("SHOW TRANSACTIONS", {}) is not None
        assert s._plan_refusal("CALL db.ping()", {}) == "it calls procedure db.ping"
        assert s._plan_refusal("MATCH (i:Instance) RETURN count(i) AS n", {}) is None
        assert s.counts().empty


@pytest.mark.parametrize("text, want", [
    ("MATCH (n) RETURN n.set AS s, $load AS l", None),
    ("MATCH (n) WHERE n.uid = 'CREATE (x)' RETURN n.uid AS `set`", None),
    ("RETURN 'it''s'", None),  # two strings side by side: the database refuses it, no clause hides there
    ("RETURN \"a\\\"; COPY\" AS x", None),  # an escaped quote keeps the string open
    ("RETURN 'a\\\\'; COPY (RETURN 1) TO 'x'", "one statement at a time"),  # an escaped backslash closes it
    ("RETURN 1 AS `a``; COPY`", None),
    ("RETURN 1 AS x // ; COPY\r COPY (RETURN 1) TO 'x'", "COPY writes files"),  # \r ends a comment
    ("MATCH (n:Instance) CALL { WITH n RETURN n.uid AS u } RETURN u", None),
    ("CALL (n) { RETURN 1 AS one } RETURN one", None),
    ("CALL show_tables() RETURN *", None),
    ("CALL SHOW_TABLES() RETURN *", None),
    ("CALL db.labels()", "it calls db.labels"),  # not one of LadybugDB's listings
    ("RETURN 1;;", None),
    ("RETURN 1; RETURN 2", "one statement at a time"),
])
def test_token_gate(text, want):
    from toolkit.store.ladybug import LadybugStore

    got = statement.refusal(text, LadybugStore.schema_calls)
    assert (got is None) == (want is None) and (want is None or want in got), got
