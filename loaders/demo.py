"""`apd demo`: the whole loaders pipeline on bundled data, in seconds on a laptop CPU.

Trains a 64-32-32-32-10 ReLU MLP on scikit-learn's digits, ingests its train and test
splits as runs `digits-train` and `digits-test`, and reads the APD back from the store.
"""
from __future__ import annotations

import os
from pathlib import Path

from loaders.ingest import ingest, summary
from loaders.train import train
from toolkit.paths import writable_path
from toolkit.store import open_store, store_location

RUNS = ("digits-train", "digits-test")


def demo_model_path(store: str | None = None) -> Path:
    """`apd-demo.pt` next to an embedded store file; in the current directory for a Neo4j URI."""
    where = store_location(store)
    return Path("apd-demo.pt") if "://" in where else Path(where).resolve().parent / "apd-demo.pt"


def demo(
    store: str | None = None,
    model: str | os.PathLike | None = None,
    epochs: int = 30,
    seed: int = 0,
    progress: bool = True,
    wait: float = 0.0,
) -> dict:
    """Train, ingest both splits, and summarise; returns the summary dict that the CLI prints.

    The store is opened (and locked) first, so a busy store fails before training.
    """
    model = Path(model) if model else demo_model_path(store)
    if "://" not in store_location(store):
        writable_path(store_location(store), "--store")
    writable_path(model, "--model")
    with open_store(store, wait=wait) as s:
        trained = train("digits", [32, 32, 32], epochs=epochs, out=model, seed=seed, progress=progress)
        runs = []
        for run, split in zip(RUNS, ("train", "test")):
            done = ingest(model, "digits", split, run=run, store=s, device="cpu")
            runs.append({**summary(s, run), "split": split, "instances": done["instances"], "accuracy": done["accuracy"]})
        location = s.location
    return {
        "model": str(model),
        "store": location,
        "arch": trained["arch"],
        "epochs": epochs,
        "train_accuracy": trained["train_accuracy"],
        "test_accuracy": trained["test_accuracy"],
        "runs": runs,
    }
