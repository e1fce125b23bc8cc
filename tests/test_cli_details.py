"""Small CLI behaviours: `apd query --help`'s own example runs, `flows --top 0`, the compact
`apd runs` table with full detail under --json, unknown runs / parameters in `apd query`,
readable floats and nodes in tables, `query --list` descriptions, `store info`'s header,
and the mode of exported files."""
from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.apd_graph import write_random_run
from tests.cli import one_line_error
from toolkit.cli import main
from toolkit.store import open_store


@pytest.fixture
def run(store_path):
    with open_store(store_path) as s:
        return write_random_run(s, "digits-test", n=150, seed=3)[0]


def test_query_help_example_runs(apd, run):
    help_text = CliRunner().invoke(main, ["query", "--help"]).stdout
    example = re.search(r"Example: apd (.+)", help_text).group(1)
    rows = apd.json(*shlex.split(example))
    assert [r["instances"] for r in rows] == [150, 150, 150]


def test_flows_top_zero_prints_only_the_summary(apd, run):
    out = apd("flows", "--run", "digits-test", "--top", "0").stdout.splitlines()
    assert len(out) == 1 and out[0].startswith("digits-test: ") and "flows over layers [2, 3]" in out[0]
    table = apd("flows", "--run", "digits-test", "--top", "3").stdout.splitlines()
    assert len(table) == 1 + 1 + 3  # summary, header, three flows


def test_runs_compact_table_and_full_json(apd, run):
    lines = apd("runs").stdout.splitlines()
    assert lines[0].split() == ["run", "model", "dataset", "split", "instances", "accuracy", "layers"]
    assert lines[1].split()[0] == "digits-test" and max(map(len, lines)) < 100
    full = apd.json("runs")[0]
    assert {"model_hash", "created", "n_instance", "n_pattern"} <= set(full) and full["n_instance"] == 150


def test_query_checks_runs_and_parameter_names(apd, run):
    result = apd("query", "patterns", "-p", "run=nosuch", ok=False)
    assert (result.exit_code, result.stderr) == (1, "Error: no run named 'nosuch' in the store (`apd runs` lists them)\n")
    result = apd("query", "pattern_counts", "-p", 'runs=["digits-test","gone"]', ok=False)
    assert result.stderr == "Error: no run named 'gone' in the store (`apd runs` lists them)\n"
    result = apd("query", "runs", "-p", "run=digits-test", ok=False)
    assert result.stderr == "Error: query 'runs' has no parameter run (its parameters: none)\n"
    assert len(apd.json("query", "pattern_counts", "-p", 'runs=["digits-test"]')) == 3


def test_table_output_writes_floats_and_nodes_readably(apd, run):
    out = apd("cypher", "RETURN 0.9676609 AS s, 0.0000015 AS tiny, 2.0 AS whole").stdout.splitlines()
    assert out[1].split() == ["0.967661", "1.5e-06", "2.0"]
    key = apd.json("cypher", "MATCH (p:Pattern) WHERE p.run = 'digits-test' RETURN p.key AS key "
                             "ORDER BY p.layer, p.key LIMIT 1")[0]["key"]
    node = apd("cypher", "MATCH (p:Pattern) WHERE p.run = 'digits-test' RETURN p ORDER BY p.layer, p.key LIMIT 1")
    cell = node.stdout.splitlines()[1].strip()
    assert cell.startswith("(:Pattern {") and f'key: "{key}"' in cell and "layer: 1" in cell
    assert "_ID" not in cell and "_LABEL" not in cell and "element_id" not in cell


def test_query_list_describes_each_query(apd, run):
    from toolkit.store import queries

    listed = {r["name"]: r for r in apd.json("query", "--list")}
    first = queries.read_text("layer_summary").splitlines()[0]
    assert listed["layer_summary"]["description"] == first.removeprefix("// ").rstrip(".")
    lines = apd("query", "--list").stdout.splitlines()
    assert all(listed[ln.split()[0]]["description"] in ln for ln in lines) and len(lines) == len(listed)


def test_evolution_of_an_unknown_run_says_so(apd, run):
    one_line_error(apd("evolution", "--run", "nosuch", ok=False), "no run named 'nosuch' in the store")


@pytest.mark.embedded_only
def test_store_info_names_the_path_once(apd, run):
    out = apd("store", "info").stdout
    assert out.count(str(Path(apd.store_path).resolve())) == 1 and out.startswith(str(Path(apd.store_path).resolve()))


def test_exports_get_the_umask_mode(apd, run, tmp_path):
    old = os.umask(0o022)
    try:
        apd("export", "--run", "digits-test", "--what", "patterns", "--out", str(tmp_path / "p.csv"))
        apd("export", "--run", "digits-test", "--format", "neo4j-admin", "--out", str(tmp_path / "adm"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "adm").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "adm" / "Pattern.csv").stat().st_mode) == 0o644
