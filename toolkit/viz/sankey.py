"""The APD as a Sankey: one column per hidden layer plus the predicted labels.

Nodes are patterns (sized by instances), links carry instances from one layer's pattern
to the next (width = instances, colour = share of errors). A column with more than
`max_nodes` patterns keeps its `max_nodes - 1` largest and pools the rest as "other", so
big runs stay readable. All counting is done with array group-bys, never per instance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from toolkit.viz import style


@dataclass(frozen=True)
class SankeyData:
    """Nodes and links of one Sankey; `column` is 0..L-1 for hidden layers, L for labels."""

    label: list[str]
    column: np.ndarray
    size: np.ndarray  # instances per node
    errors: np.ndarray  # errors per node
    other: np.ndarray  # bool: the pooled "other" node of its column
    source: np.ndarray
    target: np.ndarray
    value: np.ndarray  # instances per link
    link_errors: np.ndarray


def _column(ids: np.ndarray, max_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node of each instance in one column, the kept ids (largest first) and whether the last is "other"."""
    uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    order = np.lexsort((uniq, -counts))  # largest first, then by id
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    if len(uniq) > max_nodes:
        keep = max_nodes - 1
        node = np.minimum(rank[inverse], keep)
        return node, uniq[order[:keep]], np.array(True)
    return rank[inverse], uniq[order], np.array(False)


def sankey_data(
    patterns: np.ndarray,
    pred: np.ndarray,
    correct: np.ndarray,
    names: list[np.ndarray] | None = None,
    max_nodes: int = 30,
) -> SankeyData:
    """Sankey nodes and links of the instances given (rows of `patterns` [n, L], pattern ids per layer).

    names[l][id] is the text shown for pattern `id` of layer l+1 (default: the id).
    """
    if max_nodes < 2:
        raise ValueError("max_nodes must be at least 2 (one pattern and the other bucket)")
    n, n_layers = patterns.shape
    cols = [patterns[:, j] for j in range(n_layers)] + [np.asarray(pred)]
    wrong = ~np.asarray(correct, dtype=bool)
    node_of = np.empty((n, n_layers + 1), dtype=np.int64)
    labels: list[str] = []
    column, other = [], []
    offset = 0
    for j, ids in enumerate(cols):
        node, kept, pooled = _column(ids, max_nodes)
        node_of[:, j] = node + offset
        if j < n_layers:
            text = [str(names[j][k]) if names is not None else str(k) for k in kept]
            labels += [f"L{j + 1} {t}" for t in text]
        else:
            labels += [f"pred {k}" for k in kept]
        if pooled:
            labels.append(f"L{j + 1} other" if j < n_layers else "pred other")
        k = len(kept) + int(pooled)
        column.append(np.full(k, j))
        other.append(np.arange(k) == len(kept))
        offset += k
    size = np.bincount(node_of.ravel(), minlength=offset)
    errors = np.bincount(node_of.ravel(), weights=np.repeat(wrong, n_layers + 1), minlength=offset).astype(np.int64)
    src = node_of[:, :-1].ravel()
    dst = node_of[:, 1:].ravel()
    pair, inverse, value = np.unique(src * offset + dst, return_inverse=True, return_counts=True)
    link_err = np.bincount(inverse, weights=np.repeat(wrong, n_layers), minlength=len(pair)).astype(np.int64)
    return SankeyData(labels, np.concatenate(column), size, errors, np.concatenate(other),
                      pair // offset, pair % offset, value, link_err)


def sankey_trace(data: SankeyData, domain_x: tuple[float, float] = (0.0, 1.0)) -> go.Sankey:
    """A plotly Sankey trace; hover shows instances and errors of every node and link."""
    node_colour = np.where(data.other, style.OTHER, style.CORRECT).astype(object)
    share = data.link_errors / np.maximum(data.value, 1)
    return go.Sankey(
        domain={"x": list(domain_x), "y": [0.0, 1.0]},
        arrangement="freeform",
        node={"label": data.label, "pad": 6, "thickness": 12, "color": node_colour.tolist(),
              "customdata": np.column_stack([data.size, data.errors]).tolist(),
              "hovertemplate": "%{label}<br>%{customdata[0]} instances, %{customdata[1]} errors<extra></extra>"},
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
