"""`apd train`: MLPs or a LeNet-5 conv net, with optional fixed random pruning, snapshots,
forgetting tracking, and per-epoch pattern counts stored as `Epoch` nodes of a run.

Each epoch's minibatch predictions (before the update) fill one row of the correctness
matrix; forgetting counts at a snapshot come from the rows so far. Snapshots are saved
next to `out` as `<stem>@e<epoch><suffix>`, the naming `apd ingest` runs reuse (`run@e50`).
"""
from __future__ import annotations

import math
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from loaders.datasets import load_dataset, split_provenance
from loaders.forgetting import forgetting_events
from loaders.epochs import EpochCounter
from loaders.memory import check_fits
from loaders.models import ACTIVATIONS, ARCHS, apply_masks, arch_string, build_model, file_hash, save_checkpoint
from toolkit.device import resolve_device
from toolkit.errors import ApdError
from toolkit.paths import writable_path

OPTIMIZERS = {"adam": 1e-3, "sgd": 0.1}  # name -> default learning rate
INITS = ("default", "kaiming", "xavier")  # default: torch's own initialisation of each module
_RUN_NAME = re.compile(r"[A-Za-z0-9_.@+-]+")


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
    arch: str = "mlp",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    init: str = "default",
    device: str = "auto",
    record_every: int = 0,
    record_split: str = "train",
    run: str | None = None,
    store=None,
    wait: float = 0.0,
) -> dict:
    """Train on `dataset`'s train split, save `out` (and snapshots); returns a summary dict.

    With `record_every` N, distinct patterns per layer (and loss, accuracy) over
    `record_split` are counted at epoch 0 and every N epochs and stored as run `run`'s
    Epoch nodes in `store` (replacing that run's earlier Epoch nodes), waiting up to `wait`
    seconds for another process's lock on it.
    """
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
    if arch not in ARCHS:
        raise ApdError(f"unknown architecture {arch!r}: use {', '.join(ARCHS)}")
    if init not in INITS:
        raise ApdError(f"unknown --init {init!r}: use {', '.join(INITS)}")
    if not (momentum >= 0 and weight_decay >= 0 and math.isfinite(momentum) and math.isfinite(weight_decay)):
        raise ApdError(f"--momentum and --weight-decay must be finite and >= 0 (got {momentum}, {weight_decay})")
    if momentum and optimizer != "sgd":
        raise ApdError("--momentum applies to --optimizer sgd only")
    if record_every < 0:
        raise ApdError(f"--record-every must be >= 0 (got {record_every})")
    if record_split not in ("train", "test"):
        raise ApdError(f"--record-split must be train or test (got {record_split!r})")
    if bool(record_every) != (run is not None):
        raise ApdError("--record-every N and --run NAME go together: the counts are stored as the run's Epoch nodes")
    if run is not None and not _RUN_NAME.fullmatch(run):
        raise ApdError(f"run name {run!r} may only hold letters, digits and . _ @ + -")
    if record_every:
        from toolkit.store import store_location

        where = store_location(store)
        if "://" not in where:  # a store path that cannot be written fails now, not after training
            writable_path(where, "--store")
        _check_epoch_run(store, run, out, wait)
    dev = resolve_device(device)
    lr = OPTIMIZERS[optimizer] if lr is None else lr
    if not (math.isfinite(lr) and lr > 0):  # torch's own ValueError would surface as a traceback
        raise ApdError(f"--lr must be a positive number (got {lr})")
    writable_path(out, "--out")  # snapshots go beside it

    train_ds = load_dataset(dataset, "train", data_dir)
    test_ds = load_dataset(dataset, "test", data_dir)
    x, y = torch.from_numpy(train_ds.x).to(dev), torch.from_numpy(train_ds.y).to(dev)
    xt, yt = torch.from_numpy(test_ds.x).to(dev), torch.from_numpy(test_ds.y).to(dev)
    classes = max(train_ds.classes, test_ds.classes)

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    kind = arch
    arch = {
        "kind": kind,
        "in_dim": train_ds.features,
        "hidden": hidden,
        "out_dim": classes,
        "activation": activation,
        "negative_slope": 0.01,
        "density": float(density),
    }
    if kind == "lenet5":
        arch["hidden"] = []
    check_fits(arch, arch_string(arch), batch_size, optimizer, momentum, epochs, len(train_ds), dev)
    model = build_model(arch)
    _initialise(model, init)
    model = model.to(dev)
    masks = {k: v.to(dev) for k, v in _random_masks(model, density, seed).items()}
    apply_masks(model, masks)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    counter = None
    if record_every:
        xs, ys = (x, y) if record_split == "train" else (xt, yt)
        counter = EpochCounter(model, xs, ys, record_split)
    record_seconds = 0.0

    n = len(y)
    correct = torch.zeros(epochs, n, dtype=torch.bool, device=dev)
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
        "momentum": float(momentum),
        "weight_decay": float(weight_decay),
        "init": init,
        "batch_size": batch_size,
    }
    saved = []
    if counter is not None:
        t0 = time.perf_counter()
        counter(0)
        record_seconds += time.perf_counter() - t0
    bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=not progress)
    t_start = time.perf_counter()
    for epoch in bar:
        model.train()
        total = 0.0
        for idx in torch.randperm(n, generator=gen).to(dev).split(batch_size):
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
        if counter is not None and epoch % record_every == 0:
            t0 = time.perf_counter()
            counter(epoch)
            record_seconds += time.perf_counter() - t0
        if epoch in snapshots or epoch == epochs:
            events, never = forgetting_events(correct[:epoch].cpu())
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
    seconds = time.perf_counter() - t_start
    result = {
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
        "history": history,
        "seconds": {"total": seconds, "recording": record_seconds},
    }
    if counter is not None:
        from toolkit.store import open_store

        record_ds = train_ds if record_split == "train" else test_ds
        accuracy = result["train_accuracy"] if record_split == "train" else result["test_accuracy"]
        with open_store(store, wait=wait) as s:
            nodes, replace = {"Epoch": counter.frame(run)}, ["Epoch"]
            if _history_only(s, run):  # an ingested run keeps its own Run node
                nodes["Run"] = history_run_node(run, out, arch, record_ds, epochs, counter, accuracy)
                replace.append("Run")
            s.write(run, nodes=nodes, replace=replace)
            result["store"] = s.location
        result["run"] = run
        result["epochs_recorded"] = counter.rows
    return result


def history_run_node(run: str, out: str | os.PathLike, arch: dict, data, epochs: int, counter: EpochCounter,
                     accuracy: float) -> pd.DataFrame:
    """The Run node of a run that holds only training history (Epoch nodes, no instances), so
    that `apd runs` lists it, `apd store check` knows it and the analytics that need
    instances say so; `apd ingest MODEL --run NAME` later replaces it with an ingested one."""
    official, note = split_provenance(data.name, data.meta)
    return pd.DataFrame([{
        "uid": run, "run": run, "model": str(Path(out).resolve()), "model_hash": file_hash(out), "factory": "",
        "dataset": data.name, "split": data.split, "epoch": epochs, "arch": arch_string(arch),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "instances": 0,
        "layers": len(counter.ops), "accuracy": float(accuracy), "history_only": True,
        "official_split": official, "split_note": note,
    }])


def _history_only(store, run: str) -> bool:
    """Whether `run` has no Run node yet, or only a training-history one."""
    runs = store.query("runs")
    held = runs[runs["run"] == run]
    return held.empty or bool(held["history_only"].eq(True).iloc[0])


def _check_epoch_run(store: str | None, run: str, out: str | os.PathLike, wait: float) -> None:
    """Epoch nodes describe one training: refuse a --run that already names an ingested run of
    another model (its Epoch rows would be read as that model's history). A run holding only
    an earlier training's history is replaced, as re-training replaces its Epoch nodes."""
    from toolkit.store import open_store, store_location

    where = store_location(store)
    if "://" not in where and not Path(where).exists():
        return
    with open_store(store, read_only=True, wait=wait) as s:
        runs = s.runs()
    held = runs.loc[(runs["run"] == run) & ~runs["history_only"].eq(True), "model"] \
        if len(runs) else []
    model = str(Path(out).resolve())
    if len(held) and held.iloc[0] != model:
        raise ApdError(f"run {run!r} in the store holds model {held.iloc[0]}, not {model}: "
                       "choose another --run, or `apd drop --run` it first")


def _initialise(model: nn.Module, init: str) -> None:
    """Re-initialise Linear / Conv weights (Kaiming-normal for ReLU fan-in, or Xavier-uniform), biases 0."""
    if init == "default":
        return
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                if init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    m.bias.zero_()


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
    hits = sum(int((model(x[i : i + 8192]).argmax(1) == y[i : i + 8192]).sum()) for i in range(0, len(y), 8192))
    return hits / len(y)
