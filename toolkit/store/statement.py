"""What an ad-hoc Cypher statement is, read from its tokens before any database sees it.

`apd cypher` may read the store's graph and nothing else: no writes, no schema or system
changes, no files. Each backend's planner can say what a statement does (Neo4j's EXPLAIN
query type and operators, LadybugDB's physical plan; see `Store._plan_refusal`), but a
planner binds the statement first and binding already touches files: LadybugDB's EXPLAIN of
`EXPORT DATABASE 'dir'` creates the folder, and binding `LOAD FROM 'file'` opens the file to
type its columns. So the statement is read here first, token by token, as the databases'
own lexers read it (comments, string literals and `quoted` names are skipped; case does not
matter), and refused before any planner sees it when it holds more than one statement, a
clause that writes, manages the database or touches files, or a CALL of anything but a
schema listing. The plan check then judges what is left.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Bare words that start a clause doing something other than reading the graph, with why.
_CLAUSES = {
    **dict.fromkeys(("CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "FOREACH", "INSERT", "RENAME"),
                    "{} writes"),
    **dict.fromkeys(("DROP", "ALTER", "COMMENT"), "{} changes the schema"),
    **dict.fromkeys(("COPY", "EXPORT"), "{} writes files"),
    **dict.fromkeys(("LOAD", "IMPORT"), "{} reads files"),
    **dict.fromkeys(("ATTACH", "USE"), "{} opens another database"),
    **dict.fromkeys(("INSTALL", "UNINSTALL"), "{} loads code"),
    **dict.fromkeys(("BEGIN", "COMMIT", "ROLLBACK", "CHECKPOINT"), "{} manages transactions"),
    **dict.fromkeys(("SHOW", "TERMINATE", "GRANT", "DENY", "REVOKE", "START", "STOP", "ENABLE", "DEALLOCATE"),
                    "{} manages the server"),
}

# One token at a time; the first alternative that matches wins. A line comment ends at any
# line break a database might honour (ending early only shows more tokens).
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n\r\x0b\x0c\x85\u2028\u2029]*|/\*.*?\*/)
  | (?P<open_comment>/\*)
  | (?P<string>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")
  | (?P<open_string>['"])
  | (?P<quoted>`(?:``|[^`])*`)
  | (?P<open_quoted>`)
  | (?P<param>\$(?:\w+|`(?:``|[^`])*`))
  | (?P<word>[^\W\d]\w*)
  | (?P<number>\d[\w.]*)
  | (?P<symbol>.)
""", re.S | re.X)


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted, string, param, number, symbol
    text: str


def tokens(text: str) -> list[Token]:
    """The statement's tokens, comments and spaces left out.

    Raises ValueError for a string, comment or quoted name that never closes: the database
    would refuse it too, and reading on would mean guessing where it ends.
    """
    out: list[Token] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind.startswith("open_"):
            raise ValueError(f"a {kind[5:].replace('_', ' ')} that never closes")
        if kind not in ("space", "comment"):
            out.append(Token(kind, m.group()))
    return out


def refusal(text: str, schema_calls: frozenset[str]) -> str | None:
    """Why `text` is not a single read of the graph (one short phrase), or None.

    `schema_calls` are the backend's procedures or table functions that only list the
    schema (lower case); a CALL of anything else is refused. Bare words after `.` or `$`
    are property or parameter names, not clauses; a clause word used as a name must be
    quoted in backticks.
    """
    try:
        toks = tokens(text)
    except ValueError as exc:
        return str(exc)
    for i, tok in enumerate(toks):
        if tok.kind == "symbol" and tok.text == ";":
            if any(t.text != ";" for t in toks[i + 1:]):
                return "one statement at a time"
            continue
        if tok.kind != "word" or (i and toks[i - 1].text in (".", "$")):
            continue
        word = tok.text.upper()
        if word in _CLAUSES:
            return _CLAUSES[word].format(word)
        if word == "CALL":
            why = _call_refusal(toks[i + 1:], schema_calls)
            if why:
                return why
    return None


def _call_refusal(rest: list[Token], schema_calls: frozenset[str]) -> str | None:
    """A CALL is a subquery (`CALL {`, `CALL (vars) {`) or a call of a schema listing."""
    if rest and rest[0].text in ("{", "("):
        return None
    name = []
    for tok in rest:
        if tok.kind in ("word", "quoted") and (not name or name[-1] == "."):
            name.append(tok.text.strip("`"))
        elif tok.text == "." and name and name[-1] != ".":
            name.append(".")
        else:
            break
    proc = "".join(name)
    if proc.lower() in schema_calls:
        return None
    return f"it calls {proc or 'something'}, which is not a schema listing"
