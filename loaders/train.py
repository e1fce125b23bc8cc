"""`apd train`: MLPs with optional fixed random pruning, snapshots, and forgetting tracking.

Each epoch's minibatch predictions (before the update) fill one row of the correctness
matrix; forgetting counts at a snapshot come from the rows so far. Snapshots are saved
next to `out` as `<stem>@e<epoch><suffix>`, the naming `apd ingest` runs reuse (`run@e50`).
"""
from __future__ import annotations

import math

import os
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from loaders.datasets import load_dataset
from loaders.forgetting import forgetting_events
from loaders.models import ACTIVATIONS, apply_masks, arch_string, build_mlp, save_checkpoint
from toolkit.errors import ApdError
from toolkit.paths import writable_path

OPTIMIZERS = {"adam": 1e-3, "sgd": 0.1}  # name -> default learning rate


def snapshot_path(out: str | os.PathLike, epoch: int) -> Path:
    """`model.pt` -> `model@e50.pt`."""
    out = Path(out)
    return out.with_name(f"{out.stem}@e{epoch}{out.suffix}")


def train(
    dataset: str = "digits",
    hidden: list[int] = (32, 32, 32),
    epochs: int = 30,
    out: str | os.PathLike = "model.pt",
    snapshots: list[int] = (),
    activation: str = "relu",
    density: float = 1.0,
    optimizer: str = "adam",
    lr: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Train on `dataset`'s train split, save `out` (and snapshots); returns a summary dict."""
    hidden = list(hidden)
    snapshots = sorted(set(snapshots))
    if epochs < 1:
        raise ApdError(f"--epochs must be at least 1 (got {epochs})")
    if snapshots and (snapshots[0] < 1 or snapshots[-1] > epochs):
        raise ApdError(f"snapshot epochs must lie in 1..{epochs} (got {snapshots})")
    if not 0 < density <= 1:
        raise ApdError(f"--density must be in (0, 1] (got {density})")
    if optimizer not in OPTIMIZERS:
        raise ApdError(f"unknown optimizer {optimizer!r}: use {', '.join(OPTIMIZERS)}")
    if activation not in ACTIVATIONS:
        raise ApdError(f"unknown activation {activation!r}: use {', '.join(ACTIVATIONS)}")
    if batch_size < 1:
        raise ApdError(f"--batch-size must be positive (got {batch_size})")
    lr = OPTIMIZERS[optimizer] if lr is None else lr
    if not (math.isfinite(lr) and lr > 0):  # torch's own ValueError would surface as a traceback
        raise ApdError(f"--lr must be a positive number (got {lr})")
    writable_path(out, "--out")  # snapshots go beside it

    train_ds = load_dataset(dataset, "train", data_dir)
    test_ds = load_dataset(dataset, "test", data_dir)
    x, y = torch.from_numpy(train_ds.x), torch.from_numpy(train_ds.y)
    xt, yt = torch.from_numpy(test_ds.x), torch.from_numpy(test_ds.y)
    classes = max(train_ds.classes, test_ds.classes)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    arch = {
        "in_dim": train_ds.features,
        "hidden": hidden,
        "out_dim": classes,
        "activation": activation,
        "negative_slope": 0.01,
        "density": float(density),
    }
    model = build_mlp(arch["in_dim"], hidden, classes, activation, arch["negative_slope"])
    masks = _random_masks(model, density, seed)
    apply_masks(model, masks)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    n = len(y)
    correct = torch.zeros(epochs, n, dtype=torch.bool)
    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "test_acc": []}
    base = {
        "dataset": train_ds.name,
        "split": "train",
        "instances": n,
        "split_meta": dict(train_ds.meta),
        "seed": seed,
        "epochs": epochs,
        "optimizer": optimizer,
        "lr": float(lr),
        "batch_size": batch_size,
    }
    saved = []
    bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        total = 0.0
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            correct[epoch - 1, idx] = logits.argmax(1) == y[idx]
            opt.zero_grad()
            loss.backward()
            opt.step()
            apply_masks(model, masks)
            total += loss.item() * len(idx)
        history["loss"].append(total / n)
        history["train_acc"].append(float(correct[epoch - 1].float().mean()))
        history["test_acc"].append(_accuracy(model, xt, yt))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", acc=f"{history['train_acc'][-1]:.3f}",
                        test=f"{history['test_acc'][-1]:.3f}")
        if epoch in snapshots or epoch == epochs:
            events, never = forgetting_events(correct[:epoch])
            record = {
                **base,
                "epoch": epoch,
                "history": {k: list(v) for k, v in history.items()},
                "forgetting": torch.from_numpy(events),
                "never_learned": torch.from_numpy(never),
            }
            path = Path(out) if epoch == epochs else snapshot_path(out, epoch)
            save_checkpoint(path, model, arch, masks, record)
            saved.append({"epoch": epoch, "path": str(path)})
    return {
        "model": str(out),
        "arch": arch_string(arch),
        "dataset": train_ds.name,
        "train_instances": n,
        "test_instances": len(yt),
        "epochs": epochs,
        "loss": history["loss"][-1],
        "train_accuracy": _accuracy(model, x, y),
        "test_accuracy": history["test_acc"][-1],
        "forgetting_events": int(events.sum()),
        "never_learned": int(never.sum()),
        "checkpoints": saved,
    }


MASK_STREAM = 0x6D61736B  # "mask": the masks' seed offset from the training seed


def _random_masks(model: nn.Module, density: float, seed: int) -> dict[str, torch.Tensor]:
    """A fixed random keep-mask of share `density` per Linear weight (none when dense).

    The masks draw from their own stream: drawn from the stream that initialised the
    weights, `rand < density` would keep exactly the weights drawn below `density`, i.e.
    only negative ones, and every ReLU would start dead.
    """
    if density >= 1:
        return {}
    gen = torch.Generator().manual_seed(seed + MASK_STREAM)
    return {
        f"{name}.weight": torch.rand(m.weight.shape, generator=gen) < density
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear)
    }


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    if not len(y):
        return float("nan")
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())
