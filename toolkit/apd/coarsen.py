"""`apd coarsen`: a run's APD over K chosen neurons per layer, written as a derived run.

On wide nets every instance has its own full pattern, so splitting, flows and the Sankey
see only singletons. A decision pattern (DESIGN.md section 1) is a partial assignment over
some neurons; the coarse APD takes, per hidden layer, the instances' states on K neurons
(the most informative about the label, the most variable, or those the classes' maximal
patterns constrain) as their patterns. It is written as an ordinary run (Run, Instance,
Pattern, Label nodes; ACTIVATES, NEXT, PREDICTS edges, built by the same
loaders.ingest.build_frames as an ingest), so every analysis works on it unchanged; the
Run node names its source run and neurons, and `(:Run)-[:COARSENS]->(:Run)` links the two.

Dropping or re-ingesting the source removes that link (the derived run no longer describes
the stored source) but leaves the derived run whole: it holds everything it needs. A
derived run cannot be coarsened again (its bits are no longer the layer's neurons).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from tqdm import tqdm

from loaders.ingest import _RUN_NAME, build_frames, write_frames
from loaders.models import load
from loaders.record import LayerRecord, Recording, decode_bits, record, unique_rows
from toolkit.apd.runs import RunPatterns, coarse_source, read_patterns
from toolkit.errors import ApdError, no_such_run
from toolkit.export import read_nodes
from toolkit.mbh.pattern import maximal_patterns
from toolkit.regions.runs import run_source
from toolkit.store import Store

DEFAULT_K = 10
BY = ("label", "variance", "mbh")
TARGETS = ("pred", "true")
MBH_COVERAGE = 0.8
_DIGITS = 12  # scores are rounded before ranking, so float noise never breaks an exact tie


def _layer_shapes(store: Store, run: str, meta: pd.Series) -> list[tuple[int, str]]:
    """(neurons, kind) per hidden layer from one forward pass of the run's model: the hex
    bits alone do not fix a layer's width."""
    loaded = load(meta["model"], meta["factory"] or None)
    if loaded.features is not None:
        x = np.zeros((1, loaded.features), dtype=np.float32)
    else:  # a factory model: its input width comes from the run's data
        x = run_source(store, run).data.x[:1]
    rec = record(loaded.model, x, device="cpu")
    return [(layer.neurons, layer.kind) for layer in rec.layers]


def layer_states(store: Store, run: str) -> tuple[RunPatterns, list[np.ndarray]]:
    """The run's instances (idx order) and per hidden layer bool [n, width]: every neuron's
    state (z > 0) per instance, decoded from the distinct Pattern nodes' bits and indexed by
    the instances' pattern ids (no per-instance Python). Hard-tanh layers are refused: their
    three states are not one bit."""
    data = read_patterns(store, run)
    runs = store.query("runs")
    meta = runs[runs["run"] == run].iloc[0]
    shapes = _layer_shapes(store, run, meta)
    if len(shapes) != data.patterns.shape[1]:
        raise ApdError(f"run {run!r} has {data.patterns.shape[1]} hidden layers but its model has {len(shapes)}: "
                       "re-ingest it")
    keys = np.unique(data.frame["key"].to_numpy().astype(str))  # read_patterns' ids index these, sorted
    pats = store.query("patterns", run=run)
    out = []
    for i, (width, kind) in enumerate(shapes):
        if kind == "hardtanh":
            raise ApdError(f"layer {i + 1} of run {run!r} is hard-tanh (3 states per neuron): coarsen takes "
                           "two-state layers (ReLU, LeakyReLU, max-pool) only")
        mine = pats[pats["layer"] == i + 1]
        if mine["bits"].str.len().ne(2 * ((width + 7) // 8)).any():
            raise ApdError(f"run {run!r}: layer {i + 1} patterns do not hold {width} neurons: re-ingest it")
        lut = np.full(len(keys), -1, dtype=np.int64)
        lut[np.searchsorted(keys, mine["key"].to_numpy().astype(str))] = np.arange(len(mine))
        row = lut[data.patterns[:, i]]
        if (row < 0).any():
            raise ApdError(f"run {run!r} is incomplete: some instances' layer {i + 1} patterns are missing")
        out.append(decode_bits(mine["bits"].to_numpy(), width, kind)[row].astype(bool))
    return data, out


def _ranked(score: np.ndarray, k: int) -> np.ndarray:
    """The k highest scores' indices, ties by lower index, returned in index order."""
    order = np.lexsort((np.arange(len(score)), -np.round(score, _DIGITS)))
    return np.sort(order[:k])


def label_information(states: np.ndarray, target: np.ndarray) -> np.ndarray:
    """I(state_i; target) in bits for every neuron i (states bool [n, h]), from exact counts."""
    _, y = np.unique(target, return_inverse=True)
    onehot = np.eye(y.max() + 1 if len(y) else 1)[y]  # [n, C]
    on = states.T.astype(np.float64) @ onehot  # [h, C] instances of each class with the neuron on
    joint = np.stack([onehot.sum(0) - on, on], axis=1) / len(states)  # [h, 2, C]
    ps = joint.sum(2, keepdims=True)
    py = joint.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / (ps * py)), 0.0)
    return terms.sum((1, 2))


def _mbh_scores(states: np.ndarray, target: np.ndarray, coverage: float) -> np.ndarray:
    """Rank key per neuron: classes whose maximal pattern constrains it, then the mean share
    of those classes' samples at the required state; neurons constant over all instances
    (dead or always on, they cannot tell instances apart) rank last."""
    classes = np.unique(target).tolist()
    mp = maximal_patterns(states.astype(np.int8), target, classes, [coverage])
    req = mp.required[0]  # [C, h]
    onehot = np.asarray(target)[:, None] == np.array(classes)  # [n, C]
    on = onehot.T.astype(np.float64) @ states  # [C, h]
    share = np.where(req == 1, on, onehot.sum(0)[:, None] - on) / onehot.sum(0)[:, None]
    n_classes = (req >= 0).sum(0)
    cover = np.where(req >= 0, share, 0.0).sum(0) / np.maximum(n_classes, 1)
    constant = states.all(0) | ~states.any(0)
    return np.where(constant, -1.0, n_classes + cover / 2)  # cover <= 1 < one more class


def choose_neurons(states: np.ndarray, target: np.ndarray, k: int, by: str = "label") -> np.ndarray:
    """Indices (ascending) of the K neurons of one layer (states bool [n, h]) that carry the
    most information about `target` (`label`: I(state; target), base 2), vary most
    (`variance`: p(1 - p)), or are constrained by the most classes' maximal patterns at
    coverage 0.8 (`mbh`, classes = values of `target`); ties go to the lower index."""
    if by not in BY:
        raise ApdError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    if k < 1:
        raise ApdError(f"--neurons must be at least 1, got {k}")
    states = np.asarray(states, dtype=bool)
    if k >= states.shape[1]:
        return np.arange(states.shape[1])
    if by == "label":
        score = label_information(states, target)
    elif by == "variance":
        p = states.mean(0)
        score = p * (1 - p)
    else:
        score = _mbh_scores(states, target, MBH_COVERAGE)
    return _ranked(score, k)


def coarse_ids(states: np.ndarray, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per instance the id of its partial pattern on `neurons`, and the distinct partial
    patterns (bool [m, K], sorted by their packed bits)."""
    packed = _packed(np.asarray(states, dtype=bool)[:, neurons])
    uniq, inv = unique_rows(packed.view(np.int64))
    rows = uniq.view(np.uint8).reshape(len(uniq), -1)
    return inv, np.unpackbits(rows, axis=1)[:, : len(neurons)].astype(bool)


def _packed(bits: np.ndarray) -> np.ndarray:
    """bool [m, K] -> uint8 [m, 8 * words], most significant bit first, padded to 64-bit words
    as loaders/record.py packs full patterns (so `pattern_keys` hashes both alike)."""
    pad = (-bits.shape[1]) % 64
    return np.ascontiguousarray(np.packbits(np.pad(bits, ((0, 0), (0, pad))), axis=1))


def _checked(neurons: int, by: str, target: str | None) -> str:
    """Refuse bad options in one line; the target label (default pred; true for `mbh`, as
    maximal patterns are defined on true labels)."""
    if by not in BY:
        raise ApdError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    target = target or ("true" if by == "mbh" else "pred")
    if target not in TARGETS:
        raise ApdError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    if neurons < 1:
        raise ApdError(f"--neurons must be at least 1, got {neurons}")
    return target


@dataclass(frozen=True)
class CoarseAPD:
    """A run's instances with their partial patterns on the chosen neurons of every layer."""

    data: RunPatterns
    neurons: list[np.ndarray]  # per layer, the chosen neuron indices (ascending)
    ids: np.ndarray  # [n, L] partial-pattern id per instance and layer
    distinct: list[np.ndarray]  # per layer bool [m, K]: the distinct partial patterns, by id
    widths: list[int]  # per layer, the number of neurons of the full layer


def coarse_patterns(store: Store, run: str, neurons: int = DEFAULT_K, by: str = "label",
                    target: str | None = None) -> CoarseAPD:
    """The coarse APD of `run` in memory, nothing written: what `coarsen` stores and what
    `apd report` draws when a run's patterns are nearly unique."""
    target = _checked(neurons, by, target)
    data, states = layer_states(store, run)
    y = data.pred if target == "pred" else data.label
    chosen = [choose_neurons(s, y, neurons, by) for s in states]
    ids = np.empty(data.patterns.shape, dtype=np.int64)
    distinct = []
    for i, (s, c) in enumerate(zip(states, chosen)):
        ids[:, i], d = coarse_ids(s, c)
        distinct.append(d)
    return CoarseAPD(data, chosen, ids, distinct, [s.shape[1] for s in states])


def derived_name(run: str, k: int, by: str) -> str:
    """`{run}.k{K}` (`.k{K}-{by}` for a choice other than `label`)."""
    return f"{run}.k{k}" if by == "label" else f"{run}.k{k}-{by}"


def coarsen(
    store: Store,
    run: str,
    neurons: int = DEFAULT_K,
    by: str = "label",
    as_: str | None = None,
    target: str | None = None,
    progress: bool = False,
) -> dict:
    """Write the coarse APD of `run` over `neurons` (K) neurons per layer as run `as_`
    (default `derived_name`), replacing an earlier one; returns the `apd coarsen --json` dict.

    `target` (pred or true; default pred, true for `mbh` as maximal patterns are defined on
    true labels) is the label the neurons are chosen for.
    """
    target = _checked(neurons, by, target)
    new = derived_name(run, neurons, by) if as_ is None else as_
    if not _RUN_NAME.fullmatch(new):
        raise ApdError(f"run name {new!r} may only hold letters, digits and . _ @ + -")
    if new == run:
        raise ApdError(f"--as {new!r} is the source run itself: name the coarse run differently")
    runs = store.query("runs")
    if run not in set(runs["run"]):
        raise no_such_run(run)
    source = coarse_source(store, run)
    if source:
        raise ApdError(f"run {run!r} is already coarse (from {source!r}): coarsen that run")
    # shown only when it takes more than a second, so a quick refusal prints its one line alone
    bar = tqdm(total=3, desc="coarsen", unit="step", disable=not progress, delay=1.0, leave=False)
    with bar:
        coarse = coarse_patterns(store, run, neurons, by, target)
        data, chosen = coarse.data, coarse.neurons
        inst = read_nodes(store, run, "Instance").sort_values("idx", ignore_index=True)
        if not (inst["idx"].to_numpy() == np.arange(len(inst))).all():
            raise ApdError(f"run {run!r}: its instances' idx are not 0..{len(inst) - 1}: re-ingest it")
        layers = [LayerRecord(i + 1, f"coarse{i + 1}", "relu", len(c), len(c), _packed(d))
                  for i, (c, d) in enumerate(zip(chosen, coarse.distinct))]
        bar.update()
        rec = Recording(layers, coarse.ids, data.pred, int(data.pred.max()) + 1)
        frames = build_frames(new, rec, data.label, inst["forgetting"].to_numpy(), inst["never_learned"].to_numpy(),
                              inst["row"].to_numpy())
        meta = runs[runs["run"] == run].iloc[0]
        spec = ";".join(f"{i + 1}:" + ",".join(map(str, c)) for i, c in enumerate(chosen))
        run_node = {
            **{k: meta[k] for k in ("model", "model_hash", "factory", "dataset", "split", "epoch", "arch",
                                    "instances", "layers", "accuracy")},
            "uid": new, "run": new, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": run, "neurons": spec, "history_only": False,
            # how the split was drawn is the source's; unknown (left unset) for a run of an older store
            **{k: meta[k] for k in ("official_split", "split_note") if pd.notna(meta[k])},
        }
        frames["nodes"]["Run"] = pd.DataFrame([run_node])
        frames["rels"]["COARSENS"] = pd.DataFrame({"src": [new], "dst": [run]})
        bar.update()
        write_frames(store, new, frames)
        bar.update()
    return {
        "run": new, "source": run, "by": by, "target": target, "k": neurons, "store": store.location,
        "layers": [
            {"layer": i + 1, "width": int(s), "neurons": c.tolist(),
             "patterns": int(layer.patterns), "source_patterns": int(len(np.unique(data.patterns[:, i])))}
            for i, (s, c, layer) in enumerate(zip(coarse.widths, chosen, layers))
        ],
        "next_edges": len(frames["rels"]["NEXT"]),
        "predicts_edges": len(frames["rels"]["PREDICTS"]),
    }


__all__ = ["DEFAULT_K", "BY", "CoarseAPD", "coarse_patterns", "layer_states", "choose_neurons", "coarse_ids",
           "coarsen", "derived_name", "label_information"]
