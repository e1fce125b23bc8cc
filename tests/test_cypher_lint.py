"""Every Neo4j-facing Cypher file passes Neo4j's own linter; a broken one fails it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[1] / "tools" / "cypher-lint" / "check.py"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is needed to run Neo4j's linter")


def run_check(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), *args], input=stdin, capture_output=True, text=True)


def test_all_cypher_files_pass_the_linter():
    proc = run_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(" problems") and ": 0 problems" in proc.stdout


@pytest.mark.parametrize("broken, expected", [
    ("MATCH (n:Pattern) RETRN n.key AS key", "Invalid input 'RETRN'"),
    ("MATCH (n:Patern) RETURN n.key AS key", "Label Patern is not present"),
    ("MATCH (n:Pattern) RETURN toFloatt(n.support) AS s", "Function toFloatt is not present"),
])
def test_a_broken_query_fails_the_linter(broken, expected):
    proc = run_check("--stdin", stdin=broken)
    assert proc.returncode == 1
    assert expected in proc.stdout


def test_the_linter_covers_every_subfolder_but_ladybug():
    sys.path.insert(0, str(CHECK.parent))
    try:
        import check
    finally:
        sys.path.pop(0)
    names = {item["name"] for item in check.collect()}
    assert {"browser/top_flows", "browser/instance_path", "neo4j/schema", "flows"} <= names
    assert not any(n.startswith("ladybug/") for n in names)
