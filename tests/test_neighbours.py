"""`apd neighbours`: nearest same / other-class Hamming distances and NEAR edges, against a
brute-force numpy computation on unpacked bits (full pairwise over instances, not patterns)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.apd_graph import write_run
from tests.cli import Apd, one_line_error
from tests.stores import copy_store
from toolkit.apd.neighbours import NONE, pattern_neighbours, run_neighbours
from toolkit.export import read_rels
from toolkit.store import open_store
from toolkit.store.integrity import damage

READ = """MATCH (i:Instance)-[a:ACTIVATES]->(p:Pattern) WHERE i.run = $run
RETURN i.uid AS instance, i.pred AS pred, a.layer AS layer, p.uid AS pattern, p.bits AS bits,
       a.near_same AS near_same, a.near_other AS near_other"""


def unpack(bits: pd.Series) -> np.ndarray:
    raw = np.frombuffer(bytes.fromhex("".join(bits)), dtype=np.uint8).reshape(len(bits), -1)
    return np.unpackbits(raw, axis=1).astype(np.int64)


def brute_instances(bits: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full pairwise Hamming distances between instances; -1 where no other instance qualifies."""
    d = (bits[:, None, :] != bits[None, :, :]).sum(2)
    big = 10**9
    np.fill_diagonal(d, big)
    same = pred[:, None] == pred[None, :]
    a, b = np.where(same, d, big).min(1), np.where(~same, d, big).min(1)
    return np.where(a == big, NONE, a), np.where(b == big, NONE, b)


def brute_knn(uids: np.ndarray, bits: np.ndarray, k: int, cap: int | None) -> set[tuple[str, str, int]]:
    """Each pattern's k nearest others by (distance, uid) within the cap, as unordered pairs."""
    order = np.argsort(uids)
    uids, bits = uids[order], bits[order]
    d = (bits[:, None, :] != bits[None, :, :]).sum(2)
    out = set()
    for p in range(len(uids)):
        near = sorted((int(d[p, q]), uids[q]) for q in range(len(uids)) if q != p)
        for dist, q in [t for t in near if cap is None or t[0] <= cap][:k]:
            out.add((min(uids[p], q), max(uids[p], q), dist))
    return out


def stored(store, run: str) -> pd.DataFrame:
    return store.read(READ, {"run": run}).sort_values(["layer", "instance"], ignore_index=True)


def check_against_brute(store, run: str, k: int, cap: int | None) -> None:
    frame = stored(store, run)
    near = read_rels(store, run, "NEAR")
    got = {(r.src, r.dst, int(r.distance)) for r in near.itertuples()}
    want = set()
    for layer, part in frame.groupby("layer"):
        bits = unpack(part["bits"])
        same, other = brute_instances(bits, part["pred"].to_numpy())
        assert (part["near_same"].to_numpy() == same).all(), layer
        assert (part["near_other"].to_numpy() == other).all(), layer
        first = part.drop_duplicates("pattern")
        want |= brute_knn(first["pattern"].to_numpy(), unpack(first["bits"]), k, cap)
    assert got == want


def random_patterns(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16-bit patterns drawn from a small pool (so instances share some), 3 classes plus class 3
    held by one instance only."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2**16, size=60)
    patterns = pool[rng.integers(0, len(pool), size=(n, 2))]
    label = rng.integers(0, 3, size=n)
    pred = label.copy()
    pred[0] = 3
    return patterns, label, pred


@pytest.mark.parametrize("k,cap", [(3, None), (5, 6)])
def test_distances_and_near_edges_equal_brute_force(store, k, cap):
    patterns, label, pred = random_patterns(150, seed=k)
    write_run(store, "r", patterns, label, pred)
    summary = run_neighbours(store, "r", k=k, max_distance=cap, device="cpu")
    check_against_brute(store, "r", k, cap)
    frame = stored(store, "r")
    assert (frame.loc[frame["pred"] == 3, "near_same"] == NONE).all()  # the only instance of its class
    assert list(summary["layer"]) == [1, 2]
    assert int(summary["near_edges"].sum()) == len(read_rels(store, "r", "NEAR"))


def test_rerun_replaces_and_keeps_the_run_whole(store):
    patterns, label, pred = random_patterns(120, seed=7)
    write_run(store, "r", patterns, label, pred)
    write_run(store, "other", patterns, label, pred)
    run_neighbours(store, "other", k=2, device="cpu")
    run_neighbours(store, "r", k=4, device="cpu")
    run_neighbours(store, "r", k=2, max_distance=5, device="cpu")
    check_against_brute(store, "r", 2, 5)
    check_against_brute(store, "other", 2, None)  # another run's edges are untouched
    assert damage(store, "r") == []
    assert store.query("pending_writes").empty


def test_single_class_has_no_other_class_distance(store):
    patterns, label, _ = random_patterns(40, seed=3)
    write_run(store, "one", patterns, label, np.zeros(40, dtype=int))
    run_neighbours(store, "one", k=1, device="cpu")
    frame = stored(store, "one")
    assert (frame["near_other"] == NONE).all()
    check_against_brute(store, "one", 1, None)


def brute_patterns(packed: np.ndarray, classes: np.ndarray, k: int, cap: int | None):
    """Pattern-level oracle: popcount(a xor b) for every pair; per class the nearest other
    holder; each pattern's k nearest within the cap by (distance, row), as unordered pairs."""
    d = np.unpackbits(packed[:, None, :] ^ packed[None, :, :], axis=2).sum(2).astype(np.int64)
    np.fill_diagonal(d, 10**9)
    near = np.where(classes[None, :, :], d[:, :, None], 10**9).min(1)
    near[near == 10**9] = NONE
    pairs = set()
    for p in range(len(packed)):
        ranked = sorted((int(d[p, q]), q) for q in range(len(packed)) if q != p and (cap is None or d[p, q] <= cap))
        pairs |= {(min(p, q), max(p, q), w) for w, q in ranked[:k]}
    return near, pairs


def tie_heavy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct 2-byte patterns with few set bits (many equal distances), classes overlapping
    (patterns of several classes) and a few patterns of no class."""
    rng = np.random.default_rng(seed)
    raw = np.unique(rng.integers(0, 256, size=(4 * n, 2), dtype=np.uint8) & np.uint8(0x5B), axis=0)[:n]
    classes = rng.random((len(raw), 4)) < 0.35
    return rng.permutation(raw), classes


@pytest.mark.parametrize("tile,pilot", [((1024, 4096), 2048), ((7, 13), 5), ((13, 7), 1), ((1, 1), 3), ((5, 64), 64)])
@pytest.mark.parametrize("k,cap", [(4, None), (6, 2), (0, None)])
def test_blocks_pilot_and_ties_equal_brute_force(monkeypatch, tile, pilot, k, cap):
    """Blocks of the upper triangle (rows tiles longer or shorter than column tiles, split
    mid-class, single rows), a pilot sample too small to bound the k-th neighbour or bounding it
    loosely, ties at the k-th distance and at the cap: all give the brute-force answer."""
    from toolkit.apd import neighbours

    monkeypatch.setitem(neighbours._TILE, "cpu", tile)
    monkeypatch.setattr(neighbours, "_PILOT", pilot)
    packed, classes = tie_heavy(40, seed=k + len(tile))
    got = pattern_neighbours(packed, classes, k=k, max_distance=cap, device="cpu")
    near, pairs = brute_patterns(packed, classes, k, cap)
    assert (got.near == near).all()
    assert set(zip(got.knn_src.tolist(), got.knn_dst.tolist(), got.knn_dist.tolist())) == pairs
    assert (got.knn_src < got.knn_dst).all() and len(pairs) == len(got.knn_src)


def test_wide_patterns_equal_brute_force(monkeypatch):
    """300 bits (sums above 256, where a bf16 output would round), classes split across
    blocks: the int8 GEMM's distances are popcount(a xor b)."""
    from toolkit.apd import neighbours

    monkeypatch.setitem(neighbours._TILE, "cpu", (32, 48))
    monkeypatch.setattr(neighbours, "_PILOT", 16)
    rng = np.random.default_rng(5)
    bits = rng.random((120, 300)) < rng.choice([0.05, 0.5, 0.95], size=(120, 1))  # a.b up to ~285
    packed = np.packbits(bits, axis=1)
    classes = np.eye(3, dtype=bool)[rng.integers(0, 3, size=120)]
    got = pattern_neighbours(packed, classes, k=3, device="cpu")
    near, pairs = brute_patterns(packed, classes, 3, None)
    assert (got.near == near).all()
    assert set(zip(got.knn_src.tolist(), got.knn_dst.tolist(), got.knn_dist.tolist())) == pairs


def test_real_run_matches_brute_force_and_survives_export_and_drop(digits_run, tmp_path):
    built = digits_run(hidden=(16, 16))
    path = copy_store(built.store, tmp_path)
    apd = Apd(path)
    one_line_error(apd("export", "--run", "d", "--what", "distances", "--out", str(tmp_path / "x.csv"), ok=False),
                   "apd neighbours --run d")
    table = apd.json("neighbours", "--run", "d", "--k", "3", "--max-distance", "4", "--device", "cpu")
    assert [r["layer"] for r in table] == [1, 2]
    with open_store(path) as s:
        check_against_brute(s, "d", 3, 4)
        frame = stored(s, "d")
    apd("export", "--run", "d", "--what", "distances", "--format", "parquet", "--out", str(tmp_path / "d.parquet"))
    dist = pd.read_parquet(tmp_path / "d.parquet").sort_values(["layer", "instance"], ignore_index=True)
    assert (dist[["instance", "pattern", "near_same", "near_other"]].to_numpy()
            == frame[["instance", "pattern", "near_same", "near_other"]].to_numpy()).all()
    apd("export", "--run", "d", "--what", "near", "--format", "csv", "--out", str(tmp_path / "near.csv"))
    near = pd.read_csv(tmp_path / "near.csv")
    assert list(near.columns) == ["pattern", "neighbour", "distance"] and len(near) == sum(r["near_edges"] for r in table)
    out = tmp_path / "export"
    apd("export", "--run", "d", "--format", "neo4j-admin", "--out", str(out))
    header = (out / "NEAR.header.csv").read_text()
    assert "distance" in header
    assert len((out / "NEAR.csv").read_text().splitlines()) == sum(r["near_edges"] for r in table)
    assert apd.json("store", "check")["problems"] == []
    apd("drop", "--run", "d")
    with open_store(path) as s:
        assert s.read("MATCH ()-[e:NEAR]->() RETURN count(e) AS n")["n"].iloc[0] == 0


def test_bad_input_is_one_line(store_path):
    with open_store(store_path) as s:
        patterns, label, pred = random_patterns(20, seed=0)
        write_run(s, "r", patterns, label, pred)
    apd = Apd(store_path)
    one_line_error(apd("neighbours", "--run", "nosuch", ok=False), "nosuch")
    one_line_error(apd("neighbours", "--run", "r", "--k", "-1", ok=False), "--k", usage=True)
    one_line_error(apd("neighbours", "--run", "r", "--max-distance", "-2", ok=False), "--max-distance", usage=True)
    one_line_error(apd("neighbours", "--run", "r", "--device", "tpu", ok=False), "tpu")
