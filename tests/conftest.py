"""Shared fixtures: a fresh store per test on each backend and a CLI runner that runs the real `apd`.

Every test that takes `store_path`, `store` or `apd` runs twice: on a fresh LadybugDB file
and on an emptied database of the session's Neo4j 5 server (tools/neo4j/serve, started on
first use; or the server at APD_NEO4J_URI). Tests about the embedded file itself (its lock,
its side files, its kill points) are marked `embedded_only`. Without Java and Maven the
Neo4j leg is skipped, unless APD_REQUIRE_NEO4J=1 (CI), where it fails.
"""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.store import open_store

BACKENDS = ("lbug", "neo4j")


def pytest_configure(config):
    config.addinivalue_line("markers", "embedded_only: a test of the LadybugDB file itself; no Neo4j leg")


def pytest_collection_modifyitems(config, items):
    """No Neo4j leg for embedded-only tests (deselected, not skipped: there is nothing to run)."""
    keep, drop = [], []
    for item in items:
        leg = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        (drop if leg == "neo4j" and item.get_closest_marker("embedded_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory):
    """The session's Neo4j server: {'bolt', 'http', 'password'}; APD_NEO4J_PASSWORD is set for it."""
    from tests.neo4j_server import missing_tools, neo4j_server as serve

    if os.environ.get("APD_NEO4J_URI"):
        yield {"bolt": os.environ["APD_NEO4J_URI"], "http": None, "password": os.environ.get("APD_NEO4J_PASSWORD", "")}
        return
    why = missing_tools()
    if why:
        if os.environ.get("APD_REQUIRE_NEO4J") == "1":
            pytest.fail(f"APD_REQUIRE_NEO4J=1 but {why}")
        pytest.skip(why)
    saved = os.environ.get("APD_NEO4J_PASSWORD")
    with serve(tmp_path_factory.mktemp("neo4j")) as server:
        os.environ["APD_NEO4J_PASSWORD"] = server["password"]
        try:
            yield server
        finally:
            os.environ.pop("APD_NEO4J_PASSWORD") if saved is None else os.environ.__setitem__("APD_NEO4J_PASSWORD", saved)


def empty_neo4j(uri: str) -> None:
    """Delete every node, in bounded transactions (the schema stays)."""
    import neo4j

    with neo4j.GraphDatabase.driver(uri, auth=(os.environ.get("APD_NEO4J_USER", "neo4j"),
                                               os.environ["APD_NEO4J_PASSWORD"])) as d, \
            d.session(database=os.environ.get("APD_NEO4J_DATABASE") or None) as s:
        s.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_path(backend, tmp_path, request):
    """A LadybugDB file path that does not exist yet, or the bolt:// URI of an emptied Neo4j."""
    if backend == "lbug":
        return str(tmp_path / "test.lbug")
    server = request.getfixturevalue("neo4j_server")
    empty_neo4j(server["bolt"])
    return server["bolt"]


@pytest.fixture
def store(store_path):
    with open_store(store_path) as s:
        yield s


class Apd:
    """Invoke `apd ...` in-process; `.json(...)` parses `--json` output."""

    def __init__(self, store_path: str):
        self.store_path = store_path
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True):
        result = self.runner.invoke(main, [*args, "--store", self.store_path], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def apd(store_path):
    return Apd(store_path)


@pytest.fixture(scope="session")
def demo_store_master(tmp_path_factory):
    """`apd demo` (digits, 64-32-32-32-10, 30 epochs) built once per session; copy it, never write to it."""
    from loaders.demo import demo

    where = tmp_path_factory.mktemp("demo")
    demo(str(where / "apd.lbug"), str(where / "apd-demo.pt"), progress=False)
    return where / "apd.lbug"


@pytest.fixture
def demo_store(demo_store_master, tmp_path):
    """A private copy of the demo store (the model stays where the Run nodes point)."""
    import shutil

    for f in demo_store_master.parent.glob(demo_store_master.name + "*"):
        (shutil.copytree if f.is_dir() else shutil.copy2)(f, tmp_path / f.name)
    return str(tmp_path / demo_store_master.name)
