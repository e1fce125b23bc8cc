"""`apd neighbours`: how far each instance's pattern is from the others', per hidden layer.

On wide layers almost every instance has a pattern of its own, so "same pattern" says little;
the Hamming distance to the nearest pattern of the same and of another predicted class, and
a k-nearest-neighbour graph of patterns, still do.

Distances are Hamming distances between the stored packed bits (ReLU: neurons that differ;
Hardtanh: state steps, low <-> high counts 2). They are computed between *distinct* patterns
only (instances sharing a pattern share its distances), in row chunks so memory stays bounded,
as |a| + |b| - 2 a.b with one float GEMM per chunk: exact (0/1 inputs, integer sums far below
2^24, fp32 accumulation) and several times faster than a byte-popcount table or numpy's
`bitwise_count` on the packed words (bench/bench_neighbours.py).

Stored (re-running replaces):
- `near_same` / `near_other` on each `(:Instance)-[:ACTIVATES {layer}]->(:Pattern)`: distance
  to the nearest *other* instance with the same / another predicted class; 0 when one shares
  the instance's exact pattern; -1 when there is no such instance (the only instance of its
  class; a run whose instances all share one class). Per-layer values live on the per-layer
  relationship, so layer counts may differ between runs and Cypher filters them plainly.
- `(:Pattern)-[:NEAR {distance}]->(:Pattern)`: for each pattern its k nearest other patterns
  of its layer with distance <= the cap (ties broken by Pattern uid), one relationship per
  unordered pair, directed from the smaller uid to the larger: walk it undirected.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from loaders.record import rows_from_hex
from toolkit.apd.runs import run_layers
from toolkit.device import resolve_device
from toolkit.errors import ApdError
from toolkit.store import Store

NONE = -1  # no other instance of that kind (stored value)
_CHUNK_BYTES = 1 << 27  # a chunk's float32 distance block and its class-grouped copy: under 128 MB together


@dataclass(frozen=True)
class Neighbours:
    """One layer's result over its distinct patterns (rows of `packed`).

    near: int64 [P, C] distance from each pattern to the nearest *other* pattern holding an
    instance of class column c (NONE: no such pattern). knn_src / knn_dst / knn_dist: the
    k-NN edges (pattern row indices, each pair once with src < dst).
    """

    near: np.ndarray
    knn_src: np.ndarray
    knn_dst: np.ndarray
    knn_dist: np.ndarray


def _unpacked(packed: np.ndarray, device: torch.device) -> torch.Tensor:
    """Packed uint8 rows -> 0/1 matrix for the GEMM: fp16 on CUDA (exact: the sums stay below
    2048), fp32 on the CPU (fp16 GEMM is slow there)."""
    bits = np.unpackbits(np.ascontiguousarray(packed, dtype=np.uint8), axis=1)
    dtype = torch.float16 if device.type == "cuda" and bits.shape[1] < 2048 else torch.float32
    return torch.from_numpy(bits).to(device=device, dtype=dtype)


def pattern_neighbours(packed: np.ndarray, classes_of: np.ndarray, k: int = 5, max_distance: int | None = None,
                       device: str | torch.device = "cpu", progress: bool = False) -> Neighbours:
    """Nearest other pattern per class, and the k-NN graph, of distinct patterns.

    packed: uint8 [P, B] distinct packed patterns (row order breaks ties: sort by uid first).
    classes_of: bool [P, C], which classes have at least one instance with each pattern.

    Per chunk of rows: one GEMM gives the distances (float32, exact integers); the per-class
    minima read contiguous column slices of one gather (columns grouped by class); the k-NN
    takes each row's k-th smallest distance from topk, then keeps every column at or below it
    in (distance, column) order, so ties never depend on topk's internal order.
    """
    dev = resolve_device(device)
    P, C = classes_of.shape
    cap = packed.shape[1] * 8 if max_distance is None else min(int(max_distance), packed.shape[1] * 8)
    bits = _unpacked(packed, dev)
    ones = bits.float().sum(1)
    inf = float("inf")
    col_class, col_pattern = np.nonzero(classes_of.T)  # columns grouped by class, then pattern order
    grouped = torch.as_tensor(col_pattern, device=dev)
    bounds = np.searchsorted(col_class, np.arange(C + 1))
    near = torch.full((P, C), inf, device=dev)
    kk = min(k, P - 1)
    src, dst, dist = [], [], []
    chunk = max(1, _CHUNK_BYTES // (8 * max(P, 1)))
    for start in tqdm(range(0, P, chunk), desc="distances", unit="chunk", disable=not progress):
        stop = min(P, start + chunk)
        rows = torch.arange(stop - start, device=dev)
        d = (bits[start:stop] @ bits.T).float().mul_(-2).add_(ones[None, :]).add_(ones[start:stop, None])
        d[rows, rows + start] = inf  # not its own neighbour
        by_class = d[:, grouped]
        for c in range(C):
            if bounds[c + 1] > bounds[c]:
                near[start:stop, c] = by_class[:, bounds[c]:bounds[c + 1]].amin(1)
        if kk > 0:
            kth = torch.topk(d, kk, dim=1, largest=False, sorted=True).values[:, -1:]
            r, q = torch.nonzero((d <= kth) & (d <= cap), as_tuple=True)  # row-major: columns ascending
            w = d[r, q].long()
            order = torch.sort(r * (cap + 2) + w, stable=True).indices  # by row, distance, then column
            r, q, w = r[order], q[order], w[order]
            first = torch.searchsorted(r, r, right=False)
            keep = torch.arange(len(r), device=dev) - first < kk
            src.append((r[keep] + start).cpu())
            dst.append(q[keep].cpu())
            dist.append(w[keep].cpu())
    near = near.cpu().numpy()
    near = np.where(np.isinf(near), NONE, near).astype(np.int64)
    if src:
        a, b, w = torch.cat(src).numpy(), torch.cat(dst).numpy(), torch.cat(dist).numpy()
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        _, first = np.unique(lo * P + hi, return_index=True)
        a, b, w = lo[first], hi[first], w[first]
    else:
        a = b = w = np.zeros(0, dtype=np.int64)
    return Neighbours(near, a, b, w)


def instance_distances(near: np.ndarray, pattern: np.ndarray, cls: np.ndarray,
                       count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per instance, from the per-pattern table: (near_same, near_other).

    pattern, cls: each instance's pattern row and class column; count: int [P, C] instances
    per (pattern, class). Another instance on the same pattern gives 0.
    """
    same = near[pattern, cls].copy()
    same[count[pattern, cls] >= 2] = 0
    masked = np.where(near == NONE, np.iinfo(np.int64).max, near)
    masked_other = masked[pattern].copy()
    masked_other[np.arange(len(pattern)), cls] = np.iinfo(np.int64).max
    other = masked_other.min(1)
    other[other == np.iinfo(np.int64).max] = NONE
    shares = count[pattern].sum(1) - count[pattern, cls] > 0
    other[shares] = 0
    return same, other


@dataclass(frozen=True)
class LayerInput:
    """One hidden layer of a stored run: distinct patterns in uid order (ties break by uid),
    and each instance's pattern row and predicted-class column."""

    uids: np.ndarray  # [P] Pattern uids, sorted
    packed: np.ndarray  # uint8 [P, B]
    instances: np.ndarray  # [n] Instance uids
    idx: np.ndarray  # [n] Instance idx (matches instances across snapshot runs)
    pattern: np.ndarray  # [n] row in uids
    classes: np.ndarray  # [C] predicted labels present, ascending
    cls: np.ndarray  # [n] column of `count`
    count: np.ndarray  # int [P, C] instances per (pattern, predicted class)


def layer_input(store: Store, run: str, layer: int) -> LayerInput:
    """Read one layer's instances and pattern bits (cypher/layer_instances.cypher)."""
    frame = store.query("layer_instances", run=run, layer=layer)
    uids, row, pattern = np.unique(frame["pattern"].to_numpy(), return_index=True, return_inverse=True)
    bits = frame["bits"].to_numpy()[row]
    if len({len(b) for b in bits}) > 1:
        raise ApdError(f"run {run!r} layer {layer}: patterns of different lengths: re-ingest it")
    packed = rows_from_hex(bits)
    classes, cls = np.unique(frame["pred"].to_numpy(np.int64), return_inverse=True)
    count = np.zeros((len(uids), len(classes)), dtype=np.int64)
    np.add.at(count, (pattern, cls), 1)
    return LayerInput(uids, packed, frame["instance"].to_numpy(), frame["idx"].to_numpy(np.int64), pattern,
                      classes, cls, count)


def run_neighbours(store: Store, run: str, k: int = 5, max_distance: int | None = None, device: str = "auto",
                   progress: bool = False) -> pd.DataFrame:
    """Distances of every layer of `run`, written back (replacing earlier ones); returns a
    per-layer summary (the `apd neighbours` table).

    One batch: NEAR is replaced (a cut-off write is rolled back to no NEAR edges), then the
    ACTIVATES distances are set. Those depend only on the run's patterns and predictions,
    which nothing but a re-ingest changes, so a cut between their updates leaves every value
    the one a finished run writes (or null where none was written yet)."""
    if k < 0:
        raise ApdError(f"--k must be at least 0, got {k}")
    if max_distance is not None and max_distance < 0:
        raise ApdError(f"--max-distance must be at least 0, got {max_distance}")
    dev = resolve_device(device)
    layers = run_layers(store, run)
    updates, near_rels, summary = [], [], []
    for layer in range(1, layers + 1):
        li = layer_input(store, run, layer)
        nb = pattern_neighbours(li.packed, li.count > 0, k, max_distance, dev, progress)
        same, other = instance_distances(nb.near, li.pattern, li.cls, li.count)
        updates.append(pd.DataFrame({"src": li.instances, "dst": li.uids[li.pattern],
                                     "near_same": same, "near_other": other}))
        near_rels.append(pd.DataFrame({"src": li.uids[nb.knn_src], "dst": li.uids[nb.knn_dst],
                                       "distance": nb.knn_dist}))
        summary.append(_summary(layer, len(li.uids), same, other, nb.knn_dist))
    store.write(run, rels={"NEAR": pd.concat(near_rels, ignore_index=True)}, replace_rels=("NEAR",),
                rel_updates={"ACTIVATES": pd.concat(updates, ignore_index=True)})
    return pd.DataFrame(summary)


def _summary(layer: int, patterns: int, same: np.ndarray, other: np.ndarray, dist: np.ndarray) -> dict:
    def med(v: np.ndarray) -> float:
        v = v[v >= 0]
        return float(np.median(v)) if len(v) else float("nan")

    return {"layer": layer, "patterns": patterns, "median_same": med(same), "median_other": med(other),
            "closer_to_other": int(((other >= 0) & (same >= 0) & (other < same)).sum()),
            "near_edges": int(len(dist)), "mean_near_distance": float(dist.mean()) if len(dist) else float("nan")}
