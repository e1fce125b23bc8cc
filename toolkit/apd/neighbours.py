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

from toolkit.apd.runs import run_layers
from toolkit.device import resolve_device
from toolkit.errors import ApdError
from toolkit.store import Store

NONE = -1  # no other instance of that kind (stored value)
_CHUNK_BYTES = 1 << 27  # one chunk's int64 distance block stays under 128 MB


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
    """
    dev = resolve_device(device)
    P = len(packed)
    C = classes_of.shape[1]
    cap = packed.shape[1] * 8 if max_distance is None else int(max_distance)
    bits = _unpacked(packed, dev)
    ones = bits.float().sum(1)
    big = torch.iinfo(torch.int64).max
    has = torch.as_tensor(classes_of, device=dev)
    near = torch.full((P, C), big, dtype=torch.int64, device=dev)
    kk = min(k, P - 1)
    src, dst, dist = [], [], []
    chunk = max(1, _CHUNK_BYTES // (8 * max(P, 1)))
    cols = torch.arange(P, device=dev)
    for start in tqdm(range(0, P, chunk), desc="distances", unit="chunk", disable=not progress):
        stop = min(P, start + chunk)
        gram = (bits[start:stop] @ bits.T).float()
        d = (ones[start:stop, None] + ones[None, :] - 2 * gram).round_().to(torch.int64)
        rows = torch.arange(stop - start, device=dev)
        d[rows, rows + start] = big  # not its own neighbour
        for c in range(C):
            members = has[:, c]
            if members.any():
                near[start:stop, c] = d[:, members].amin(1)
        if kk > 0:
            key = torch.where(d == big, big, d * P + cols)  # distance, then row: deterministic ties
            top = torch.topk(key, kk, dim=1, largest=False, sorted=True).values
            tdist, tdst = top // P, top % P
            ok = (top != big) & (tdist <= cap)
            srcs = (rows + start)[:, None].expand_as(top)
            src.append(srcs[ok].cpu())
            dst.append(tdst[ok].cpu())
            dist.append(tdist[ok].cpu())
    near = near.cpu().numpy()
    near[near == big] = NONE
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


def run_neighbours(store: Store, run: str, k: int = 5, max_distance: int | None = None, device: str = "auto",
                   progress: bool = False) -> pd.DataFrame:
    """Distances of every layer of `run`, written back (replacing earlier ones); returns a
    per-layer summary (the `apd neighbours` table)."""
    if k < 0:
        raise ApdError(f"--k must be at least 0, got {k}")
    if max_distance is not None and max_distance < 0:
        raise ApdError(f"--max-distance must be at least 0, got {max_distance}")
    dev = resolve_device(device)
    layers = run_layers(store, run)
    updates, near_rels, summary = [], [], []
    for layer in range(1, layers + 1):
        frame = store.query("neighbour_input", run=run, layer=layer)
        uids, row, inst_pat = np.unique(frame["pattern"].to_numpy(), return_index=True, return_inverse=True)
        bits = frame["bits"].to_numpy()[row]
        if len({len(b) for b in bits}) != 1:
            raise ApdError(f"run {run!r} layer {layer}: patterns of different lengths: re-ingest it")
        packed = np.frombuffer(bytes.fromhex("".join(bits)), dtype=np.uint8).reshape(len(uids), -1)
        classes, inst_cls = np.unique(frame["pred"].to_numpy(), return_inverse=True)
        count = np.zeros((len(uids), len(classes)), dtype=np.int64)
        np.add.at(count, (inst_pat, inst_cls), 1)
        nb = pattern_neighbours(packed, count > 0, k, max_distance, dev, progress)
        same, other = instance_distances(nb.near, inst_pat, inst_cls, count)
        updates.append(pd.DataFrame({"src": frame["instance"].to_numpy(), "dst": frame["pattern"].to_numpy(),
                                     "near_same": same, "near_other": other}))
        near_rels.append(pd.DataFrame({"src": uids[nb.knn_src], "dst": uids[nb.knn_dst], "distance": nb.knn_dist}))
        summary.append(_summary(layer, len(uids), same, other, nb.knn_dist))
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
