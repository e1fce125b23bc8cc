"""`apd mbh-sweep`: specialization against network size, the thesis' headline experiment shape.

MLPs with hidden widths (3n, n) are trained on a dataset's train split, their test split is
ingested, and s at one coverage is measured on the same planes for every network (the first
network's random planes, reused by the others through `--planes-from`). With `pruned`, each
larger network is also trained with fixed random masks (`apd train --density`) keeping the
smallest network's hidden-parameter budget d*3n + 3n*n (784*3n + 3n*n on Fashion-MNIST).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from loaders.datasets import load_dataset
from loaders.ingest import ingest
from loaders.train import train
from toolkit.errors import ApdError
from toolkit.mbh.runs import run_mbh
from toolkit.store import Store


def hidden_budget(n: int, inputs: int = 784) -> int:
    """Weights of the two hidden layers of the (3n, n) MLP."""
    return inputs * 3 * n + 3 * n * n


def sweep(
    store: Store,
    sizes: Sequence[int],
    epochs: int = 10,
    planes: int = 10,
    coverage: float = 0.8,
    pruned: bool = False,
    dataset: str = "fashion-mnist",
    out_dir: str | os.PathLike = "mbh-sweep",
    seed: int = 0,
    device: str = "auto",
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per network: hidden neurons, density, test accuracy, mean/min/max s."""
    sizes = sorted(set(int(n) for n in sizes))
    if not sizes or sizes[0] < 1:
        raise ApdError(f"--sizes takes positive integers, got {list(sizes)}")
    if not 0.0 < coverage <= 1.0:
        raise ApdError(f"--coverage must lie in (0, 1], got {coverage}")
    inputs = load_dataset(dataset, "test", data_dir).features
    nets = [(n, 1.0) for n in sizes]
    if pruned:
        nets += [(n, hidden_budget(sizes[0], inputs) / hidden_budget(n, inputs)) for n in sizes[1:]]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, first = [], None
    for n, density in nets:
        name = f"{3 * n}-{n}" + ("" if density == 1.0 else f"-d{density:.4f}")
        model = out / f"{dataset}-{name}.pt"
        run = f"sweep-{name}"
        train(dataset, [3 * n, n], epochs, model, density=density, seed=seed, data_dir=data_dir, progress=progress)
        info = ingest(model, dataset, "test", run, store, device, data_dir=data_dir, progress=progress)
        res = run_mbh(store, run, [coverage], planes, planes_from=first, seed=seed, device=device,
                      data_dir=data_dir, progress=progress)
        first = first or run
        key = next(iter(res["s"]))
        per_plane = [p["s_mean"][key] for p in res["planes"]]
        rows.append({
            "net": name, "hidden_neurons": 4 * n, "density": density,
            "hidden_params": round(hidden_budget(n, inputs) * density), "accuracy": info["accuracy"],
            "s": res["s"][key], "s_min": min(per_plane), "s_max": max(per_plane),
            "regions": sum(p["regions"] for p in res["planes"]) / len(res["planes"]), "run": run,
        })
    return pd.DataFrame(rows)
