"""`apd neighbours` throughput (issue 18: 60,000 instances x 300 bits "in seconds"), printed
as a table: seconds for the nearest same / other-class distances alone (k = 0) and for the
distances with the k-NN graph (k = 5), on the CPU and on CUDA when torch sees one.

Inputs: synthetic uniform random bits (every pattern distinct, 10 classes), and layer 1 of
a stored real run (default the fm-train run: 784-300-100 Fashion-MNIST, 60k train instances)
read from a store given with --store; pass a copy, the bench only reads it. Also compares
the exact distance kernels on one chunk: the float GEMM |a| + |b| - 2 a.b that
toolkit/apd/neighbours.py uses, numpy's `bitwise_count` on packed 64-bit words, and a byte
popcount table.

    python bench/bench_neighbours.py [--instances 60000] [--bits 300] [--store /tmp/fm.lbug --run fm-train]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from toolkit.apd.neighbours import layer_input, pattern_neighbours
from toolkit.store import open_store

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def kernels(packed: np.ndarray, rows: int = 200) -> dict[str, float]:
    """Seconds per million pattern pairs of each exact kernel, on `rows` rows against all."""
    words = np.ascontiguousarray(np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))).view(np.uint64)
    bits = torch.from_numpy(np.unpackbits(packed, axis=1)).float()
    ones = bits.sum(1)
    pairs = rows * len(packed) / 1e6
    out = {
        "gemm": timed(lambda: (bits[:rows] @ bits.T).mul_(-2).add_(ones).add_(ones[:rows, None])),
        "bitwise_count": timed(lambda: np.bitwise_count(words[:rows, None, :] ^ words[None, :, :]).sum(2)),
        "byte_table": timed(lambda: _POPCOUNT[packed[:rows // 10, None, :] ^ packed[None, :, :]].sum(2)) * 10,
    }
    return {k: v / pairs for k, v in out.items()}


def bench(name: str, packed: np.ndarray, classes_of: np.ndarray, device: str) -> dict:
    dist = timed(lambda: pattern_neighbours(packed, classes_of, k=0, device=device))
    both = timed(lambda: pattern_neighbours(packed, classes_of, k=5, device=device))
    return {"data": name, "device": device, "patterns": len(packed), "bits": packed.shape[1] * 8,
            "distances_s": round(dist, 2), "distances_knn5_s": round(both, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=60_000)
    ap.add_argument("--bits", type=int, default=300)
    ap.add_argument("--store", default=None, help="A store holding --run (a copy: it is only read).")
    ap.add_argument("--run", default="fm-train")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    packed = np.packbits(rng.random((args.instances, args.bits)) < 0.5, axis=1)
    pred = rng.integers(0, 10, size=args.instances)
    inputs = [("synthetic", packed, np.eye(10, dtype=bool)[pred])]
    if args.store:
        with open_store(args.store, read_only=True) as s:
            li = layer_input(s, args.run, 1)
        inputs.append((f"{args.run} layer 1", li.packed, li.count > 0))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("exact kernels, seconds per million pairs:",
          ", ".join(f"{k} {v:.4f}" for k, v in kernels(packed).items()))
    rows = [bench(name, p, c, d) for name, p, c in inputs for d in devices]
    print(f"{'data':<20} {'device':<6} {'patterns':>8} {'bits':>5} {'distances s':>12} {'+ k-NN (k=5) s':>15}")
    for r in rows:
        print(f"{r['data']:<20} {r['device']:<6} {r['patterns']:>8} {r['bits']:>5} {r['distances_s']:>12} "
              f"{r['distances_knn5_s']:>15}")


if __name__ == "__main__":
    main()
