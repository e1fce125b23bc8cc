"""The papers' summary charts as plotly figures: patterns per layer, flows, cluster sizes.

Every function takes a plain DataFrame (as the library's queries return them), so a
notebook can draw the same charts without the report.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from toolkit.apd.hardness import SHARE, log2_bin, size_at_share
from toolkit.viz import style

_LAYOUT = {"height": 420, "margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "template": "plotly_white"}


def patterns_per_layer(counts: pd.DataFrame) -> go.Figure:
    """Distinct patterns per hidden layer; one bar group per run (columns run, layer, patterns)."""
    fig = go.Figure()
    single = counts["run"].nunique() == 1
    for run, rows in counts.groupby("run", sort=False):
        fig.add_trace(go.Bar(x=rows["layer"], y=rows["patterns"], name=str(run),
                             marker_color=style.CORRECT if single else None))
    fig.update_layout(title="Distinct patterns per layer", xaxis_title="hidden layer", yaxis_title="patterns",
                      barmode="group", xaxis={"dtick": 1}, **_LAYOUT)
    return fig


def flows_chart(flows: pd.DataFrame) -> go.Figure:
    """Purity against log strength, one marker per flow; flows holding errors in red, sized by errors."""
    fig = go.Figure()
    clean = flows[flows["errors"] == 0]
    dirty = flows[flows["errors"] > 0]
    fig.add_trace(go.Scatter(x=clean["strength"], y=clean["purity"], mode="markers", name="no errors",
                             marker={"color": style.CORRECT, "size": 6, "opacity": 0.6},
                             customdata=clean["label"], hovertemplate="strength %{x}, purity %{y:.3f}, "
                             "label %{customdata}<extra></extra>"))
    fig.add_trace(go.Scatter(x=dirty["strength"], y=dirty["purity"], mode="markers", name="with errors",
                             marker={"color": style.ERROR, "size": 6 + 2 * np.sqrt(dirty["errors"].to_numpy()),
                                     "opacity": 0.75},
                             customdata=np.column_stack([dirty["label"], dirty["errors"]]),
                             hovertemplate="strength %{x}, purity %{y:.3f}, label %{customdata[0]}, "
                             "%{customdata[1]} errors<extra></extra>"))
    fig.update_layout(title="Flows: purity x strength", xaxis={"type": "log", "title": "strength (instances, log)"},
                      yaxis={"title": "purity", "range": [0, 1.05]}, **_LAYOUT)
    return fig


def size_table(inst: pd.DataFrame) -> pd.DataFrame:
    """Per-instance rows (cluster, size, correct, forgetting) -> per final-cluster size, as
    `cypher/cluster_sizes.cypher` returns them (size, clusters, instances, errors, forgetting)."""
    return inst.assign(error=~inst["correct"].astype(bool)).groupby("size").agg(
        clusters=("cluster", "nunique"), instances=("cluster", "size"),
        errors=("error", "sum"), forgetting=("forgetting", "sum")).reset_index().astype("int64")


def cluster_sizes_chart(inst: pd.DataFrame) -> go.Figure:
    """Final-cluster size of every instance, correct vs wrong (box plots, log scale)."""
    fig = go.Figure()
    ok = inst["correct"].astype(bool)
    for name, rows, colour in (("correct", inst[ok], style.CORRECT), ("wrong", inst[~ok], style.ERROR)):
        fig.add_trace(go.Box(y=rows["size"], name=f"{name} ({len(rows)})", marker_color=colour, boxpoints=False))
    fig.update_layout(title="Final-cluster size per instance", yaxis={"type": "log", "title": "cluster size"},
                      showlegend=False, **_LAYOUT)
    return fig


def forgetting_chart(inst: pd.DataFrame) -> go.Figure:
    """Mean forgetting events per instance by log2 bin of its final-cluster size."""
    b = log2_bin(inst["size"].to_numpy())
    per = inst.assign(bin=b).groupby("bin").agg(mean=("forgetting", "mean"), n=("forgetting", "size")).reset_index()
    text = [f"{2 ** k}-{2 ** (k + 1) - 1}" if k else "1" for k in per["bin"]]
    fig = go.Figure(go.Bar(x=text, y=per["mean"], marker_color=style.FORGETTING, customdata=per["n"],
                           hovertemplate="size %{x}: %{y:.3f} events, %{customdata} instances<extra></extra>"))
    fig.update_layout(title="Mean forgetting events by cluster size (log2 bins)", xaxis_title="final-cluster size",
                      yaxis_title="mean forgetting events", **_LAYOUT)
    return fig


def cumulative_chart(sizes: pd.DataFrame) -> tuple[go.Figure, dict]:
    """Cumulative shares of errors, forgetting events and instances by sorted cluster size, with
    their 90% points (the cluster size below which 90% of each lies). Returns the figure and the points."""
    fig = go.Figure()
    points = {}
    for col, colour in (("errors", style.ERROR), ("forgetting", style.FORGETTING), ("instances", style.INSTANCES)):
        total = sizes[col].sum()
        point = size_at_share(sizes, col)
        points[f"size_{int(SHARE * 100)}_{col}"] = point
        if not total:
            continue
        cum = sizes[col].cumsum() / total
        fig.add_trace(go.Scatter(x=sizes["size"], y=cum, mode="lines", name=col, line={"color": colour, "shape": "hv"}))
        fig.add_trace(go.Scatter(x=[point], y=[SHARE], mode="markers+text", text=[f"{point}"], textposition="top left",
                                 marker={"color": colour, "size": 9}, showlegend=False,
                                 hovertemplate=f"90% of {col} in clusters of size <= %{{x}}<extra></extra>"))
    fig.add_hline(y=SHARE, line={"dash": "dot", "color": "#888"})
    fig.update_layout(title="Cumulative share by final-cluster size", xaxis={"type": "log", "title": "cluster size"},
                      yaxis={"title": "cumulative share", "range": [0, 1.02]}, **_LAYOUT)
    return fig, points
