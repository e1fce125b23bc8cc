"""Shared fixtures: a fresh embedded store per test and a CLI runner that runs the real `apd`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.store import open_store


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "test.lbug")


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
