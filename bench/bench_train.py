"""Bench: what `apd train --record-every 1` costs over plain training (target: under 20%).

Trains the same seeded MLP twice on the same data, without and with per-epoch pattern
counts (patterns per layer, loss and accuracy over the whole train split, at epoch 0 and
after every epoch), and prints both wall times, the time spent counting, and the overhead.
The counts are written to a throw-away store.

    python bench/bench_train.py                                # MNIST, 784-40-40-40-10, 10 epochs
    python bench/bench_train.py --dataset digits --epochs 30 --device cuda
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from loaders.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--hidden", default="40,40,40")
    ap.add_argument("--arch", default="mlp", choices=["mlp", "lenet5"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="alternating runs of each; the best time is reported")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hidden = [int(h) for h in args.hidden.split(",")]
    common = dict(dataset=args.dataset, hidden=hidden, epochs=args.epochs, batch_size=args.batch_size,
                  arch=args.arch, device=args.device, progress=False)
    t_plain = t_rec = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            plain = train(out=Path(tmp) / "plain.pt", **common)
            t_plain = min(t_plain, time.perf_counter() - t0)
            t0 = time.perf_counter()
            rec = train(out=Path(tmp) / "rec.pt", record_every=1, run="bench", store=str(Path(tmp) / "s.lbug"),
                        **common)
            t_rec = min(t_rec, time.perf_counter() - t0)
    assert plain["loss"] == rec["loss"], "recording must not change training"
    label = f"{args.arch} {args.hidden if args.arch == 'mlp' else ''} on {args.dataset}, {args.epochs} epochs, {args.device}"
    print(label)
    print(f"{'plain s':>9} {'recorded s':>11} {'counting s':>11} {'overhead':>9} {'counting share':>15}")
    print(f"{t_plain:>9.2f} {t_rec:>11.2f} {rec['seconds']['recording']:>11.2f} "
          f"{(t_rec - t_plain) / t_plain:>8.1%} {rec['seconds']['recording'] / rec['seconds']['total']:>15.1%}")
    last = [r for r in rec["epochs_recorded"] if r["epoch"] == args.epochs]
    print("patterns per layer at the last epoch:", " / ".join(str(r["patterns"]) for r in last))


if __name__ == "__main__":
    main()
