"""Named Cypher files shipped in the package `toolkit.cypher` (the repository's `cypher/`).

A file starts with `//` header lines naming its parameters and columns. Identifiers that
Cypher cannot take as parameters (labels, relationship types, property names) appear as
`{table}`-style placeholders and are filled only from the schema, never from user values.
"""
from __future__ import annotations

import itertools
import re
from functools import lru_cache
from importlib import resources

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class ColumnMap(tuple):
    """Property names that fill a placeholder as a map literal reading row `i` of the
    columnar parameter `$c`: {`a`: $c.`a`[i], ...}. Neo4j's bulk writes send one list per
    column rather than one map per row: lists of plain values pack, travel and unpack
    several times faster, and the statement needs no Eager step to copy a row map."""


class Literal(str):
    """An identifier from the schema that fills its placeholder as a string literal ('Run'):
    LadybugDB's `CALL table_info(...)` takes a literal table name, not a parameter."""


class UnknownQuery(KeyError):
    """A named query that has no file."""


def _root():
    return resources.files("toolkit.cypher")


def names() -> list[str]:
    """Named queries a user can run (shared, not templates), for `apd query --list`."""
    return [n for n in files() if not _PLACEHOLDER.search(code(n))]


@lru_cache(maxsize=None)
def read_text(name: str) -> str:
    """Full text of `name` (e.g. `flows` or `neo4j/bulk_nodes`)."""
    path = _root().joinpath(*f"{name}.cypher".split("/"))
    if not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?", name) or not path.is_file():
        raise UnknownQuery(name)
    return path.read_text()


def code(name: str) -> str:
    """The statement(s) of `name` without header comments, placeholders unfilled."""
    return "\n".join(ln for ln in read_text(name).splitlines() if not ln.lstrip().startswith("//")).strip()


def files(folder: str = "") -> list[str]:
    """Names of every file in `cypher/` (or one backend folder of it), templates included."""
    base = _root().joinpath(folder) if folder else _root()
    prefix = f"{folder}/" if folder else ""
    return sorted(prefix + p.name[: -len(".cypher")] for p in base.iterdir() if p.name.endswith(".cypher"))


def body(name: str, **identifiers: str | ColumnMap) -> str:
    """The statement(s) of `name` without header comments, placeholders filled.

    Filled identifiers are back-quoted: the schema uses names (`IN`, `index`) that are
    keywords in LadybugDB. A ColumnMap fills its placeholder with a map literal, a Literal
    with a quoted string.
    """
    text = code(name)
    needed = set(_PLACEHOLDER.findall(text))
    if needed != set(identifiers):
        raise ValueError(f"{name}: placeholders {sorted(needed)} but got {sorted(identifiers)}")
    for key, value in identifiers.items():
        ok = (all(re.fullmatch(r"[A-Za-z_]\w*", v) for v in value) if isinstance(value, ColumnMap)
              else re.fullmatch(r"[A-Za-z_]\w*(, [A-Za-z_]\w*)*", value))
        if not ok:
            raise ValueError(f"{name}: {key}={value!r} is not an identifier")
    quoted = {k: "{" + ", ".join(f"`{v}`: $c.`{v}`[i]" for v in vals) + "}" if isinstance(vals, ColumnMap)
              else f"'{vals}'" if isinstance(vals, Literal)
              else ", ".join(f"`{v}`" for v in vals.split(", ")) for k, vals in identifiers.items()}
    return _PLACEHOLDER.sub(lambda m: quoted[m.group(1)], text)


def statements(text: str) -> list[str]:
    """Split a multi-statement file on `;` at line ends (our files never put `;` in strings)."""
    return [s.strip() for s in re.split(r";\s*\n|;\s*$", text) if s.strip()]


def description(name: str) -> str:
    """The first sentence of a file's header comment: what the query answers (`apd query --list`)."""
    lines = []
    for ln in read_text(name).splitlines():
        text = ln.strip()[2:].strip() if ln.lstrip().startswith("//") else None
        if text is None or re.match(r"(Parameters|Columns|Template|In Neo4j Browser):", text):
            break
        lines.append(text)
    prose = " ".join(lines)
    end = re.search(r"[.;](\s|$)", prose)
    return prose[: end.start()] if end else prose


def parameters(name: str) -> list[str]:
    """The `$parameters` a file uses, for `apd query` to check `-p` options against."""
    return sorted(set(re.findall(r"\$(\w+)", code(name))))


def columns(name: str) -> list[str]:
    """The result columns a file's `// Columns:` header names, in order (`p1..p6` expands).

    A server may send an empty result without column names; the header gives them back.
    """
    header = [ln.strip()[2:] for ln in read_text(name).splitlines() if ln.lstrip().startswith("//")]
    start = next((i for i, h in enumerate(header) if "Columns:" in h), None)
    if start is None:
        raise ValueError(f"{name}: no `// Columns:` header")
    # The header may continue on indented comment lines.
    rest = itertools.takewhile(lambda h: h.startswith("  "), header[start + 1:])
    text = " ".join([header[start].split("Columns:", 1)[1], *rest])
    text = re.sub(r"\([^)]*\)", "", text).split(";")[0].strip().rstrip(".")
    if text == "none":
        return []
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        span = re.fullmatch(r"([A-Za-z_]+)(\d+)\.\.\1(\d+)", item)
        if span:
            out += [f"{span[1]}{k}" for k in range(int(span[2]), int(span[3]) + 1)]
        elif re.fullmatch(r"[A-Za-z_]\w*", item):
            out.append(item)
        else:
            raise ValueError(f"{name}: cannot read column {item!r} in its `// Columns:` header")
    return out
