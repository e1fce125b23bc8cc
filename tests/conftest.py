"""Shared fixtures: a fresh store per test on each backend, a CLI runner that runs the real
`apd`, and the stores that are slow to build (a trained net's), built once per session.

Every test that takes `store_path`, `store`, `apd` or `shared_store` runs twice: on a
LadybugDB file and on an emptied database of the session's Neo4j 5 server (tools/neo4j/serve,
started on first use; or the server at APD_NEO4J_URI). Tests about the embedded file itself
(its lock, its side files, its kill points), and tests whose store is a LadybugDB file on
either leg (the demo's: a Neo4j leg would run the same), are marked `embedded_only`.
Without Java and Maven the Neo4j leg is skipped, unless APD_REQUIRE_NEO4J=1 (CI), where it
fails.

The session-built stores (`demo_master`, `split_demo`, `digits_run`, and `shared_store`'s on
LadybugDB) are read by many tests: a test that writes takes a copy (`demo_store`,
tests/stores.py's `copy_store`).
"""
from __future__ import annotations

import os
import signal
from typing import Callable, TypeVar

import pytest

from tests.cli import Apd
from tests.neo4j_server import empty_neo4j, missing_tools, neo4j_server as serve
from tests.stores import Built, copy_store, train_and_ingest
from toolkit.store import open_store

T = TypeVar("T")

BACKENDS = ("lbug", "neo4j")


def pytest_configure(config):
    config.addinivalue_line("markers", "embedded_only: runs on a LadybugDB file only; no Neo4j leg")
    # A shell starts background jobs (`./.ci/run &`, nohup) with SIGINT ignored, and every
    # child inherits that: the Ctrl-C tests' `apd` would then never see their SIGINT. A
    # Python handler here becomes the default disposition in each child again.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture
def apd(store_path):
    return Apd(store_path)


@pytest.fixture(scope="session")
def _lbug_stores() -> dict:
    """The LadybugDB stores `shared_store` built this session, by builder."""
    return {}


@pytest.fixture
def shared_store(backend, request, tmp_path_factory, _lbug_stores) -> Callable[[Callable[[str], T]], tuple[str, T]]:
    """`shared_store(build)` -> (store, what `build(store)` returned), for tests that only read
    the store `build` fills. On LadybugDB `build` runs once per session, into a store of its
    own that every such test then reads; on Neo4j it runs for each test, into the database
    `store_path` emptied for it (the session's server has one database, and the other Neo4j
    tests empty it)."""
    def get(build: Callable[[str], T]) -> tuple[str, T]:
        if backend == "neo4j":
            path = request.getfixturevalue("store_path")
            return path, build(path)
        if build not in _lbug_stores:
            path = str(tmp_path_factory.mktemp(build.__name__.strip("_")) / "s.lbug")
            _lbug_stores[build] = path, build(path)
        return _lbug_stores[build]
    return get


@pytest.fixture(scope="session")
def demo_master(tmp_path_factory) -> Built:
    """`apd demo` (digits, 64-32-32-32-10, 30 epochs) built once per session; copy it, never write to it."""
    from loaders.demo import demo

    where = tmp_path_factory.mktemp("demo")
    demo(str(where / "apd.lbug"), str(where / "apd-demo.pt"), progress=False)
    return Built(str(where / "apd.lbug"), str(where / "apd-demo.pt"))


@pytest.fixture
def demo_store(demo_master, tmp_path) -> str:
    """A private copy of the demo store (the model stays where the Run nodes point)."""
    return copy_store(demo_master.store, tmp_path)


@pytest.fixture(scope="session")
def split_demo(demo_master, tmp_path_factory) -> Built:
    """The demo store after `apd split --run digits-test` (so that hardness has clusters),
    built once per session; copy it, never write to it."""
    store = copy_store(demo_master.store, tmp_path_factory.mktemp("split-demo"))
    Apd(store).json("split", "--run", "digits-test")
    return Built(store, demo_master.model)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Callable[..., Built]:
    """`digits_run(hidden=(16, 16), epochs=3, activation="relu")`: an MLP trained briefly on
    digits and a LadybugDB store holding its test split as run `d`, built once per session for
    each net: copy the store before writing to it, and the model before changing it."""
    built: dict[tuple, Built] = {}

    def get(hidden: tuple[int, ...] = (16, 16), epochs: int = 3, activation: str = "relu") -> Built:
        key = hidden, epochs, activation
        if key not in built:
            built[key] = train_and_ingest(tmp_path_factory.mktemp("digits-run"), *key)
        return built[key]
    return get
