"""The trained stores the tests share (conftest.py builds each once per session), and the copy
a test takes before it writes: training is the slow part of every fixture that needs a real
net, so no test file trains its own copy of the same one."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

from tests.cli import Apd


class Built(NamedTuple):
    """A LadybugDB store and the checkpoint its runs were ingested from (the Run nodes name it)."""

    store: str
    model: str


def copy_store(store: str | Path, folder: Path) -> str:
    """Copy a LadybugDB store with its side files into `folder` under its own name; returns
    the copy's path. The model stays where the Run nodes point: copy it too before changing it."""
    store = Path(store)
    for f in store.parent.glob(store.name + "*"):
        (shutil.copytree if f.is_dir() else shutil.copy2)(f, folder / f.name)
    return str(folder / store.name)


def train_and_ingest(root: Path, hidden: tuple[int, ...], epochs: int, activation: str) -> Built:
    """An MLP with `hidden` layers of `activation` trained `epochs` epochs on digits (seed 0)
    as `m.pt`, and `s.lbug` holding its test split as run `d`, ingested by the CLI."""
    from loaders.train import train

    model = root / "m.pt"
    train("digits", list(hidden), epochs=epochs, out=model, activation=activation, progress=False)
    store = str(root / "s.lbug")
    Apd(store).json("ingest", str(model), "--dataset", "digits", "--split", "test", "--run", "d", "--device", "cpu")
    return Built(store, str(model))
