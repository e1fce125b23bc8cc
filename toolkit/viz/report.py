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
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd
import plotly.io as pio
from matplotlib.figure import Figure
from tqdm import tqdm

from toolkit.apd.flows import parse_layers, query_flows
from toolkit.apd.runs import RunPatterns, read_patterns
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


def pattern_names(data: RunPatterns) -> np.ndarray:
    """Short text per pattern id: the first 6 characters of its key (ids index the sorted keys)."""
    return np.array([k[:6] for k in np.unique(data.frame["key"].to_numpy().astype(str))], dtype=object)


def snapshot_runs(store: Store, glob: str) -> list[str]:
    """Runs matching `glob`, ordered by epoch then name."""
    runs = store.query("runs")
    chosen = runs[[fnmatchcase(r, glob) for r in runs["run"]]]
    if chosen.empty:
        raise ApdError(f"no run matches {glob!r} (`apd runs` lists them)")
    return chosen.sort_values(["epoch", "run"])["run"].tolist()


def sankey_section(store: Store, run: str, data: RunPatterns, rows: np.ndarray, runs: list[str],
                   max_nodes: int) -> tuple[Section, list[dict]]:
    """One Sankey per run over the same instances (matched by idx across snapshot runs)."""
    parts, info = [], []
    chosen_idx = data.idx[rows]
    for name in runs:
        d = data if name == run else read_patterns(store, name)
        sel = rows if name == run else np.flatnonzero(np.isin(d.idx, chosen_idx))
        if len(sel) != len(rows):
            raise ApdError(f"run {name!r} lacks some of the chosen instances of {run!r}: re-ingest it")
        names = pattern_names(d)
        s = sankey.sankey_data(d.patterns[sel], d.pred[sel], d.correct[sel], [names] * d.patterns.shape[1], max_nodes)
        parts.append((name, s))
        info.append({"run": name, "nodes": len(s.label), "links": len(s.value), "instances": int(len(sel))})
    fig = sankey.sankey_figure(parts)
    note = (f"{len(rows)} instances; at most {max_nodes} nodes per column (the rest pooled as \"other\"); "
            "link colour from blue (no errors) to red (all errors).")
    return Section("sankey", "APD Sankey", _fig(fig), note), info


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
                 progress: bool = False) -> ReportInfo:
    """Write the report of `run` to `out` (through a temporary file) and say what it holds."""
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
    snapshots = snapshot_runs(store, runs) if runs else [run]
    if run not in snapshots:
        snapshots = [run, *snapshots]
    other = [r for r in snapshots if tuple(all_runs.loc[r, ["dataset", "split"]]) != (meta["dataset"], meta["split"])]
    if other:
        raise ApdError(f"--runs: {', '.join(other)} not on {meta['dataset']}/{meta['split']} like {run!r}; "
                       "side-by-side Sankeys need snapshots of one split")
    steps = tqdm(total=5, desc="report", disable=not progress)
    sections = []

    sec, sankey_info = sankey_section(store, run, data, rows, snapshots, max_nodes)
    sections.append(sec)
    steps.update()

    counts = store.query("pattern_counts", runs=snapshots)
    order = {r: i for i, r in enumerate(snapshots)}
    counts = counts.sort_values(["run", "layer"], key=lambda c: c.map(order) if c.name == "run" else c)
    sections.append(Section("patterns", "Distinct patterns per layer", _fig(charts.patterns_per_layer(counts))))
    steps.update()

    layers = parse_layers(None, data.patterns.shape[1])
    flows = query_flows(store, run, layers, 1, label)
    sections.append(Section("flows", "Flows", _fig(charts.flows_chart(flows)),
                            f"{len(flows)} flows over layers {layers}; {int(flows['errors'].sum())} errors."))
    steps.update()

    inst, stored = hardness_frame(store, run, data)
    if label is not None:
        inst = inst[inst["label"] == label]
    sizes = charts.size_table(inst)
    cum, points = charts.cumulative_chart(sizes)
    where = "from the graph" if stored else "computed in memory (the run is not split; nothing written)"
    sections.append(Section("hardness", "Cluster sizes, errors and forgetting",
                            _fig(charts.cluster_sizes_chart(inst)) + _fig(charts.forgetting_chart(inst)) + _fig(cum),
                            f"Final clusters of backward splitting, {where}. 90% points: "
                            + ", ".join(f"{k.split('_')[-1]} {v}" for k, v in points.items())
                            + ("" if inst["forgetting"].sum() else
                               ". No forgetting events in this run (training tracks them on the train split).")))
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
    fig = plane.plane_picture(rp.part, rp.anchors_uv, text, blanket=mask, s=s,
                              title=f"MBH plane {first} through instances {rp.anchors}")
    caption = (f"Blanket of class {cls} at coverage {cov:g} ({row['greedy']} greedy) in red: "
               f"s = {s:.4f} on this plane, as stored in the graph by `apd mbh`.")
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
    acc = float(np.mean(data.correct))
    chosen = f"true label {label}, " if label is not None else ""
    facts = [("model", f"{meta['arch']} ({meta['model']})"), ("dataset", f"{meta['dataset']} / {meta['split']}"),
             ("epoch", meta["epoch"]), ("accuracy", f"{acc:.4f}"), ("instances", f"{len(data.idx)}"),
             ("drawn", f"{chosen}{len(rows)} instances"),
             ("patterns per layer", " / ".join(str(len(np.unique(data.patterns[:, j])))
                                               for j in range(data.patterns.shape[1])))]
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
