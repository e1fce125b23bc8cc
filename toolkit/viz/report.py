"""`apd report`: one self-contained HTML file with the papers' pictures of a run.

plotly.js is embedded once (with the first chart) and the plane picture is an inline PNG,
so the file opens offline. The store is only read: a run that was never split gets its
backward-splitting clusters computed in memory, not written.
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import plotly.io as pio
from matplotlib.figure import Figure
from tqdm import tqdm

from toolkit.apd.coarsen import DEFAULT_K
from toolkit.apd.coarsen import coarse_patterns as coarse_apd
from toolkit.apd.flows import parse_layers, query_flows
from toolkit.apd.runs import RunPatterns, coarse_source, read_patterns, snapshot_runs
from toolkit.apd.splitting import split
from toolkit.device import resolve_device
from toolkit.errors import ApdError, no_such_run
from toolkit.paths import output_file
from toolkit.store import Store
from toolkit.viz import charts, plane, sankey

_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Section:
    key: str
    title: str
    body: str  # HTML
    note: str = ""


@dataclass
class ReportInfo:
    """What `apd report --json` prints."""

    path: str
    bytes: int
    run: str
    instances: int
    sections: list[str]
    sankey: list[dict] = field(default_factory=list)
    points_90: dict = field(default_factory=dict)
    plane: dict = field(default_factory=dict)


def choose_instances(data: RunPatterns, label: int | None, instances: int, seed: int) -> np.ndarray:
    """Rows of the run to draw: one true label if asked, then a seeded sample of `instances` (0 = all)."""
    rows = np.arange(len(data.idx))
    if label is not None:
        rows = rows[data.label == label]
        if not len(rows):
            raise ApdError(f"no instance has true label {label} (labels: {', '.join(map(str, np.unique(data.label)))})")
    if instances < 0:
        raise ApdError(f"--instances must be >= 0 (0 = all), got {instances}")
    if instances and len(rows) > instances:
        rows = np.sort(np.random.default_rng(seed).choice(rows, instances, replace=False))
    return rows


NO_FORGETTING = "no forgetting events"


@dataclass(frozen=True)
class SankeyPatterns:
    """What the Sankey draws per layer: pattern ids [n, L] aligned with a run's rows, the
    full name (hover) of each id per layer, and a few words saying what they are."""

    ids: np.ndarray
    names: list[np.ndarray]
    what: str


# (store, run, its patterns) -> what its Sankey draws: the exact patterns or a coarse APD.
PatternSource = Callable[[Store, str, RunPatterns], SankeyPatterns]
SANKEY = ("auto", "exact", "coarse")


def pattern_keys(data: RunPatterns) -> np.ndarray:
    """The full key of every pattern id (ids index the sorted keys)."""
    return np.unique(data.frame["key"].to_numpy().astype(str)).astype(object)


def exact_patterns(store: Store, run: str, data: RunPatterns) -> SankeyPatterns:
    """The run's exact activation patterns, named by their keys."""
    return SankeyPatterns(data.patterns, [pattern_keys(data)] * data.patterns.shape[1], "exact patterns")


def coarse_patterns(neurons: int) -> PatternSource:
    """The coarse APD over `neurons` label-informative neurons per layer (toolkit/apd/coarsen.py),
    computed in memory (the report only reads); each partial pattern is named by its
    neurons' states, e.g. `n6+ n11- n40+`."""
    def draw(store: Store, run: str, data: RunPatterns) -> SankeyPatterns:
        c = coarse_apd(store, run, neurons)
        names = [np.array([" ".join(f"n{i}{'+' if on else '-'}" for i, on in zip(chosen, row)) for row in distinct],
                          dtype=object) for chosen, distinct in zip(c.neurons, c.distinct)]
        return SankeyPatterns(c.ids, names, f"coarse APD: each layer's {neurons} neurons that tell most about the "
                                            "predicted label (`apd coarsen` stores it)")
    return draw


def own_pattern_share(data: RunPatterns) -> float:
    """The largest share, over hidden layers, of instances whose pattern no other instance has."""
    shares = [np.mean(np.bincount(data.patterns[:, j])[data.patterns[:, j]] == 1) for j in range(data.patterns.shape[1])]
    return float(max(shares, default=0.0))


def sankey_patterns(store: Store, run: str, data: RunPatterns, mode: str, neurons: int) -> PatternSource:
    """What the Sankey draws: `exact`, `coarse`, or `auto` = coarse when patterns are nearly unique
    (a wide net) and the run is not itself coarse, else exact; like the plane picture, auto
    falls back (to the exact patterns) when the model the coarse APD needs is gone."""
    if mode not in SANKEY:
        raise ApdError(f"--sankey must be one of {', '.join(SANKEY)}, not {mode!r}")
    if neurons < 1:
        raise ApdError(f"--neurons must be at least 1, got {neurons}")
    if mode == "coarse":
        return coarse_patterns(neurons)
    if mode == "exact" or own_pattern_share(data) <= sankey.NEARLY_UNIQUE or coarse_source(store, run):
        return exact_patterns
    coarse = coarse_patterns(neurons)

    def coarse_or_exact(store: Store, run: str, data: RunPatterns) -> SankeyPatterns:
        """auto: the coarse APD needs the run's model; without it the exact patterns, saying why."""
        try:
            return coarse(store, run, data)
        except ApdError as exc:
            exact = exact_patterns(store, run, data)
            return SankeyPatterns(exact.ids, exact.names, f"exact patterns (no coarse APD: {exc})")
    return coarse_or_exact


def sankey_section(store: Store, run: str, datas: dict[str, RunPatterns], rows: np.ndarray, max_nodes: int,
                   patterns: PatternSource = exact_patterns) -> tuple[Section, list[dict]]:
    """One Sankey per run of `datas` (in its order) over the same instances, matched by idx
    across snapshot runs; nodes ordered alike in every panel (see toolkit/viz/sankey.py)."""
    parts, info, nearly = [], [], []
    chosen_idx = datas[run].idx[rows]
    what = ""
    for name, d in datas.items():
        sel = rows if name == run else np.flatnonzero(np.isin(d.idx, chosen_idx))
        if len(sel) != len(rows):
            raise ApdError(f"run {name!r} lacks some of the chosen instances of {run!r}: re-ingest it")
        drawn = patterns(store, name, d)
        what = drawn.what
        s = sankey.sankey_data(drawn.ids[sel], d.pred[sel], d.correct[sel], drawn.names, max_nodes)
        parts.append((name, s))
        hidden = s.column < len(s.own)
        other = float(s.size[hidden & s.other].sum() / max(len(sel) * len(s.own), 1))
        info.append({"run": name, "nodes": len(s.label), "links": len(s.value), "instances": int(len(sel)),
                     "nodes_per_column": np.bincount(s.column).tolist(), "other_share": round(other, 4),
                     "own_pattern": s.own.tolist(), "other_by_pred": s.by_pred[:-1].tolist()})
        nearly += [f"{name} layer {j + 1}: {int(o)} of {len(sel)}" for j, o in enumerate(s.own)
                   if s.by_pred[j]]
    note = (f"{len(rows)} instances, {what}; at most {max_nodes} nodes per column: patterns of one instance and "
            "the smallest are pooled as \"other\"; nodes ordered by their majority predicted label, then size, "
            "in every panel. Labels rank patterns by size (L1 #1 is layer 1's largest); the full key, instances, "
            "errors and purity are on hover; link colour from blue (no errors) to red (all errors).")
    if nearly:
        note += (" Patterns are nearly unique here (a wide net: nearly every instance has a pattern of its own; "
                 "instances with their own pattern: " + "; ".join(nearly) + "), so the rest is pooled per "
                 "predicted label rather than into one \"other\" block.")
    return Section("sankey", "APD Sankey", _fig(sankey.sankey_figure(parts)), note), info


def hardness_frame(store: Store, run: str, data: RunPatterns) -> tuple[pd.DataFrame, bool]:
    """Per instance: cluster, size, label, correct, forgetting; clusters from the graph, or split in memory."""
    inst = store.query("instance_hardness", run=run)
    stored = bool(inst["size"].notna().all()) and len(inst) == len(data.idx)
    if not stored:
        final = split(data.patterns, data.pred).final_cluster
        pos = np.searchsorted(data.idx, inst["idx"].to_numpy())
        inst = inst.assign(cluster=final[pos], size=np.bincount(final)[final[pos]])
    return inst.astype({"cluster": "int64", "size": "int64", "forgetting": "int64"}), stored


def build_report(store: Store, run: str, out: str | os.PathLike, label: int | None = None, instances: int = 500,
                 runs: str | None = None, max_nodes: int = 30, seed: int = 0, anchors: list[int] | None = None,
                 coverage: float | None = None, data_dir: str | os.PathLike | None = None, device: str = "auto",
                 progress: bool = False, sankey_apd: str = "auto", neurons: int = DEFAULT_K) -> ReportInfo:
    """Write the report of `run` to `out` (through a temporary file) and say what it holds.

    `sankey_apd` says what the Sankey draws (see `sankey_patterns`; `neurons` per layer when coarse)."""
    path = output_file(out, (".html", ".htm"))
    resolve_device(device)  # a bad --device is refused, not turned into a "No plane picture" note
    all_runs = store.query("runs").set_index("run", drop=False)
    if run not in all_runs.index:
        raise no_such_run(run)
    meta = all_runs.loc[run]
    data = read_patterns(store, run)
    if anchors is not None:  # given by the user: refused, not turned into a "no plane picture" note
        missing = sorted(set(anchors) - set(data.idx.tolist()))
        if missing:
            raise ApdError(f"--anchors {missing[0]} out of range: run {run!r} has instances "
                           f"{int(data.idx.min())}..{int(data.idx.max())}")
    rows = choose_instances(data, label, instances, seed)
    measured = store.query("plane_blankets", run=run)  # `apd mbh` results: s per plane and blanket
    cover = blanket_coverage(measured, coverage)
    snapshots = snapshot_runs(store, runs, also=run) if runs else [run]
    other = [r for r in snapshots if tuple(all_runs.loc[r, ["dataset", "split"]]) != (meta["dataset"], meta["split"])]
    if other:
        raise ApdError(f"--runs: {', '.join(other)} not on {meta['dataset']}/{meta['split']} like {run!r}; "
                       "side-by-side Sankeys need snapshots of one split")
    steps = tqdm(total=5, desc="report", disable=not progress)
    sections = []
    of = f" of true label {label}" if label is not None else ""
    datas = {r: data if r == run else read_patterns(store, r) for r in snapshots}

    patterns = sankey_patterns(store, run, data, sankey_apd, neurons)
    sec, sankey_info = sankey_section(store, run, datas, rows, max_nodes, patterns)
    sections.append(sec)
    steps.update()

    counts = _pattern_counts(store, datas, label)
    n_of = int((data.label == label).sum()) if label is not None else len(data.idx)
    sections.append(Section("patterns", "Distinct patterns per layer", _fig(charts.patterns_per_layer(counts, n_of)),
                            f"Distinct patterns among the instances{of} (dashed: their number; patterns near it "
                            "mean nearly every instance has a pattern of its own)."))
    steps.update()

    layers = parse_layers(None, data.patterns.shape[1])
    flows = query_flows(store, run, layers, 1, label)
    flow_note = (f"{len(flows)} flows{of} over layers {layers}; {int(flows['errors'].sum())} errors; "
                 f"{int((flows['strength'] == 1).sum())} flows hold a single instance. Flows counted per bin "
                 "(no marker hides another); hover for instances and errors.")
    sections.append(Section("flows", "Flows", _fig(charts.flows_chart(flows)), flow_note))
    steps.update()

    inst, stored = hardness_frame(store, run, data)
    if label is not None:
        inst = inst[inst["label"] == label]
    sizes = charts.size_table(inst)
    cum, points = charts.cumulative_chart(sizes)
    where = "from the graph" if stored else "computed in memory (the run is not split; nothing written)"
    figs = _fig(charts.cluster_sizes_chart(inst))
    if inst["forgetting"].sum():
        figs += _fig(charts.forgetting_chart(inst))
        forgetting = ""
    elif meta["split"] == "train":
        forgetting = f" No forgetting events{of} recorded in this run ({meta['dataset']}/{meta['split']})."
    else:
        forgetting = (f" No forgetting events{of}: forgetting is tracked on the train split; this run is "
                      f"{meta['dataset']}/{meta['split']}.")
    points = {k: v if v is not None else f"no {k.split('_')[-1]}" + (" events" if k.endswith("forgetting") else "")
              for k, v in points.items()}
    said = ", ".join(f"{k.split('_')[-1]} in clusters of size <= {v}" if isinstance(v, int) else v
                     for k, v in points.items())
    sections.append(Section("hardness", "Cluster sizes, errors and forgetting", figs + _fig(cum),
                            f"Final clusters of backward splitting (of the whole run), {where}"
                            + (f"; drawn: the instances{of}" if label is not None else "") + ". "
                            f"90% points: {said}.{forgetting}"))
    steps.update()

    plane_info, sec = _plane_section(store, run, data, label, anchors, measured, cover, data_dir, device)
    sections.append(sec)
    steps.update()
    steps.close()

    page = _page(run, meta, data, rows, label, sections)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ReportInfo(str(path), path.stat().st_size, run, int(len(rows)), [s.key for s in sections],
                      sankey_info, points, plane_info)


def _pattern_counts(store: Store, datas: dict[str, RunPatterns], label: int | None) -> pd.DataFrame:
    """Distinct patterns per run and layer (columns run, layer, patterns): the graph's counts
    for whole runs, counted in memory among the instances of true label `label` otherwise."""
    if label is None:
        order = {r: i for i, r in enumerate(datas)}
        counts = store.query("pattern_counts", runs=list(datas))
        return counts.sort_values(["run", "layer"], key=lambda c: c.map(order) if c.name == "run" else c)
    return pd.DataFrame([{"run": r, "layer": j + 1, "patterns": len(np.unique(d.patterns[d.label == label, j]))}
                         for r, d in datas.items() for j in range(d.patterns.shape[1])])


def _plane_section(store: Store, run: str, data: RunPatterns, label: int | None, anchors: list[int] | None,
                   measured: pd.DataFrame, coverage: float | None, data_dir, device: str) -> tuple[dict, Section]:
    """The plane picture, or a note saying why there is none (e.g. the model file is gone).

    Where `apd mbh` results exist (and no --anchors are given) the picture is drawn on the first
    stored MBH plane with one class's blanket in red, captioned with the s stored in the graph.
    """
    if anchors is None and not measured.empty:
        return _blanket_section(store, run, measured, label, coverage, data_dir, device)
    try:
        idx = anchors if anchors is not None else default_plane_anchors(data, label)
        rp = plane.run_plane(store, run, idx, device=device, data_dir=data_dir)
    except ApdError as exc:
        return {"skipped": str(exc)}, Section("plane", "Plane partition", "", f"No plane picture: {exc}")
    text = [f"#{i} (label {y})" for i, y in zip(rp.anchors, rp.anchor_labels)]
    fig = plane.plane_picture(rp.part, rp.anchors_uv, text, title=f"plane through instances {rp.anchors}")
    info = {"anchors": rp.anchors, "regions": rp.part.count}
    note = f"{rp.part.count} activation regions (one colour each), decision boundary in black."
    if not measured.empty:
        note += " Blankets (`apd mbh`) are drawn on the run's stored MBH plane when --anchors is not given."
    if label is not None and anchors is None:
        note += f" The plane passes through instances of true label {label} and others; its regions are the whole model's."
    return info, Section("plane", "Plane partition", _img(fig, "plane partition"), note)


def blanket_coverage(measured: pd.DataFrame, coverage: float | None) -> float | None:
    """The coverage whose blanket the report draws: `coverage` (refused if not stored), else 0.8
    if stored, else the first stored one; None without `apd mbh` results."""
    if measured.empty:
        return None
    stored = np.unique(measured["coverage"].to_numpy(float))
    if coverage is None:
        return 0.8 if np.isclose(stored, 0.8).any() else float(stored[0])
    if not np.isclose(stored, coverage).any():
        raise ApdError(f"--coverage {coverage:g} has no stored blankets for this run "
                       f"(stored: {', '.join(f'{c:g}' for c in stored)}; `apd mbh --coverage` adds them)")
    return coverage


def choose_blanket(measured: pd.DataFrame, label: int | None, coverage: float, first_anchor_label: int) -> pd.Series:
    """The MEASURED row drawn: on the first stored plane at `coverage`, the `label` class if it
    has a blanket there, else the first anchor's class, else the smallest stored class."""
    on_plane = measured[measured["plane"] == measured["plane"].iloc[0]]
    at = on_plane[np.isclose(on_plane["coverage"].to_numpy(float), coverage)]
    for cls in (label, first_anchor_label):
        if cls is not None and (at["class"] == cls).any():
            return at[at["class"] == cls].iloc[0]
    return at.sort_values("class").iloc[0]


def _blanket_section(store: Store, run: str, measured: pd.DataFrame, label: int | None, coverage: float,
                     data_dir, device: str) -> tuple[dict, Section]:
    from toolkit.mbh.runs import class_blanket

    uids = store.query("planes", run=run)["uid"].tolist()
    first = measured["plane"].iloc[0]
    try:
        rp = plane.stored_plane(store, run, uids.index(first), device=device, data_dir=data_dir)
        row = choose_blanket(measured, label, coverage, rp.anchor_labels[0])
        cls, cov, s = int(row["class"]), float(row["coverage"]), float(row["s"])
        mask, s_drawn = class_blanket(store, run, rp.part, cls, cov, greedy=str(row["greedy"]), data_dir=data_dir)
    except ApdError as exc:
        return {"skipped": str(exc)}, Section("plane", "Plane partition", "", f"No plane picture: {exc}")
    text = [f"#{i} (label {y})" for i, y in zip(rp.anchors, rp.anchor_labels)]
    title = f"MBH plane {first} through instances {rp.anchors}"
    missing = ""
    if label is not None and label != cls:
        missing = f"Class {label} has no blanket at coverage {cov:g} on this plane. "
    if mask.any():
        fig = plane.plane_picture(rp.part, rp.anchors_uv, text, blanket=mask, s=s, title=title)
        caption = (f"{missing}Blanket of class {cls} at coverage {cov:g} ({row['greedy']} greedy) in red: "
                   f"s = {s:.4f} on this plane, as stored in the graph by `apd mbh`.")
    else:  # nothing to draw in red: say so rather than an all-grey picture titled "s = 1.000"
        fig = plane.plane_picture(rp.part, rp.anchors_uv, text, title=title)
        caption = (f"{missing}Class {cls} has no blanket region on this plane at coverage {cov:g} "
                   f"({row['greedy']} greedy): its blanket covers none of the plane's regions "
                   f"(s = {s:.4f} as stored by `apd mbh`); regions drawn in their own colours.")
    body = (f'<figure>{_img(fig, "plane partition with blanket")}'
            f'<figcaption class="blanket" data-class="{cls}" data-coverage="{cov!r}" data-s="{s!r}">'
            f"{html.escape(caption)}</figcaption></figure>")
    info = {"anchors": rp.anchors, "regions": rp.part.count,
            "blanket": {"plane": first, "class": cls, "coverage": cov, "greedy": str(row["greedy"]), "s": s,
                        "s_drawn": float(s_drawn)}}
    note = (f"{rp.part.count} activation regions, decision boundary in black; the regions outside the "
            "blanket in grey. Stored blankets: " + ", ".join(
                f"coverage {c:g}: classes {' '.join(map(str, sorted(g['class'].unique())))}"
                for c, g in measured[measured["plane"] == first].groupby("coverage")) + ".")
    return info, Section("plane", "Plane partition and blanket", body, note)


def _img(fig: Figure, alt: str) -> str:
    """The figure as an inline PNG (the page stays one offline file)."""
    png = base64.b64encode(plane.png_bytes(fig)).decode()
    return f'<img class="plane" alt="{alt}" src="data:image/png;base64,{png}">'


def default_plane_anchors(data: RunPatterns, label: int | None) -> list[int]:
    """Instance indices (idx) of the first instances of three distinct labels."""
    return data.idx[plane.default_anchors(data.label, label)].tolist()


def _fig(fig) -> str:
    """A figure's div; plotly.js itself is inlined once in the page head (see `_page`)."""
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config=_CONFIG)


_CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table.meta td{padding:2px 12px 2px 0}.note{color:#555;font-size:13px}img.plane{max-width:100%}"""


def _page(run: str, meta: pd.Series, data: RunPatterns, rows: np.ndarray, label: int | None,
          sections: list[Section]) -> str:
    """The HTML page: header table, then the sections; plotly.js inlined once, before any chart."""
    mine = data.label == label if label is not None else np.ones(len(data.idx), dtype=bool)
    of = f" (true label {label}; run: {len(data.idx)})" if label is not None else ""
    facts = [("model", f"{meta['arch']} ({meta['model']})"), ("dataset", f"{meta['dataset']} / {meta['split']}"),
             ("epoch", meta["epoch"]), ("accuracy", f"{np.mean(data.correct[mine]):.4f}"
                                        + (f" (true label {label}; run: {np.mean(data.correct):.4f})" if label
                                           is not None else "")),
             ("instances", f"{int(mine.sum())}{of}"), ("drawn in the Sankey", f"{len(rows)} instances"),
             ("patterns per layer", " / ".join(str(len(np.unique(data.patterns[mine, j])))
                                               for j in range(data.patterns.shape[1]))
              + (f" (true label {label})" if label is not None else ""))]
    head = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    js = _plotly_js()
    body = "".join(
        f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>'
        + (f'<p class="note">{html.escape(s.note)}</p>' if s.note else "") + s.body + "</section>"
        for s in sections)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>APD report: {html.escape(run)}</title>"
            f"<style>{_CSS}</style>{js}</head><body><h1>APD report: {html.escape(run)}</h1>"
            f'<table class="meta">{head}</table>{body}</body></html>')


def _plotly_js() -> str:
    """plotly.js inlined (offline), as plotly's own `include_plotlyjs=True` does."""
    from plotly.offline import get_plotlyjs

    return f'<script type="text/javascript">{get_plotlyjs()}</script>'
