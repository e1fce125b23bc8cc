"""Small CLI behaviours: `apd query --help`'s own example runs, `flows --top 0`, the compact
`apd runs` table with full detail under --json, and unknown runs / parameters in `apd query`."""
from __future__ import annotations

import re
import shlex

import pytest
from click.testing import CliRunner

from tests.apd_graph import write_random_run
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
