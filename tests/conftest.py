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
