"""`apd mbh`, `apd regions --save`, `apd mbh-sweep` end to end: graph results written,
replaced on a re-run, removed by `apd drop`; user errors leave the store unchanged."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from loaders.datasets import load_dataset
from loaders.models import load_model
from toolkit.regions.plane import plane_from_anchors
from toolkit.store import open_store
from tests.cli import one_line_error
from tests.oracles import exact_s, predictions, region_table, required

MBH_LABELS = ("Blanket", "Neuron", "Plane")


@pytest.fixture
def run_d(apd, digits_run, tmp_path):
    """Run `d` (digits test split of the session's 64-16-16-10 net) in a fresh store, on a
    private copy of the model file."""
    model = tmp_path / "m.pt"
    shutil.copy(digits_run().model, model)
    apd.json("ingest", str(model), "--dataset", "digits", "--split", "test", "--run", "d", "--device", "cpu")
    return model


def _counts(store_path: str, run: str) -> dict:
    with open_store(store_path, read_only=True) as s:
        return s.counts(run).to_dict()


def _rels(store_path: str) -> dict:
    with open_store(store_path, read_only=True) as s:
        return {t: int(s.read(f"MATCH ()-[r:{t}]->() RETURN count(r) AS n")["n"][0])
                for t in ("CONSTRAINS", "COVERS", "MEASURED")}


def test_mbh_writes_replaces_and_drop_removes(apd, run_d):
    out = apd.json("mbh", "--run", "d", "--coverage", "0.7,1.0", "--planes", "2", "--device", "cpu")
    assert out["coverage"] == [0.7, 1.0] and len(out["planes"]) == 2
    assert set(out["s"]) == {"0.7", "1"} and set(out["classes"]["0.7"]) == {str(c) for c in range(10)}
    for p in out["planes"]:
        assert len(p["anchors"]) == 3 and len(set(p["anchor_labels"])) == 3 and p["regions"] > 1
        assert len(p["origin"]) == 64 and np.array(p["basis"]).shape == (2, 64) and len(p["box"]) == 4
    counts = _counts(apd.store_path, "d")
    req = sum(len(v["constraints"]) for per in out["classes"].values() for v in per.values())
    neurons = {i for per in out["classes"].values() for v in per.values() for i, _ in v["constraints"]}
    assert counts["Blanket"] == 20 and counts["Plane"] == 2 and counts["Neuron"] == len(neurons)
    rels = _rels(apd.store_path)
    assert rels["CONSTRAINS"] == req and rels["MEASURED"] == 2 * 20 and rels["COVERS"] == out["stored"]["covers"]
    # a re-run replaces (fewer blankets this time), never duplicates
    again = apd.json("mbh", "--run", "d", "--coverage", "0.9", "--planes", "3", "--classes", "0,3,9,3", "--greedy",
                     "joint", "--device", "cpu")
    assert again["greedy"] == "joint" and set(again["classes"]["0.9"]) == {"0", "3", "9"}
    counts = _counts(apd.store_path, "d")
    assert counts["Blanket"] == 3 and counts["Plane"] == 3 and _rels(apd.store_path)["MEASURED"] == 9
    blankets = apd.json("query", "blankets", "-p", "run=d")
    assert sorted(b["class"] for b in blankets) == [0, 3, 9]
    assert all(b["coverage"] == 0.9 and b["greedy"] == "joint" for b in blankets)
    apd("drop", "--run", "d")
    assert all(_counts(apd.store_path, "d").get(t, 0) == 0 for t in MBH_LABELS)
    assert _rels(apd.store_path) == {"CONSTRAINS": 0, "COVERS": 0, "MEASURED": 0}


def test_planes_from_and_regions_save_give_identical_planes(apd, run_d):
    saved = apd.json("regions", "--run", "d", "--anchors", "5,17,40", "--device", "cpu", "--save")
    again = apd.json("regions", "--run", "d", "--anchors", "5,17,40", "--device", "cpu", "--save")
    assert saved["plane"] == again["plane"] and _counts(apd.store_path, "d")["Plane"] == 1
    apd.json("ingest", str(run_d), "--dataset", "digits", "--split", "test", "--run", "e", "--device", "cpu")
    out = apd.json("mbh", "--run", "e", "--planes-from", "d", "--device", "cpu")
    assert [p["anchors"] for p in out["planes"]] == [[5, 17, 40]]
    assert out["planes"][0]["box"] == pytest.approx(saved["box"])
    assert out["planes"][0]["regions"] == saved["regions"]
    one = apd.json("mbh", "--run", "d", "--anchors", "5,17,40", "--device", "cpu")
    assert one["s"] == out["s"]  # same model, same plane: same s
    assert _counts(apd.store_path, "d")["Plane"] == 1  # mbh replaced the run's planes by its own


@pytest.mark.parametrize("args, message", [
    (["--coverage", "0"], "(0, 1]"),
    (["--coverage", "0.5,1.2"], "(0, 1]"),
    (["--classes", "3,12"], "class 12 has no samples"),
    (["--anchors", "1,2,450"], "out of range"),
    (["--planes-from", "nope"], "no run named 'nope'"),
])
def test_user_errors_are_one_line_and_leave_the_store_unchanged(apd, run_d, args, message):
    apd("mbh", "--run", "d", "--planes", "1", "--device", "cpu")
    before = _counts(apd.store_path, "d"), _rels(apd.store_path)
    one_line_error(apd("mbh", "--run", "d", "--device", "cpu", *args, ok=False), message)
    assert (_counts(apd.store_path, "d"), _rels(apd.store_path)) == before


def test_missing_or_changed_model_is_refused(apd, run_d):
    apd("mbh", "--run", "d", "--planes", "1", "--device", "cpu")
    before = _counts(apd.store_path, "d")
    with open(run_d, "ab") as f:
        f.write(b"\0")
    one_line_error(apd("mbh", "--run", "d", "--device", "cpu", ok=False), "changed since run 'd' was ingested")
    os.remove(run_d)
    one_line_error(apd("mbh", "--run", "d", "--device", "cpu", ok=False), "is gone")
    assert _counts(apd.store_path, "d") == before


def test_mbh_sweep_table(apd, tmp_path):
    table = apd.json("mbh-sweep", "--dataset", "digits", "--sizes", "3,6", "--epochs", "1", "--planes", "1",
                     "--pruned", "--out-dir", str(tmp_path / "sweep"), "--device", "cpu")
    budget, density = 64 * 9 + 9 * 3, (64 * 9 + 9 * 3) / (64 * 18 + 18 * 6)
    assert [r["net"] for r in table] == ["9-3", "18-6", f"18-6-d{density:.4f}"]
    assert table[2]["hidden_params"] == budget and table[2]["density"] == pytest.approx(density)
    runs = {r["run"]: r for r in apd.json("runs")}
    data = load_dataset("digits", "test")
    anchors = set()
    for row in table:
        model = load_model(runs[row["run"]]["model"])
        assert row["accuracy"] == pytest.approx(float((predictions(model, data.x) == data.y).mean()), abs=1e-12)
        (plane,) = apd.json("query", "planes", "-p", f"run={row['run']}")
        anchors.add(plane["anchors"])
        idx = [int(i) for i in plane["anchors"].split(",")]
        box = [plane[k] for k in ("umin", "umax", "vmin", "vmax")]
        regions = region_table(model, plane_from_anchors(*data.x[idx], box=box).to_dict())
        # s from the stored blankets' constraints, measured independently on the stored plane
        with open_store(apd.store_path, read_only=True) as st:
            cons = st.read("MATCH (b:Blanket)-[c:CONSTRAINS]->(n:Neuron) WHERE b.run = $run "
                           "RETURN b.class AS cls, n.`index` AS i, c.status AS status", {"run": row["run"]})
        h = regions[1].shape[1]
        per_class = []
        for cls in range(10):
            req = np.full(h, -1, dtype=np.int8)
            mine = cons[cons["cls"] == cls]
            req[mine["i"].to_numpy()] = mine["status"].to_numpy()
            per_class.append(exact_s(regions, req))
        assert row["s"] == pytest.approx(np.mean(per_class), rel=1e-9, abs=1e-12)
        assert row["s_min"] == row["s_max"] == pytest.approx(row["s"])  # one plane
    assert len(anchors) == 1  # every net measured on the same plane


def test_plot_plane_draws_the_blanket_that_mbh_measures(apd, run_d, tmp_path):
    out = apd.json("mbh", "--run", "d", "--anchors", "5,17,40", "--coverage", "0.8", "--device", "cpu")
    pic = apd.json("plot", "plane", "--run", "d", "--anchors", "5,17,40", "--class", "3", "--coverage", "0.8",
                   "--out", str(tmp_path / "p.png"), "--device", "cpu")
    regions = region_table(load_model(run_d), out["planes"][0])
    req = required(out, "0.8", 3, regions[1].shape[1])
    assert pic["s"] == pytest.approx(exact_s(regions, req), rel=1e-9, abs=1e-12)  # the picture's caption
    assert pic["regions"] == len(regions[0]) and (tmp_path / "p.png").stat().st_size > 10_000
