"""Pattern recording: packing nodes inserted into the model's fx graph, bits packed on the device.

The model is traced once (toolkit.piecewise); before every pattern-making node a packing
module is inserted that reads its input (the pre-activation z) and packs it at once, and
the graph returns the packed rows next to the logits: no hooks to forget to remove.
ReLU / LeakyReLU give one bit per neuron, 1 iff z > 0 strictly; Hardtanh gives two bits
per neuron, (z > min_val, z > max_val), so its three states low / linear / high read
00 / 10 / 11; a max-pool gives one bit per input element, 1 iff its window takes it (the
argmax is part of the pattern). Bits are packed most significant first (numpy `packbits`
order), rows padded to whole 64-bit words so that a pattern is a short row of int64 for
`torch.unique`.

Distinct patterns are found per chunk on the device and merged into one table per layer on
the host; instance -> pattern ids are stable across chunks, so nothing per instance runs in
Python and memory per instance is one id per layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from tqdm import tqdm

from toolkit.device import resolve_device
from toolkit.errors import ApdError, one_line
from toolkit.piecewise import PLOp, maxpool_selection, trace

_SHIFTS = torch.tensor([7, 6, 5, 4, 3, 2, 1, 0], dtype=torch.uint8)
_HEX = np.array([f"{i:02x}" for i in range(256)], dtype="S2")


@dataclass
class LayerRecord:
    """Distinct patterns of one hidden layer: packed rows uint8 [P, 8 * words]."""

    layer: int
    name: str
    kind: str
    neurons: int
    nbits: int
    rows: np.ndarray

    @property
    def patterns(self) -> int:
        return len(self.rows)

    def trimmed(self) -> np.ndarray:
        """Rows without the word padding: uint8 [P, ceil(nbits / 8)]."""
        return self.rows[:, : (self.nbits + 7) // 8]

    def bits(self) -> np.ndarray:
        """Each pattern's packed bits as a hex string (the `bits` property)."""
        return hex_rows(self.trimmed())

    def ones(self) -> np.ndarray:
        """Active neurons per pattern (Hardtanh: neurons in the linear state)."""
        states = unpack_states(self.trimmed(), self.neurons, self.kind)
        return (states == 1).sum(axis=1).astype(np.int64)

    def keys(self) -> np.ndarray:
        """Deterministic 16-hex-digit keys; a collision between distinct patterns is raised."""
        keys = pattern_keys(self.rows, self.nbits)
        if len(np.unique(keys)) != len(keys):
            raise ApdError(f"pattern key collision in layer {self.layer} ({self.name}): please report this model")
        return keys


@dataclass
class Recording:
    """Per instance: pattern id per layer (`ids` [n, L], rows of `layers[l].rows`) and prediction."""

    layers: list[LayerRecord]
    ids: np.ndarray
    pred: np.ndarray
    outputs: int


def pack(bits: torch.Tensor) -> torch.Tensor:
    """Pattern bits [B, ...] (bool) -> packed uint8 [B, 8 * words], on the bits' device."""
    bits = bits.reshape(len(bits), -1)
    bits = F.pad(bits.to(torch.uint8), (0, (-bits.shape[1]) % 64))
    return (bits.view(len(bits), -1, 8) << _SHIFTS.to(bits.device)).sum(dim=2, dtype=torch.uint8)


def pattern_bits(z: torch.Tensor, op: PLOp) -> torch.Tensor:
    """The pattern bits of one layer from its input z [B, ...] (bool [B, nbits])."""
    if op.kind == "maxpool":
        return maxpool_selection(z, op.module).reshape(len(z), -1)
    z = z.reshape(len(z), -1)
    if op.kind == "hardtanh":
        lo, hi = op.params["min_val"], op.params["max_val"]
        return torch.stack((z > lo, z > hi), dim=2).reshape(len(z), -1)
    return z > 0


class _Packer(nn.Module):
    """Inserted before a pattern-making node: packs its input's pattern bits."""

    def __init__(self, op: PLOp) -> None:
        super().__init__()
        self.op = op
        self.width = 0  # neurons: elements of the input for one instance (set by forward)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.width = z[0].numel()
        return pack(pattern_bits(z, self.op))


def recorder(model: nn.Module) -> tuple[fx.GraphModule, list[PLOp]]:
    """`model`'s graph with a packing node before every pattern-making node.

    The returned module computes (logits, packed layer 1, ..., packed layer L); it shares
    the model's parameters and leaves the model itself untouched.
    """
    traced = trace(model)
    gm, graph = traced.graph, traced.graph.graph
    packed = []
    for op in traced.ops:
        gm.add_submodule(f"apd_pack_{op.layer}", _Packer(op))
        with graph.inserting_before(op.node):
            packed.append(graph.call_module(f"apd_pack_{op.layer}", (op.node.args[0],)))
    out = next(n for n in graph.nodes if n.op == "output")
    out.args = ((out.args[0], *packed),)
    gm.recompile()
    return gm, traced.ops


@torch.no_grad()
def record(
    model: nn.Module,
    x: np.ndarray,
    batch_size: int = 4096,
    device: str = "auto",
    chunk: int = 262_144,
    progress: bool = False,
) -> Recording:
    """Forward `x` ([n, d], any array that slices, e.g. a memmap) in batches; collect patterns.

    The model is moved to `device` and put in eval mode.
    """
    dev = resolve_device(device)
    model = model.to(dev).eval()
    gm, layers = recorder(model)
    n, L = len(x), len(layers)
    if n == 0:
        raise ApdError("no instances to record: the split is empty")
    if batch_size < 1:
        raise ApdError(f"--batch-size must be positive (got {batch_size})")
    tables: list[np.ndarray | None] = [None] * L
    ids = np.empty((n, L), dtype=np.int64)
    pred = np.empty(n, dtype=np.int64)
    outputs = 0
    # shown only when recording takes more than a second; closed (and cleared) on errors too
    bar = tqdm(total=n, desc="record", unit="inst", disable=not progress, delay=1.0, leave=False)
    with bar:
        for c0 in range(0, n, chunk):
            c1 = min(n, c0 + chunk)
            packed: list[list[torch.Tensor]] = [[] for _ in layers]
            preds, finite = [], []
            for b0 in range(c0, c1, batch_size):
                b1 = min(c1, b0 + batch_size)
                xb = torch.from_numpy(np.ascontiguousarray(x[b0:b1], dtype=np.float32)).to(dev)
                out, *bits = _forward(gm, xb)
                for i, b in enumerate(bits):
                    packed[i].append(b)
                preds.append(out.argmax(dim=1))
                finite.append(torch.isfinite(out).all())
                outputs = out.shape[1]
                bar.update(b1 - b0)
            if not bool(torch.stack(finite).all()):
                raise ApdError("the model produced NaN or inf outputs: check its weights and inputs")
            pred[c0:c1] = torch.cat(preds).cpu().numpy()
            for i in range(L):
                tables[i], ids[c0:c1, i] = merge(tables[i], *_unique_rows_device(torch.cat(packed[i])))
    neurons = [gm.get_submodule(f"apd_pack_{op.layer}").width for op in layers]
    records = [
        LayerRecord(op.layer, op.name, op.kind, width, 2 * width if op.kind == "hardtanh" else width,
                    table.view(np.uint8).reshape(len(table), -1))
        for op, table, width in zip(layers, tables, neurons)
    ]
    return Recording(records, ids, pred, outputs)


def _forward(gm: fx.GraphModule, xb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    try:
        out, *packed = gm(xb)
    except RuntimeError as exc:
        raise ApdError(f"the model rejects inputs with {xb.shape[1]} features: {one_line(exc)}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ApdError("the model must return one tensor of logits [batch, classes]")
    return (out, *packed)


def _unique_rows_device(packed: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a chunk (as int64 words) with the inverse, found where the data lives."""
    words = packed.view(torch.int64)
    if words.shape[1] == 1:
        uniq, inv = torch.unique(words[:, 0], return_inverse=True)
        uniq = uniq[:, None]
    else:
        uniq, inv = torch.unique(words, dim=0, return_inverse=True)
    return uniq.cpu().numpy(), inv.cpu().numpy()


def unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique over the rows of an int64 [m, W] array, with the inverse."""
    if a.shape[1] == 1:
        uniq, inv = np.unique(a[:, 0], return_inverse=True)
        return uniq[:, None], inv.reshape(-1)
    a = np.ascontiguousarray(a)
    void = a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()
    _, first, inv = np.unique(void, return_index=True, return_inverse=True)
    return a[first], inv.reshape(-1)


def merge(table: np.ndarray | None, uniq: np.ndarray, inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add a chunk's distinct rows to a layer's table; returns (table, the chunk's stable ids).

    Known rows keep their ids; new rows are appended in sorted order.
    """
    if table is None:
        return uniq, inv
    both, pos = unique_rows(np.concatenate([table, uniq]))
    gid = np.full(len(both), -1, dtype=np.int64)
    gid[pos[: len(table)]] = np.arange(len(table))
    new = np.flatnonzero(gid < 0)
    gid[new] = len(table) + np.arange(len(new))
    return np.concatenate([table, both[new]]), gid[pos[len(table) :]][inv]


def hex_rows(rows: np.ndarray) -> np.ndarray:
    """uint8 [P, k] -> array of P hex strings of 2k digits (vectorised table lookup)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    if rows.shape[1] == 0:
        return np.full(len(rows), "", dtype=object)
    return _HEX[rows].view(f"S{2 * rows.shape[1]}").ravel().astype(str).astype(object)


def unpack_states(rows: np.ndarray, neurons: int, kind: str) -> np.ndarray:
    """Packed rows -> neuron states int8 [P, neurons]: 0/1 (ReLU, LeakyReLU) or 0/1/2 (Hardtanh)."""
    bits = np.unpackbits(np.ascontiguousarray(rows, dtype=np.uint8), axis=1)
    if kind == "hardtanh":
        pairs = bits[:, : 2 * neurons].reshape(len(rows), neurons, 2)
        return (pairs[:, :, 0] + pairs[:, :, 1]).astype(np.int8)
    return bits[:, :neurons].astype(np.int8)


def rows_from_hex(bits: list[str] | np.ndarray) -> np.ndarray:
    """Pattern `bits` hex strings (as stored, all of one length) -> packed uint8 rows [P, B]:
    the inverse of `hex_rows`. ValueError for a string that is not hex."""
    return np.frombuffer(bytes.fromhex("".join(bits)), dtype=np.uint8).reshape(len(bits), -1)


def decode_bits(bits: list[str] | np.ndarray, neurons: int, kind: str = "relu") -> np.ndarray:
    """Pattern `bits` hex strings (as stored) -> neuron states int8 [P, neurons]."""
    return unpack_states(rows_from_hex(bits), neurons, kind)


def pattern_keys(rows: np.ndarray, nbits: int) -> np.ndarray:
    """splitmix64 chain over the big-endian 64-bit words of each row, seeded by the bit count."""
    words = np.ascontiguousarray(rows, dtype=np.uint8).view(">u8").astype(np.uint64)
    h = _splitmix(np.full(len(words), nbits, dtype=np.uint64))
    for w in range(words.shape[1]):
        h = _splitmix(h ^ words[:, w])
    return hex_rows(h.astype(">u8").view(np.uint8).reshape(len(h), 8))


def _splitmix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
