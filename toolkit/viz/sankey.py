"""The APD as a Sankey: one column per hidden layer plus the predicted labels.

Nodes are patterns (sized by instances), links carry instances from one layer's pattern
to the next (width = instances, colour = share of errors). A column with more than
`max_nodes` patterns keeps its largest patterns that hold at least two instances and pools
the rest as "other"; when the rest would be most of the column (a wide net, where nearly
every instance has a pattern of its own) it is pooled per predicted label instead, so the
column still shows how the drawn instances split, not one grey block. Node labels are
short (`L1 #3`: the 3rd largest pattern of layer 1); the full key, instances, errors and
purity are on hover. All counting is done with array group-bys, never per instance.

Nodes are placed by their majority predicted label, then by size, in every panel: pattern
ids cannot be matched across snapshot runs (their patterns differ), but this order makes
side-by-side panels comparable (pred 0 at the top of every column of every panel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from toolkit.viz import style

NEARLY_UNIQUE = 0.5  # a capped column whose rest holds more than this share is pooled per predicted label


@dataclass(frozen=True)
class SankeyData:
    """Nodes and links of one Sankey; `column` is 0..L-1 for hidden layers, L for labels."""

    label: list[str]  # short text drawn beside the node
    full: list[str]  # hover text: the full pattern key, or what an "other" node pools
    column: np.ndarray
    size: np.ndarray  # instances per node
    errors: np.ndarray  # errors per node
    purity: np.ndarray  # share of the node's most frequent predicted label
    major: np.ndarray  # the node's most frequent predicted label (its place in the column)
    other: np.ndarray  # bool: a pooled "other" node of its column
    source: np.ndarray
    target: np.ndarray
    value: np.ndarray  # instances per link
    link_errors: np.ndarray
    own: np.ndarray  # per hidden column: instances whose pattern no other drawn instance has
    by_pred: np.ndarray  # per column: bool, the rest pooled per predicted label


def _column(ids: np.ndarray, pred: np.ndarray, max_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Node of each instance in one column (kept patterns largest first, then the pooled
    nodes), the kept ids, the predicted label each pooled node stands for (-1: all), and
    whether the rest is pooled per predicted label."""
    uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    order = np.lexsort((uniq, -counts))  # largest first, then by id
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    if len(uniq) <= max_nodes:
        return rank[inverse], uniq[order], np.zeros(0, dtype=np.int64), False
    shared = int((counts >= 2).sum())  # a capped column draws no single-instance pattern
    keep = min(shared, max_nodes - 1)
    classes = np.unique(pred)
    by_pred = (rank[inverse] >= keep).mean() > NEARLY_UNIQUE and len(classes) < max_nodes
    if not by_pred:
        return np.minimum(rank[inverse], keep), uniq[order[:keep]], np.array([-1]), False
    keep = min(shared, max_nodes - len(classes))
    rest = rank[inverse] >= keep
    pooled = np.unique(pred[rest])
    node = rank[inverse]
    node[rest] = keep + np.searchsorted(pooled, pred[rest])
    return node, uniq[order[:keep]], pooled, True


def sankey_data(
    patterns: np.ndarray,
    pred: np.ndarray,
    correct: np.ndarray,
    names: list[np.ndarray] | None = None,
    max_nodes: int = 30,
) -> SankeyData:
    """Sankey nodes and links of the instances given (rows of `patterns` [n, L], pattern ids per layer).

    names[l][id] is the full text (hover) of pattern `id` of layer l+1 (default: the id).
    """
    if max_nodes < 2:
        raise ValueError("max_nodes must be at least 2 (one pattern and the other bucket)")
    n, n_layers = patterns.shape
    pred = np.asarray(pred)
    cols = [patterns[:, j] for j in range(n_layers)] + [pred]
    wrong = ~np.asarray(correct, dtype=bool)
    node_of = np.empty((n, n_layers + 1), dtype=np.int64)
    labels: list[str] = []
    full: list[str] = []
    column, other, own, by_pred = [], [], [], []
    offset = 0
    for j, ids in enumerate(cols):
        node, kept, pooled, per_pred = _column(ids, pred, max_nodes)
        node_of[:, j] = node + offset
        if j < n_layers:
            labels += [f"L{j + 1} #{r + 1}" for r in range(len(kept))]
            full += [f"pattern {names[j][k] if names is not None else k}" for k in kept]
            counts = np.unique(ids, return_counts=True)[1]
            own.append(int(counts[counts == 1].sum()))
        else:
            labels += [f"pred {k}" for k in kept]
            full += [f"predicted {k}" for k in kept]
        head = f"L{j + 1} other" if j < n_layers else "pred other"
        rest = node >= len(kept)
        pairs = np.unique(np.column_stack([node[rest], ids[rest]]), axis=0)
        n_pat = np.bincount(pairs[:, 0] - len(kept), minlength=len(pooled)) if len(pooled) else []
        for c, pats in zip(pooled, n_pat):
            labels.append(f"{head} (pred {c})" if c >= 0 else head)
            full.append(f"{pats} patterns pooled" + (f", predicted {c}" if c >= 0 else ""))
        k = len(kept) + len(pooled)
        column.append(np.full(k, j))
        other.append(np.arange(k) >= len(kept))
        by_pred.append(per_pred)
        offset += k
    size = np.bincount(node_of.ravel(), minlength=offset)
    errors = np.bincount(node_of.ravel(), weights=np.repeat(wrong, n_layers + 1), minlength=offset).astype(np.int64)
    classes, pred_id = np.unique(pred, return_inverse=True)
    per_class = np.bincount(node_of.ravel() * len(classes) + np.repeat(pred_id, n_layers + 1),
                            minlength=offset * len(classes)).reshape(offset, len(classes))
    src = node_of[:, :-1].ravel()
    dst = node_of[:, 1:].ravel()
    pair, inverse, value = np.unique(src * offset + dst, return_inverse=True, return_counts=True)
    link_err = np.bincount(inverse, weights=np.repeat(wrong, n_layers), minlength=len(pair)).astype(np.int64)
    return SankeyData(labels, full, np.concatenate(column), size, errors,
                      per_class.max(1) / np.maximum(size, 1), classes[per_class.argmax(1)], np.concatenate(other),
                      pair // offset, pair % offset, value, link_err, np.array(own, dtype=np.int64),
                      np.array(by_pred))


def node_positions(data: SankeyData) -> tuple[np.ndarray, np.ndarray]:
    """x and y (centres, in (0, 1)) of every node: columns left to right; within a column by
    majority predicted label, then kept patterns before pooled ones, then largest first."""
    n_cols = int(data.column.max()) + 1
    x = 0.001 + 0.998 * data.column / max(n_cols - 1, 1)
    order = np.lexsort((np.arange(len(data.size)), -data.size, data.other, data.major, data.column))
    per_col = np.bincount(data.column)
    gap = min(0.015, 0.3 / max(int(per_col.max()) - 1, 1))  # the share of the height between two nodes
    y = np.empty(len(data.size))
    for j in range(n_cols):  # one pass per column (a handful), vectorised within
        nodes = order[data.column[order] == j]
        s = data.size[nodes] / data.size[nodes].sum()
        used = 1 - gap * (len(nodes) - 1)
        y[nodes] = 0.001 + used * (np.cumsum(s) - s / 2) + gap * np.arange(len(nodes))
    return x, np.minimum(y, 0.999)


LABELLED_SHARE = 0.02  # nodes holding less of their column are named on hover only


def sankey_trace(data: SankeyData, domain_x: tuple[float, float] = (0.0, 1.0)) -> go.Sankey:
    """A plotly Sankey trace in the fixed node order of `node_positions`; hover shows the full
    key (or what a pooled node holds), instances, errors and purity of every node."""
    node_colour = np.where(data.other, style.OTHER, style.CORRECT).astype(object)
    share = data.link_errors / np.maximum(data.value, 1)
    x, y = node_positions(data)
    custom = [[f, int(n), int(e), round(float(p), 3), t] for f, n, e, p, t in zip(data.full, data.size, data.errors,
                                                                                 data.purity, data.label)]
    # a node thinner than its label would overlap its neighbours' labels: its name is on hover only
    column_total = np.bincount(data.column, weights=data.size)[data.column]
    shown = [t if n >= LABELLED_SHARE * c else "" for t, n, c in zip(data.label, data.size, column_total)]
    return go.Sankey(
        domain={"x": list(domain_x), "y": [0.0, 1.0]},
        arrangement="snap",
        node={"label": shown, "pad": 6, "thickness": 12, "color": node_colour.tolist(),
              "x": x.tolist(), "y": y.tolist(), "customdata": custom,
              "hovertemplate": "%{customdata[4]}: %{customdata[0]}<br>%{customdata[1]} instances, %{customdata[2]} errors, "
                               "purity %{customdata[3]}<extra></extra>"},
        link={"source": data.source.tolist(), "target": data.target.tolist(), "value": data.value.tolist(),
              "color": style.error_colours(share), "customdata": data.link_errors.tolist(),
              "hovertemplate": "%{value} instances, %{customdata} errors<extra></extra>"},
    )


def sankey_figure(parts: list[tuple[str, SankeyData]], height: int = 560) -> go.Figure:
    """One Sankey per (title, data), side by side (snapshot runs in epoch order)."""
    fig = go.Figure()
    k = len(parts)
    gap = 0.02 if k > 1 else 0.0
    for i, (title, data) in enumerate(parts):
        x0, x1 = i / k + (gap if i else 0.0), (i + 1) / k - (gap if i + 1 < k else 0.0)
        fig.add_trace(sankey_trace(data, (x0, x1)))
        fig.add_annotation(text=title, x=(x0 + x1) / 2, y=1.06, xref="paper", yref="paper", showarrow=False)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, font={"size": 10})
    return fig
