"""Bench: `apd mbh` seconds per plane for a 784-300-100-10 MLP, at init and trained, and the
projected time of the thesis' sweep (140 networks x 10 planes x 8 coverages, init and
trained; the thesis took 21.6 h on 16 CPUs).

The trained net comes from `apd train` on Fashion-MNIST, the init net is the same
architecture saved untrained as an apd checkpoint; their test split is ingested into a
temporary store. Per plane = median over P planes of what `run_mbh` does per plane (exact
partition, then every class and all 8 coverages tested and summed at once). Fixed cost per
network = a 1-plane `run_mbh` on a freshly ingested run, as in a sweep, minus one plane
(graph read, model load, results written; a re-run would also delete the previous results,
and LadybugDB's delete of ~350k COVERS edges adds seconds).

Projection, worst case: every one of the 140 networks as large as 784-300-100 (the
thesis' largest), so 140 x 10 planes x (init + trained) partitions plus 280 fixed costs.
Coverages cost nothing extra: one partition serves them all.

    python bench/bench_mbh.py                    # CPU (and CUDA when available)
    python bench/bench_mbh.py --planes 3 --epochs 1
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from loaders.ingest import ingest
from loaders.models import build_mlp, save_checkpoint
from loaders.train import train
from toolkit.mbh.blanket import blanket_area, blanket_mask
from toolkit.mbh.pattern import maximal_patterns
from toolkit.mbh.planes import random_planes
from toolkit.mbh.runs import last_layer_states, run_mbh
from toolkit.regions.runs import plane_partition, run_source
from toolkit.store import open_store

COVERAGES = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]


def untrained(path: Path, hidden: list[int], seed: int) -> None:
    """A checkpoint of the net at torch's default init (what the thesis calls `init`)."""
    torch.manual_seed(seed)
    arch = {"in_dim": 784, "hidden": hidden, "out_dim": 10, "activation": "relu", "negative_slope": 0.01,
            "density": 1.0}
    save_checkpoint(path, build_mlp(784, hidden, 10), arch, {}, {"epoch": 0})


def timed(store, model: Path, dataset: str, run: str, planes: int, device: str) -> float:
    """run_mbh on a freshly ingested run (as in a sweep: nothing to replace)."""
    ingest(model, dataset, "test", run, store, device="cpu")
    t0 = time.perf_counter()
    run_mbh(store, run, COVERAGES, planes=planes, seed=1, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def plane_seconds(store, run: str, planes: int, device: str) -> float:
    """Median seconds of the per-plane work of run_mbh: exact partition, then every class
    and coverage tested and summed at once."""
    src = run_source(store, run)
    layer = last_layer_states(store, run, src.model, src.data.x)
    mp = maximal_patterns(layer.states[layer.rows], layer.labels, sorted(set(layer.labels)), COVERAGES,
                          weights=layer.counts)
    required = torch.as_tensor(mp.required.reshape(-1, mp.required.shape[2]))
    times = []
    for spec in random_planes(src.data, planes, seed=1):
        t0 = time.perf_counter()
        part = plane_partition(src.model, spec.plane, device)
        blanket_area(part.area, blanket_mask(part.layer_pattern(len(part.widths) - 1), required))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", default="300,100")
    ap.add_argument("--planes", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2, help="Epochs for the trained net.")
    ap.add_argument("--dataset", default="fashion-mnist")
    args = ap.parse_args()
    hidden = [int(h) for h in args.hidden.split(",")]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        untrained(root / "init.pt", hidden, 0)
        train(args.dataset, hidden, args.epochs, root / "trained.pt", progress=False)
        with open_store(str(root / "s.lbug")) as store:
            for name in ("init", "trained"):
                model = root / f"{name}.pt"
                for dev in devices:
                    timed(store, model, args.dataset, f"{name}-{dev}-warm", 1, dev)  # first partition, caches
                    one = timed(store, model, args.dataset, f"{name}-{dev}-1", 1, dev)
                    per_plane = plane_seconds(store, f"{name}-{dev}-1", args.planes, dev)
                    rows.append((name, dev, per_plane, one - per_plane))
    arch = "-".join(map(str, [784, *hidden, 10]))
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"{arch} on {args.dataset} test split, {args.planes} planes, {len(COVERAGES)} coverages, "
          f"OMP_NUM_THREADS={threads}")
    print(f"{'net':8} {'device':6} {'s/plane':>8} {'fixed s/net':>11}")
    for name, dev, per, fixed in rows:
        print(f"{name:8} {dev:6} {per:8.3f} {fixed:11.3f}")
    for dev in devices:
        per = {name: p for name, d, p, _ in rows if d == dev}
        fixed = {name: f for name, d, _, f in rows if d == dev}
        total = 140 * 10 * (per["init"] + per["trained"]) + 140 * (fixed["init"] + fixed["trained"])
        print(f"projected thesis sweep on {dev} (140 nets x 10 planes x 8 coverages, init + trained, "
              f"all nets {arch}): {total / 3600:.2f} h ({total / 60:.1f} min); thesis: 21.6 h on 16 CPUs")


if __name__ == "__main__":
    main()
