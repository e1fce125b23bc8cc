"""The papers' summary charts as plotly figures: patterns per layer, flows, cluster sizes.

Every function takes a plain DataFrame (as the library's queries return them), so a
notebook can draw the same charts without the report.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from toolkit.apd.hardness import SHARE, log2_bin, size_at_share
from toolkit.viz import style

_LAYOUT = {"height": 420, "margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "template": "plotly_white"}


def patterns_per_layer(counts: pd.DataFrame, instances: int | None = None) -> go.Figure:
    """Distinct patterns per hidden layer; one bar group per run (columns run, layer, patterns),
    with the number of instances as a dashed line: bars reaching it mean nearly unique patterns."""
    fig = go.Figure()
    single = counts["run"].nunique() == 1
    for run, rows in counts.groupby("run", sort=False):
        fig.add_trace(go.Bar(x=rows["layer"], y=rows["patterns"], name=str(run), text=rows["patterns"],
                             textposition="auto", marker_color=style.CORRECT if single else None))
    if instances:
        fig.add_hline(y=instances, line={"dash": "dash", "color": "#888"},
                      annotation_text=f"{instances} instances", annotation_position="top left")
    fig.update_layout(title="Distinct patterns per layer", xaxis_title="hidden layer", yaxis_title="patterns",
                      barmode="group", xaxis={"dtick": 1}, **_LAYOUT)
    return fig


def _size_text(b: np.ndarray) -> list[str]:
    """Log2 bin k as the sizes it holds: 1, 2-3, 4-7, ..."""
    return [f"{2 ** k}-{2 ** (k + 1) - 1}" if k else "1" for k in b]


def flow_bins(flows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Flows counted per log2 strength bin, per purity bin (tenths; purity 1 on its own) and
    per predicted (majority) label, split by whether they hold errors: columns bin, text,
    clean, dirty (flows), instances, errors. Every bin from the first to the last is listed,
    empty ones too, so the axes read evenly."""
    dirty = flows["errors"].to_numpy() > 0
    strength_bin = log2_bin(flows["strength"].to_numpy()) if len(flows) else np.zeros(0, dtype=int)
    purity_bin = np.minimum(np.floor(flows["purity"].to_numpy(float) * 10 + 1e-9), 10).astype(int)
    out = []
    label = flows["label"].to_numpy().astype(np.int64)
    for b, lo in ((strength_bin, 0), (purity_bin, int(purity_bin.min()) if len(flows) else 10),
                  (label, int(label.min()) if len(flows) else 0)):
        hi = int(b.max()) if len(b) else lo
        k = np.arange(lo, hi + 1)
        count = lambda w: np.bincount(b - lo, weights=w, minlength=len(k)).astype(np.int64)  # noqa: E731
        out.append(pd.DataFrame({"bin": k, "clean": count(~dirty), "dirty": count(dirty),
                                 "instances": count(flows["strength"].to_numpy(float)),
                                 "errors": count(flows["errors"].to_numpy(float))}))
    strength, purity, by_label = out
    strength["text"] = _size_text(strength["bin"].to_numpy())
    purity["text"] = ["1" if k == 10 else f"{k / 10:.1f}-{(k + 1) / 10:.1f}" for k in purity["bin"]]
    by_label["text"] = by_label["bin"].astype(str)
    return strength, purity, by_label


def flows_chart(flows: pd.DataFrame) -> go.Figure:
    """Flows per strength bin (log2), per purity bin and per predicted label, stacked by
    without / with errors, the count on every bar: unlike one marker per flow, 935 singleton
    flows stay 935, not one dot; and where every flow is a singleton (a wide net), the label
    panel still shows where the flows and their errors are."""
    strength, purity, by_label = flow_bins(flows)
    fig = make_subplots(rows=1, cols=3, subplot_titles=("by strength (instances, log2 bins)", "by purity",
                                                        "by predicted label"), horizontal_spacing=0.07)
    for col, table in ((1, strength), (2, purity), (3, by_label)):
        for what, name, colour in (("clean", "no errors", style.CORRECT), ("dirty", "with errors", style.ERROR)):
            fig.add_trace(go.Bar(x=table["text"], y=table[what], name=name, marker_color=colour,
                                 text=[str(v) if v else "" for v in table[what]], textposition="auto",
                                 legendgroup=what, showlegend=col == 1,
                                 customdata=table[["instances", "errors"]].to_numpy(),
                                 hovertemplate="%{x}: %{y} flows " + name + "; the bin holds %{customdata[0]} "
                                 "instances, %{customdata[1]} errors<extra></extra>"), row=1, col=col)
    fig.update_layout(title=f"Flows: {len(flows)} by strength, purity and predicted label", barmode="stack",
                      **{**_LAYOUT, "margin": {**_LAYOUT["margin"], "t": 80}})
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="flows", row=1, col=1)
    return fig


def size_table(inst: pd.DataFrame) -> pd.DataFrame:
    """Per-instance rows (cluster, size, correct, forgetting) -> per final-cluster size, as
    `cypher/cluster_sizes.cypher` returns them (size, clusters, instances, errors, forgetting)."""
    return inst.assign(error=~inst["correct"].astype(bool)).groupby("size").agg(
        clusters=("cluster", "nunique"), instances=("cluster", "size"),
        errors=("error", "sum"), forgetting=("forgetting", "sum")).reset_index().astype("int64")


def cluster_size_bins(inst: pd.DataFrame) -> pd.DataFrame:
    """Instances per log2 bin of their final-cluster size, correct and wrong, with each
    group's share: columns bin, text, correct, wrong, correct_share, wrong_share, clusters."""
    b = log2_bin(inst["size"].to_numpy()) if len(inst) else np.zeros(0, dtype=int)
    k = np.arange(int(b.max()) + 1 if len(b) else 1)
    ok = inst["correct"].to_numpy().astype(bool)
    correct = np.bincount(b[ok], minlength=len(k))
    wrong = np.bincount(b[~ok], minlength=len(k))
    clusters = inst.assign(bin=b).groupby("bin")["cluster"].nunique().reindex(k, fill_value=0).to_numpy()
    return pd.DataFrame({"bin": k, "text": _size_text(k), "correct": correct, "wrong": wrong,
                         "correct_share": correct / max(ok.sum(), 1), "wrong_share": wrong / max((~ok).sum(), 1),
                         "clusters": clusters})


def cluster_sizes_chart(inst: pd.DataFrame) -> go.Figure:
    """Instances by the log2 bin of their final-cluster size, correct vs wrong side by side,
    each bar labelled with its share of its group: where errors sit (small clusters) reads
    even when most clusters are singletons, which a box plot draws as one flat line."""
    table = cluster_size_bins(inst)
    fig = go.Figure()
    for name, colour in (("correct", style.CORRECT), ("wrong", style.ERROR)):
        fig.add_trace(go.Bar(x=table["text"], y=table[name], name=f"{name} ({int(table[name].sum())})",
                             marker_color=colour, text=[f"{v:.0%}" if v else "" for v in table[f"{name}_share"]],
                             textposition="outside", customdata=table[[f"{name}_share", "clusters"]].to_numpy(),
                             hovertemplate="size %{x}: %{y} " + name + " instances (%{customdata[0]:.1%} of them), "
                             "%{customdata[1]} clusters in the bin<extra></extra>"))
    fig.update_layout(title="Instances by final-cluster size (log2 bins), share of correct / wrong",
                      xaxis={"title": "final-cluster size", "type": "category"},
                      yaxis={"title": "instances", "type": "log"}, barmode="group", **_LAYOUT)
    return fig


def forgetting_chart(inst: pd.DataFrame) -> go.Figure:
    """Mean forgetting events per instance by log2 bin of its final-cluster size."""
    b = log2_bin(inst["size"].to_numpy())
    per = inst.assign(bin=b).groupby("bin").agg(mean=("forgetting", "mean"), n=("forgetting", "size")).reset_index()
    text = _size_text(per["bin"].to_numpy())
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
