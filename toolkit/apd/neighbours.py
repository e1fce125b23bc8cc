"""`apd neighbours`: how far each instance's pattern is from the others', per hidden layer.

On wide layers almost every instance has a pattern of its own, so "same pattern" says little;
the Hamming distance to the nearest pattern of the same and of another predicted class, and
a k-nearest-neighbour graph of patterns, still do.

Distances are Hamming distances between the stored packed bits (ReLU: neurons that differ;
Hardtanh: state steps, low <-> high counts 2). They are computed between *distinct* patterns
only (instances sharing a pattern share its distances), in cache-sized blocks of the upper
triangle so memory stays bounded, as (bits - a.b) / 2 with a.b the product of +1/-1 bits: an
int8 GEMM with int32 output on the CPU (torch._int_mm), fp16 on CUDA, exact either way and
far faster than a byte-popcount table or numpy's `bitwise_count` on the packed words
(bench/bench_neighbours.py).

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
_TILE = {"cpu": (1024, 4096), "cuda": (8192, 16384)}  # block rows x columns: L2/L3-sized on the CPU
_PILOT = 2048  # sampled rows that bound each row's k-th nearest distance before the main pass


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


def _signs(packed: np.ndarray, device: torch.device) -> torch.Tensor:
    """Packed uint8 rows -> +1 / -1 per bit, so that a.b = bits - 2 * Hamming(a, b): the GEMM
    output is the distance itself (no |a| + |b| correction pass) and the nearest pattern is the
    largest product. int8 on the CPU for torch._int_mm (int32 accumulation, exact; VNNI, ~7x
    the fp32 GEMM here), fp16 on CUDA (exact: |a.b| <= bits < 2048), fp32 beyond."""
    bits = np.unpackbits(np.ascontiguousarray(packed, dtype=np.uint8), axis=1).astype(np.int8) * 2 - 1
    signs = torch.from_numpy(bits).to(device)
    if device.type == "cpu":
        return signs
    return signs.to(torch.float16 if bits.shape[1] < 2048 else torch.float32)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch._int_mm(a, b.T) if a.dtype == torch.int8 else a @ b.T


def pattern_neighbours(packed: np.ndarray, classes_of: np.ndarray, k: int = 5, max_distance: int | None = None,
                       device: str | torch.device = "cpu", progress: bool = False) -> Neighbours:
    """Nearest other pattern per class, and the k-NN graph, of distinct patterns.

    packed: uint8 [P, B] distinct packed patterns (row order breaks ties: sort by uid first).
    classes_of: bool [P, C], which classes have at least one instance with each pattern.

    Exact, in products of +1/-1 bits (a.b = bits - 2 d) over the upper triangle of the
    symmetric matrix, in cache-sized blocks: each block serves its rows and its columns. The
    patterns are sorted by their first class, so a class is a contiguous run of rows and of
    columns and its minimum is a slice's max; the few patterns of several classes add their
    other classes in a small extra pass. For the k-NN, a sample of rows first bounds each
    row's k-th nearest distance from above (a subset's k-th nearest is no nearer); a block then
    keeps only entries within a bound (with every tie), and the final selection sorts those few
    by (distance, row), so ties never depend on the order blocks were visited.
    """
    dev = resolve_device(device)
    P, C = classes_of.shape
    nbits = packed.shape[1] * 8
    cap = nbits if max_distance is None else min(int(max_distance), nbits)
    first = np.where(classes_of.any(1), classes_of.argmax(1), C)  # rows of no class sort last
    order = np.argsort(first, kind="stable")
    bounds = np.searchsorted(first[order], np.arange(C + 1))
    x = _signs(packed[order], dev)
    sent = -nbits - 2  # below every product: "no such pattern"
    near = torch.full((P, C), sent, dtype=_dot(x[:1], x[:1]).dtype, device=dev)
    kk = min(k, P - 1)
    rows_per, cols_per = _TILE["cuda" if dev.type == "cuda" else "cpu"]
    bound = _knn_bounds(x, kk, nbits - 2 * cap, sent, rows_per) if kk > 0 else None
    found = []
    for a in tqdm(range(0, P, rows_per), desc="distances", unit="block row", disable=not progress):
        for b in range(a, P, cols_per):
            d = _dot(x[a:a + rows_per], x[b:b + cols_per])
            if b < a + d.shape[0]:  # the block holds some of its rows' own products
                own = torch.arange(b, min(a + d.shape[0], b + d.shape[1]), device=dev)
                d[own - a, own - b] = sent
            _class_max(near[a:a + rows_per], d, bounds, b, 1)
            _class_max(near[b:b + cols_per], d, bounds, a, 0)
            if bound is not None:
                found.append(_within_bound(d, bound, a, b))
    near = near[torch.as_tensor(np.argsort(order), device=dev)]
    _other_classes(near, x, classes_of, first, order, sent, nbits, rows_per)
    near = near.long().cpu().numpy()
    near = np.where(near == sent, NONE, (nbits - near) // 2)
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return Neighbours(near, empty, empty, empty)
    a, b, w = _select(found, order, kk, nbits, cap, P)
    return Neighbours(near, a, b, w)


def _class_max(near: torch.Tensor, d: torch.Tensor, bounds: np.ndarray, start: int, axis: int) -> None:
    """Fold block `d` into `near` (the rows along the other axis): per class whose run of
    patterns overlaps the block's `axis` (which begins at pattern `start`), the max over it."""
    stop = start + d.shape[axis]
    for c in range(np.searchsorted(bounds, start, "right") - 1, min(np.searchsorted(bounds, stop), len(bounds) - 1)):
        lo, hi = max(bounds[c], start) - start, min(bounds[c + 1], stop) - start
        if hi > lo:
            part = d[:, lo:hi].amax(1) if axis == 1 else d[lo:hi].amax(0)
            near[:, c] = torch.maximum(near[:, c], part)


def _knn_bounds(x: torch.Tensor, k: int, floor: int, sent: int, rows_per: int) -> torch.Tensor:
    """Per row, a product every one of its k nearest others reaches: its k-th largest product
    with an evenly spaced sample of rows (itself excluded), or the distance cap's product if that
    is higher. With fewer than k + 1 sampled rows there is no bound but the cap."""
    P, nbits = x.shape
    sample = torch.as_tensor(np.unique(np.linspace(0, P - 1, min(P, _PILOT)).round().astype(np.int64)), device=x.device)
    if len(sample) <= k:
        return torch.full((P,), max(floor, sent), dtype=torch.int64, device=x.device)
    out = []
    for a in range(0, P, rows_per):
        d = _dot(x[a:a + rows_per], x[sample])
        d[d == nbits] = sent  # itself (patterns are distinct, so only it has a.a = bits)
        out.append(torch.topk(d, k, dim=1).values[:, -1].long())
    return torch.cat(out).clamp_(min=floor)


def _within_bound(d: torch.Tensor, bound: torch.Tensor, a: int, b: int) -> tuple[torch.Tensor, ...]:
    """Directed (row, neighbour, product) entries of block d (rows from a, columns from b)
    that reach the row's bound; where the block's rows and columns overlap, each unordered pair
    is read once."""
    mask = (d >= bound[a:a + d.shape[0], None]) | (d >= bound[None, b:b + d.shape[1]])
    i, j = torch.nonzero(mask, as_tuple=True)
    v = d[i, j].long()
    i, j = i + a, j + b
    if b < a + d.shape[0]:  # rows and columns overlap: both orders of a pair are in the block
        upper = i < j
        i, j, v = i[upper], j[upper], v[upper]
    fwd, bwd = v >= bound[i], v >= bound[j]
    return torch.cat([i[fwd], j[bwd]]), torch.cat([j[fwd], i[bwd]]), torch.cat([v[fwd], v[bwd]])


def _other_classes(near: torch.Tensor, x: torch.Tensor, classes_of: np.ndarray, first: np.ndarray,
                   order: np.ndarray, sent: int, nbits: int, rows_per: int) -> None:
    """Add to `near` (rows in input order) the classes a pattern holds besides its first: on a
    wide layer a handful of patterns, so one small product block per class."""
    other = classes_of.copy()
    held = first < classes_of.shape[1]
    other[np.nonzero(held)[0], first[held]] = False
    rank = np.argsort(order)  # input row -> row of x
    for c in np.nonzero(other.any(0))[0]:
        cols = x[torch.as_tensor(rank[np.nonzero(other[:, c])[0]], device=x.device)]
        for a in range(0, len(x), rows_per):
            d = _dot(x[a:a + rows_per], cols)
            d[d == nbits] = sent  # itself
            rows = torch.as_tensor(order[a:a + rows_per], device=x.device)
            near[rows, c] = torch.maximum(near[rows, c], d.amax(1))


def _select(found: list, order: np.ndarray, k: int, nbits: int, cap: int, P: int) -> tuple[np.ndarray, ...]:
    """Each row's k nearest among the entries within its bound, by (distance, input row), as
    unordered pairs (src < dst, input rows), each once."""
    src, dst, v = (torch.cat([f[n] for f in found]).cpu() for n in range(3))
    perm = torch.as_tensor(order)
    src, dst, w = perm[src], perm[dst], (nbits - v) // 2
    rank = torch.sort((src * (cap + 1) + w) * P + dst).indices  # by row, distance, then neighbour
    src, dst, w = src[rank], dst[rank], w[rank]
    keep = torch.arange(len(src)) - torch.searchsorted(src, src) < k
    a, b, w = src[keep].numpy(), dst[keep].numpy(), w[keep].numpy()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    _, once = np.unique(lo * P + hi, return_index=True)
    return lo[once], hi[once], w[once]


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
