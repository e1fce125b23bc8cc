"""`apd`: a thin Click layer over the library; every command mirrors a Python function."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable

import click
import pandas as pd

from toolkit.errors import ApdError
from toolkit.store import open_store, queries


class _Group(click.Group):
    """Turns user mistakes into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApdError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except queries.UnknownQuery as exc:
            click.echo(f"Error: no query named {exc.args[0]!r}; `apd query --list` shows them", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="apd-toolkit")
def main() -> None:
    """Activation Pattern DAGs of piecewise-linear networks, in a graph database."""


def store_option(f: Callable) -> Callable:
    return click.option(
        "--store",
        envvar="APD_STORE",
        default=None,
        metavar="PATH|URI",
        help="LadybugDB file (default ./apd.lbug) or neo4j:// / bolt:// URI. Env: APD_STORE.",
    )(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output; no progress bars.")(f)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def records(df: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-safe dicts (NaN -> null, numpy -> Python)."""
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dict("records")]


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print `data` as JSON, or call `human` to print it for people (default: a table)."""
    if isinstance(data, pd.DataFrame):
        if as_json:
            click.echo(json.dumps(records(data), indent=2, default=str))
        elif human:
            human()
        else:
            click.echo(data.to_string(index=False) if len(data) else "(no rows)")
        return
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif human:
        human()
    else:
        click.echo(data)


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`-p key=value` pairs; values that parse as JSON (numbers, lists, booleans) are typed."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ApdError(f"parameter {pair!r} is not key=value")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


# --- store commands ----------------------------------------------------------


@main.command()
@store_option
@json_option
def runs(store: str | None, as_json: bool) -> None:
    """List the runs in the store with their node counts.

    Example: apd runs --json
    """
    with open_store(store) as s:
        emit(s.runs(), as_json)


@main.command()
@click.argument("name", required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeatable).")
@click.option("--list", "list_", is_flag=True, help="List the named queries and their parameters.")
@store_option
@json_option
def query(name: str | None, params: tuple[str, ...], list_: bool, store: str | None, as_json: bool) -> None:
    """Run a named query from cypher/ with parameters.

    Example: apd query flows -p run=digits-test -p layers=[2,3]
    """
    if list_ or not name:
        table = pd.DataFrame(
            [{"name": n, "parameters": ", ".join(queries.parameters(n))} for n in queries.names()]
        )
        emit(table, as_json)
        return
    given = parse_params(params)
    missing = sorted(set(queries.parameters(name)) - set(given))
    if missing:
        raise ApdError(f"query {name!r} needs parameters {', '.join(missing)} (-p KEY=VALUE)")
    with open_store(store) as s:
        emit(s.query(name, **given), as_json)


@main.command()
@click.argument("text")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeatable).")
@store_option
@json_option
def cypher(text: str, params: tuple[str, ...], store: str | None, as_json: bool) -> None:
    """Run ad-hoc read-only Cypher (writes are refused).

    Example: apd cypher "MATCH (p:Pattern) RETURN p.layer AS layer, count(*) AS n"
    """
    with open_store(store, read_only=True) as s:
        emit(s.read(text, parse_params(params)), as_json)


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@store_option
@json_option
def drop(run: str, store: str | None, as_json: bool) -> None:
    """Remove one run's nodes and relationships.

    Example: apd drop --run digits-test
    """
    with open_store(store) as s:
        removed = s.drop_run(run)
    if not removed:
        raise ApdError(f"no run named {run!r} in the store (`apd runs` lists them)")
    emit({"run": run, "nodes_removed": removed}, as_json, lambda: click.echo(f"dropped {run}: {removed} nodes"))


# --- loaders commands (data, train, ingest, demo) ------------------------------


# --- analytics commands (split, flows, hardness, evolution) --------------------


# --- regions commands (regions, geometry) -------------------------------------
if __name__ == "__main__":
    main()
