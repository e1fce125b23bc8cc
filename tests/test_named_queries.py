"""Every named query: a parameter row, header columns equal to the result's, and the helpers
that keep frames alike across backends (header columns for empty results, one string dtype,
the client-side write guard)."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.apd_graph import write_random_run
from tests.named_queries import PARAMS, RUNS, params
from toolkit.store import open_store, queries
from toolkit.store.base import Store, plain_strings


def _two_runs(store_path: str) -> None:
    with open_store(store_path) as s:
        for k, run in enumerate(RUNS):
            write_random_run(s, run, n=120, seed=k)


@pytest.fixture
def two_runs(shared_store):
    """The store holding both RUNS, opened read-only: the queries only read it."""
    with open_store(shared_store(_two_runs)[0], read_only=True) as s:
        yield s


def test_every_named_query_has_a_parameter_row():
    assert sorted(PARAMS) == queries.names()
    for name in queries.names():
        assert sorted(PARAMS[name]) == queries.parameters(name), name


@pytest.mark.parametrize("name", queries.names())
def test_header_columns_are_the_result_columns(two_runs, name):
    got = two_runs.query(name, **params(name))
    assert list(got.columns) == queries.columns(name)
    empty = two_runs.query(name, **params(name, run="no-such-run", runs=["no-such-run"]))
    assert list(empty.columns) == queries.columns(name)


def test_columns_reads_ranges_and_notes():
    assert queries.columns("flows") == ["p1", "p2", "p3", "p4", "p5", "p6", "strength", "purity", "errors", "label"]
    assert queries.columns("count_nodes") == ["run", "nodes"]
    assert queries.columns("delete_run_nodes") == []


class _Nameless(Store):
    """A server that sends empty results without column names (some Bolt servers do)."""

    backend, location = "nameless", "-"

    def _run(self, text, params=None):
        return pd.DataFrame()

    def _write_all(self, steps):
        raise AssertionError("not used")

    def _plan_refusal(self, text, params):
        raise AssertionError("not used")

    def _read(self, text, params):
        raise AssertionError("not used")

    def close(self):
        pass


def test_empty_results_take_the_header_columns():
    s = _Nameless()
    assert list(s.query("layer_summary", run="x").columns) == ["layer", "patterns", "instances", "errors", "max_support"]
    assert s.runs().empty and list(s.runs().columns)[:2] == ["run", "model"]


def test_plain_strings_gives_object_columns_with_none():
    df = pd.DataFrame({"s": pd.array(["a", None, "c"], dtype="string"), "n": [1, 2, 3],
                       "inferred": pd.Series(["x", "y", None])})
    out = plain_strings(df)
    assert out["s"].dtype == object and out["inferred"].dtype == object and out["n"].dtype == "int64"
    assert out["s"].tolist() == ["a", None, "c"] and out["inferred"].tolist() == ["x", "y", None]


def test_ladybug_strings_are_objects(two_runs):
    got = two_runs.query("patterns", run=RUNS[1])
    assert got["key"].dtype == object and got["bits"].dtype == object
