"""`apd neighbours` throughput (issue 18: 60,000 instances x 300 bits "in seconds"), printed
as a table: seconds for the nearest same / other-class distances alone (k = 0) and for the
distances with the k-NN graph (k = 5), on the CPU and on CUDA when torch sees one.

Inputs: synthetic uniform random bits (every pattern distinct, 10 classes), and layer 1 of
a stored real run (default the fm-train run: 784-300-100 Fashion-MNIST, 60k train instances)
read from a store given with --store; pass a copy, the bench only reads it. Also compares
the distance kernels on one cache-sized block (1024 x 4096 patterns), in seconds per
million pattern pairs: the int8 GEMM of +1/-1 bits with int32 output that
toolkit/apd/neighbours.py uses (torch._int_mm), the fp32 GEMM |a| + |b| - 2 a.b it used
before, a bf16 GEMM (fast, but its output is rounded to bf16: products above 256 are not
exact, the "exact" column says whether this block happened to stay below), numpy's
`bitwise_count` on packed 64-bit words and a byte popcount table.

    python bench/bench_neighbours.py [--instances 60000] [--bits 300] [--store /tmp/fm.lbug --run fm-train] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
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


def kernels(packed: np.ndarray, rows: int = 1024, cols: int = 4096) -> dict[str, tuple[float, bool]]:
    """(seconds per million pattern pairs, exact?) of each kernel on a rows x cols block,
    best of 3; exact: every distance equals popcount(a xor b)."""
    a, b = packed[:rows], packed[:cols]
    want = _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(2, dtype=np.int64)
    bits = np.unpackbits(packed[:max(rows, cols)], axis=1)
    signs = torch.from_numpy(bits.astype(np.int8) * 2 - 1)
    f32, b16 = torch.from_numpy(bits).float(), torch.from_numpy(bits).bfloat16()
    ones = f32.sum(1)
    nbits = bits.shape[1]
    words = [np.ascontiguousarray(np.pad(m, ((0, 0), (0, -m.shape[1] % 8)))).view(np.uint64) for m in (a, b)]
    runs = {
        "int8 GEMM (+1/-1, int32 out)": lambda: (nbits - torch._int_mm(signs[:rows], signs[:cols].T)) // 2,
        "fp32 GEMM (before)": lambda: (f32[:rows] @ f32[:cols].T).mul_(-2).add_(ones[:cols]).add_(ones[:rows, None]),
        "bf16 GEMM (bf16 out)": lambda: (b16[:rows] @ b16[:cols].T).float().mul_(-2).add_(ones[:cols]).add_(ones[:rows, None]),
        "np.bitwise_count": lambda: np.bitwise_count(words[0][:, None, :] ^ words[1][None, :, :]).sum(2),
        "byte table": lambda: _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(2),
    }
    out = {}
    for name, fn in runs.items():
        seconds = min(timed(fn) for _ in range(3))
        got = np.asarray(fn(), dtype=np.int64)
        out[name] = (seconds / (rows * cols / 1e6), bool((got == want).all()))
    return out


def bench(name: str, packed: np.ndarray, classes_of: np.ndarray, device: str, repeat: int) -> dict:
    """Best of `repeat` for k = 0 and k = 5, with the 1-minute load average before each (the
    machine may be shared: the load says how far to trust a cell)."""
    out = {"data": name, "device": device, "patterns": len(packed), "bits": packed.shape[1] * 8}
    for key, k in (("distances", 0), ("distances_knn5", 5)):
        load = os.getloadavg()[0]
        seconds = min(timed(lambda: pattern_neighbours(packed, classes_of, k=k, device=device)) for _ in range(repeat))
        out[key] = f"{seconds:.2f} (load {load:.1f})"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=60_000)
    ap.add_argument("--bits", type=int, default=300)
    ap.add_argument("--store", default=None, help="A store holding --run (a copy: it is only read).")
    ap.add_argument("--run", default="fm-train")
    ap.add_argument("--repeat", type=int, default=2, help="Best of this many runs per cell.")
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
    for name, p, _ in inputs:
        print(f"{'kernel, ' + name + ' (1024 x 4096)':<44} {'ms / M pairs':>12} exact")
        for kernel, (seconds, exact) in kernels(p).items():
            print(f"{kernel:<44} {seconds * 1e3:>12.3f} {exact}")
    rows = [bench(name, p, c, d, args.repeat) for name, p, c in inputs for d in devices]
    print(f"{'data':<20} {'device':<6} {'patterns':>8} {'bits':>5} {'distances s':>20} {'+ k-NN (k=5) s':>20}")
    for r in rows:
        print(f"{r['data']:<20} {r['device']:<6} {r['patterns']:>8} {r['bits']:>5} {r['distances']:>20} "
              f"{r['distances_knn5']:>20}")


if __name__ == "__main__":
    main()
