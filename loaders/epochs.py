"""Per-epoch pattern counts during training: the evolution curves without snapshot files.

Every N epochs the model's traced graph (with packing nodes, as in recording) runs over
one split on the training device; distinct patterns per layer are counted there with
`torch.unique`, together with the mean loss and the accuracy. Only the counts leave the
device. The rows become `Epoch` nodes of the run: one per (epoch, layer).
"""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import fx, nn

from loaders.record import recorder


class EpochCounter:
    """Counts patterns of `model` (whose parameters keep changing) over fixed data on its device."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, split: str, batch_size: int = 8192):
        self.model = model
        self.graph: fx.GraphModule
        self.graph, self.ops = recorder(model)  # shares the model's parameters: built once
        self.x, self.y, self.split, self.batch_size = x, y, split, batch_size
        self.rows: list[dict] = []

    @torch.no_grad()
    def __call__(self, epoch: int) -> list[dict]:
        """Count now, as epoch `epoch`; returns (and keeps) one row per layer."""
        was_training = self.model.training
        self.model.eval()
        packed: list[list[torch.Tensor]] = [[] for _ in self.ops]
        loss = torch.zeros((), dtype=torch.float64, device=self.x.device)
        correct = torch.zeros((), dtype=torch.long, device=self.x.device)
        for b0 in range(0, len(self.x), self.batch_size):
            xb, yb = self.x[b0 : b0 + self.batch_size], self.y[b0 : b0 + self.batch_size]
            out, *bits = self.graph(xb)
            loss += F.cross_entropy(out, yb, reduction="sum").double()
            correct += (out.argmax(1) == yb).sum()
            for i, b in enumerate(bits):
                packed[i].append(b)
        counts = [_distinct(torch.cat(p)) for p in packed]
        self.model.train(was_training)
        n = len(self.x)
        rows = [{"epoch": epoch, "layer": op.layer, "patterns": c, "split": self.split, "instances": n,
                 "loss": float(loss) / n, "accuracy": int(correct) / n} for op, c in zip(self.ops, counts)]
        self.rows.extend(rows)
        return rows

    def frame(self, run: str) -> pd.DataFrame:
        """The Epoch node frame of run `run`."""
        df = pd.DataFrame(self.rows, columns=["epoch", "layer", "patterns", "split", "instances", "loss", "accuracy"])
        uid = run + ":epoch:" + df["epoch"].astype(str) + ":" + df["layer"].astype(str)
        return df.assign(uid=uid, run=run)


def _distinct(packed: torch.Tensor) -> int:
    """Distinct rows of packed patterns (as int64 words), found on their device."""
    words = packed.view(torch.int64)
    if words.shape[1] == 1:
        return int(torch.unique(words[:, 0]).numel())
    return int(torch.unique(words, dim=0).shape[0])
