"""Lint every Neo4j-facing file in cypher/ with Neo4j's own linter (run offline by node).

Shared files, `cypher/neo4j/` variants and `cypher/browser/` queries are linted, with `{table}` templates filled
with every schema name they can take. `cypher/ladybug/` variants are LadybugDB dialect
(COPY, LOAD FROM, typed DDL) that Neo4j's linter cannot parse; the test suite runs them
on LadybugDB instead.

Usage: python tools/cypher-lint/check.py            (all of cypher/)
       python tools/cypher-lint/check.py --stdin   (one statement from stdin)
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from toolkit.store import queries
from toolkit.store.schema import ALL_NODES, RELS

HERE = Path(__file__).resolve().parent


def ensure_installed() -> None:
    """Install the pinned linter package on first use (npm registry; a prerelease, so pinned)."""
    if not (HERE / "node_modules" / "@neo4j-cypher" / "language-support").is_dir():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE, check=True, stdout=subprocess.DEVNULL,
        )


# Keys of the `$c` column maps the Neo4j bulk files read ($c.src): not stored properties.
ROW_KEYS = {"src", "dst"}


def schema() -> dict:
    props = {p for t in ALL_NODES.values() for p in t.props} | {p for t in RELS.values() for p in t.props} | ROW_KEYS
    return {"labels": sorted(ALL_NODES), "relationshipTypes": sorted(RELS), "propertyKeys": sorted(props)}


def renderings(name: str) -> list[tuple[str, str]]:
    """(label, text) for one file: a template yields one text per schema name it can take."""
    raw = queries.code(name)
    holes = set(re.findall(r"\{(\w+)\}", raw))
    if not holes:
        return [(name, raw)]
    if holes == {"table", "props"}:  # a bulk node write or update: every column of the table
        return [(f"{name}[{t}]", queries.body(name, table=t, props=queries.ColumnMap(v.props))) for t, v in ALL_NODES.items()]
    if holes == {"table", "src", "dst", "props"}:
        return [(f"{name}[{r}]", queries.body(name, table=r, src=v.src, dst=v.dst, props=queries.ColumnMap(v.props)))
                for r, v in RELS.items()]
    if holes == {"table"}:
        return [(f"{name}[{t}]", queries.body(name, table=t)) for t in ALL_NODES]
    if holes == {"table", "src", "dst"}:
        return [(f"{name}[{r}]", queries.body(name, table=r, src=v.src, dst=v.dst)) for r, v in RELS.items()]
    if holes == {"table", "prop"}:
        return [(f"{name}[{t}.{p}]", queries.body(name, table=t, prop=p)) for t, v in ALL_NODES.items() for p in v.props]
    if holes == {"table", "src", "dst", "prop"}:
        return [(f"{name}[{r}.{p}]", queries.body(name, table=r, src=v.src, dst=v.dst, prop=p))
                for r, v in RELS.items() for p in v.props]
    raise ValueError(f"{name}: no lint rendering for placeholders {sorted(holes)}")


def folders() -> list[str]:
    """cypher/ and every subfolder of it but the LadybugDB dialect (e.g. neo4j/, browser/)."""
    root = resources.files("toolkit.cypher")
    return [""] + sorted(p.name for p in root.iterdir() if p.is_dir() and any(
        f.name.endswith(".cypher") for f in p.iterdir()) and p.name != "ladybug")


def collect() -> list[dict]:
    out = []
    for name in [n for folder in folders() for n in queries.files(folder)]:
        for label, text in renderings(name):
            for i, stmt in enumerate(queries.statements(text)):
                out.append({"name": label if i == 0 else f"{label}#{i}", "text": stmt,
                            "parameters": sorted(set(re.findall(r"\$(\w+)", stmt)))})
    return out


def lint(items: list[dict]) -> list[dict]:
    """Diagnostics (errors and warnings) from Neo4j's linter for the given statements."""
    ensure_installed()
    # stdin from a file, not a pipe: node's readFileSync(0) on a pipe fails with EAGAIN when
    # the writer is slower than the reader (a loaded machine, a large input).
    with tempfile.TemporaryFile("w+") as f:
        json.dump({"schema": schema(), "queries": items}, f)
        f.seek(0)
        proc = subprocess.run(["node", str(HERE / "lint.mjs")], stdin=f, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"linter crashed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def main() -> int:
    if "--stdin" in sys.argv:
        text = sys.stdin.read()
        items = [{"name": "stdin", "text": text, "parameters": sorted(set(re.findall(r"\$(\w+)", text)))}]
    else:
        items = collect()
    problems = lint(items)
    for p in problems:
        print(f"{p['name']}:{p['line']}: {p['severity']}: {p['message']}")
    print(f"linted {len(items)} statements: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
