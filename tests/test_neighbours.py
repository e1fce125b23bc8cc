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


def test_chunks_do_not_change_the_result(monkeypatch):
    """Bounded memory: many small chunks give the one-chunk answer."""
    from toolkit.apd import neighbours

    rng = np.random.default_rng(1)
    packed = rng.integers(0, 256, size=(300, 5), dtype=np.uint8)
    packed[10] = packed[11]
    classes = rng.random((300, 4)) < 0.4
    one = pattern_neighbours(packed, classes, k=4, device="cpu")
    monkeypatch.setattr(neighbours, "_CHUNK_BYTES", 8 * 300 * 7)
    many = pattern_neighbours(packed, classes, k=4, device="cpu")
    assert (one.near == many.near).all() and (one.knn_dist == many.knn_dist).all()
    assert (one.knn_src == many.knn_src).all() and (one.knn_dst == many.knn_dst).all()


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
