"""Peak memory of ingesting a large synthetic stream, printed as a table.

The data is a float32 memmap on disk (never loaded whole), recorded through a small ReLU MLP
in device batches; the graph (patterns, NEXT, PREDICTS) is built once and the instances are
written chunk by chunk (loaders.ingest.CHUNK_INSTANCES), so the peak is set by the recording
(ids [n, layers]) and one chunk's frames, not by the number of instances times their strings.

    python bench/bench_stream.py [--instances 1000000] [--features 64] [--device auto]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from loaders.ingest import build_frames, write_frames
from loaders.models import build_mlp
from loaders.record import record
from toolkit.device import resolve_device
from toolkit.store import open_store
from toolkit.store.guard import store_bytes


def peak_mb() -> float:
    """Peak RSS of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=4096)
    args = ap.parse_args()
    n, d = args.instances, args.features
    torch.manual_seed(0)
    device = resolve_device(args.device)
    model = build_mlp(d, [32, 32, 32], 10).eval()
    rows = []

    def step(name: str, t0: float, note: str = "") -> None:
        rows.append((name, f"{time.perf_counter() - t0:.1f} s", f"{peak_mb():,.0f} MB", note))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        x = np.lib.format.open_memmap(Path(tmp) / "x.npy", mode="w+", dtype=np.float32, shape=(n, d))
        rng = np.random.default_rng(0)
        for s in range(0, n, 100_000):
            x[s : s + 100_000] = rng.random((min(100_000, n - s), d), dtype=np.float32)
        x.flush()
        y = rng.integers(0, 10, n)
        step("synthetic data (memmap on disk)", t0, f"{n:,} x {d} float32")

        t0 = time.perf_counter()
        rec = record(model, x, batch_size=args.batch_size, device=str(device))
        step("record (device batches)", t0, "patterns per layer " + " / ".join(str(r.patterns) for r in rec.layers))

        t0 = time.perf_counter()
        frames = build_frames("stream", rec, y, np.zeros(n, np.int64), np.zeros(n, bool), instances=False)
        frames["nodes"]["Run"] = pd.DataFrame([{"uid": "stream", "run": "stream", "instances": n}])
        step("graph frames (patterns, NEXT, PREDICTS)", t0)

        t0 = time.perf_counter()
        path = str(Path(tmp) / "stream.lbug")
        with open_store(path) as store:
            write_frames(store, "stream", frames)
            stored = int(store.counts("stream")["Instance"])
        step("store write (instances chunk by chunk)", t0, f"{stored:,} instances, store {store_bytes(path) / 1e6:,.0f} MB")

    print(f"device {device}; peak RSS is cumulative (the process's maximum so far)")
    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'time':>8}  {'peak RSS':>10}  note")
    for name, t, mb, note in rows:
        print(f"{name:<{width}}  {t:>8}  {mb:>10}  {note}")


if __name__ == "__main__":
    main()
