"""MBH: maximal patterns on hand-worked examples (both fixes of the reference code), blanket
masks against a loop, s per class against a dense grid of forward passes, nested blankets,
and the named queries against pandas."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.models import load_model
from toolkit.errors import ApdError
from toolkit.mbh.blanket import blanket_area, blanket_mask
from toolkit.mbh.pattern import maximal_patterns
from toolkit.mbh.planes import random_anchors
from toolkit.mbh.runs import run_mbh
from toolkit.store import open_store
from tests.oracles import exact_s, greedy_maximal, layer_states, region_table, required
from tests.stores import copy_store


def _column(n: int, off: list[int], on: int = 1) -> np.ndarray:
    col = np.full(n, on, dtype=np.int8)
    col[off] = 1 - on
    return col


def test_hand_worked_maximal_pattern_keeps_both_fixes():
    # 20 samples of class 0: n0 constant 1; n1 active in 17 (p = 0.85, |2p-1| = 0.7);
    # n2 inactive in 17, failing on the same 3 samples as n1 (a tie with n1: both kept);
    # n3 active in 16, failing on 4 other samples.
    n = 20
    states = np.stack([_column(n, []), _column(n, [0, 1, 2]), _column(n, [0, 1, 2], on=0),
                       _column(n, [3, 4, 5, 6])], 1)
    other = np.zeros((5, 4), dtype=np.int8)  # class 1 must not leak into class 0's counts
    mp = maximal_patterns(np.vstack([states, other]), np.r_[np.zeros(n), np.ones(5)], [0, 1],
                          [1.0, 0.9, 0.8, 0.6])
    np.testing.assert_array_equal(mp.required[:, 0], [
        [1, -1, -1, -1],  # c = 1: only the constant neuron
        [1, -1, -1, -1],  # c = 0.9: n1, n2 cover 0.85 < 0.9
        [1, 1, 0, -1],  # c = 0.8: 0.85 >= 0.8 although |2p-1| = 0.7; the tie n1 = n2 keeps both
        [1, 1, 0, 1],  # c = 0.6: n3 brings joint coverage to 13/20
    ])
    np.testing.assert_allclose(mp.joint[:, 0], [1.0, 1.0, 0.85, 0.65])
    assert mp.base.tolist() == [1, 4] and mp.samples.tolist() == [20, 5]
    np.testing.assert_array_equal(mp.required[:, 1], 0)  # class 1: all 4 neurons constant at 0
    # the same counts given as distinct patterns with weights
    uniq, inv = np.unique(states, axis=0, return_inverse=True)
    w = np.bincount(inv.ravel())
    mw = maximal_patterns(uniq, np.zeros(len(uniq)), [0], [1.0, 0.9, 0.8, 0.6], weights=w)
    np.testing.assert_array_equal(mw.required[:, 0], mp.required[:, 0])


def test_joint_greedy_takes_the_neuron_that_keeps_coverage():
    # a: 18/20 (fails 0,1); b: 17/20 (fails 2,3,4); d: 16/20 (fails 0,1,5,6: overlaps a)
    n = 20
    states = np.stack([_column(n, [0, 1]), _column(n, [2, 3, 4]), _column(n, [0, 1, 5, 6])], 1)
    labels = np.zeros(n)
    ind = maximal_patterns(states, labels, [0], [0.8], "individual")
    joint = maximal_patterns(states, labels, [0], [0.8], "joint")
    assert ind.required[0, 0].tolist() == [1, -1, -1]  # a, then b would drop to 15/20: stop
    assert joint.required[0, 0].tolist() == [1, -1, 1]  # a, then d keeps 16/20
    assert joint.joint[0, 0] == pytest.approx(0.8)


def test_three_state_neurons_are_pinned_to_their_majority_state():
    states = np.array([[2, 0], [2, 1], [2, 1], [2, 1], [2, 2]], dtype=np.int8)
    mp = maximal_patterns(states, np.zeros(5), [0], [1.0, 0.6])
    assert mp.required[:, 0].tolist() == [[2, -1], [2, 1]]


@pytest.mark.parametrize("bad", [[0.0], [1.5], [-0.2]])
def test_coverage_outside_unit_interval_is_refused(bad):
    with pytest.raises(ApdError, match=r"\(0, 1\]"):
        maximal_patterns(np.zeros((3, 2), dtype=np.int8), np.zeros(3), [0], bad)


def test_blanket_mask_matches_a_loop():
    rng = np.random.default_rng(1)
    states = rng.integers(0, 3, size=(200, 6)).astype(np.int8)
    required = rng.integers(-1, 3, size=(7, 6)).astype(np.int8)
    required[0] = -1
    mask = blanket_mask(states, required).numpy()
    loop = np.array([[all(r[i] < 0 or s[i] == r[i] for i in range(6)) for s in states] for r in required])
    np.testing.assert_array_equal(mask, loop)
    np.testing.assert_array_equal(blanket_mask(states, required[3]).numpy(), loop[3])
    areas = rng.random(200)
    np.testing.assert_allclose(blanket_area(areas, torch.as_tensor(mask)).numpy(), loop @ areas)


def test_random_anchors_take_three_distinct_classes():
    labels = np.repeat(np.arange(5), [3, 7, 2, 9, 4])
    anchors = np.array(random_anchors(labels, 50, seed=3))
    assert anchors.shape == (50, 3)
    assert all(len(set(labels[a])) == 3 for a in anchors)
    assert anchors.min() >= 0 and anchors.max() < len(labels)
    assert random_anchors(labels, 5, seed=3) == anchors[:5].tolist()


# --- on a trained run --------------------------------------------------------------


@pytest.fixture(scope="module")
def mbh_run(digits_run, tmp_path_factory):
    """A 64-32-32-32-10 net trained briefly on digits, its test split ingested as run `d`,
    `apd mbh` at four coverages over two random planes (in a copy of the session's store)."""
    run = digits_run((32, 32, 32), 4)
    store = copy_store(run.store, tmp_path_factory.mktemp("mbh-run"))
    with open_store(store) as s:
        out = run_mbh(s, "d", [0.5, 0.8, 0.95, 1.0], planes=2, seed=1, device="cpu")
    return store, load_model(run.model), load_dataset("digits", "test"), out


def _grid_states(model: torch.nn.Module, plane: dict, n: int) -> np.ndarray:
    """Last-layer states at the centres of an n x n grid of cells over a JSON plane's box."""
    umin, umax, vmin, vmax = plane["box"]
    u = umin + (np.arange(n) + 0.5) * (umax - umin) / n
    v = vmin + (np.arange(n) + 0.5) * (vmax - vmin) / n
    uu, vv = np.meshgrid(u, v)
    pts = np.array(plane["origin"]) + np.stack([uu.ravel(), vv.ravel()], 1) @ np.array(plane["basis"])
    return layer_states(model, pts)[-1]


def test_graph_states_agree_with_a_forward_pass(mbh_run):
    _, model, data, out = mbh_run
    states = layer_states(model, data.x)[-1]
    mp = maximal_patterns(states, data.y, list(range(10)), out["coverage"])
    for k, key in enumerate(out["classes"]):
        for c in range(10):
            np.testing.assert_array_equal(required(out, key, c, states.shape[1]), mp.required[k, c])


def test_full_coverage_pattern_is_the_constant_neurons(mbh_run):
    _, model, data, out = mbh_run
    states = layer_states(model, data.x)[-1]
    for c in range(10):
        sc = states[data.y == c]
        constant = np.flatnonzero((sc == sc[0]).all(0))
        got = out["classes"]["1"][str(c)]["constraints"]
        assert got == [[int(i), int(sc[0, i])] for i in constant]


def test_blankets_are_nested_and_s_never_falls_as_coverage_falls(mbh_run):
    _, _, _, out = mbh_run
    keys = sorted(out["classes"], key=float)  # rising coverage
    for c in range(10):
        sets = [{tuple(x) for x in out["classes"][k][str(c)]["constraints"]} for k in keys]
        assert all(lo >= hi for lo, hi in zip(sets, sets[1:]))  # lower c: a superset, same statuses
        for plane in out["planes"]:
            s = [plane["s"][k][str(c)] for k in keys]
            assert all(a >= b - 1e-12 for a, b in zip(s, s[1:]))
    assert out["s"]["0.5"] >= out["s"]["0.8"] >= out["s"]["1"]


def test_s_per_class_matches_a_dense_grid(mbh_run):
    _, model, _, out = mbh_run
    plane = out["planes"][0]
    states = _grid_states(model, plane, 300)
    regions = region_table(model, plane)
    checked = 0
    for key in ("0.8", "1"):
        for c in range(10):
            req = required(out, key, c, states.shape[1])
            inside = ((req < 0) | (states == req)).all(1).mean()
            assert plane["s"][key][str(c)] == pytest.approx(1 - inside, abs=0.012), (key, c)  # coarse
            assert plane["s"][key][str(c)] == pytest.approx(exact_s(regions, req), rel=1e-9, abs=1e-12)
            checked += 0 < inside < 1
    assert checked >= 5  # most blankets are neither empty nor the whole box


def test_named_queries_match_pandas(mbh_run):
    store, model, data, out = mbh_run
    states = layer_states(model, data.x)[-1]
    with open_store(store, read_only=True) as s:
        inst = s.query("instance_patterns", run="d")
        lp = s.query("label_patterns", run="d", layer=3)
        blankets = s.query("blankets", run="d")
        planes = s.query("planes", run="d")
        covered = s.query("blanket_instances", run="d", label=4, coverage=0.8)
    # label_patterns: (pattern, true label) counts of the last layer
    last = inst[inst["layer"] == 3]
    expect = last.groupby(["key", "label"]).size().reset_index(name="n")
    expect["uid"] = "d:p:3:" + expect["key"]
    got = lp.merge(expect, on=["uid", "label"], how="outer", suffixes=("", "_pd"))
    assert len(got) == len(lp) == len(expect) and (got["n"] == got["n_pd"]).all()
    # blankets: constraint counts, active share and s agree with the JSON result
    assert len(blankets) == 4 * 10
    for row in blankets.itertuples():
        cls = out["classes"][f"{row.coverage:g}"][str(row._1)]
        assert row.constraints == len(cls["constraints"])
        assert row.active == sum(st == 1 for _, st in cls["constraints"])
        assert row.s == pytest.approx(cls["s"]) and row.s_min == pytest.approx(cls["s_min"])
        req = required(out, f"{row.coverage:g}", row._1, states.shape[1])
        assert row.patterns == len(np.unique(states[((req < 0) | (states == req)).all(1)], axis=0))
    # blanket_instances: instances whose own forward-pass pattern satisfies the blanket
    req = required(out, "0.8", 4, states.shape[1])
    expect_idx = np.flatnonzero(((req < 0) | (states == req)).all(1))
    assert covered["idx"].tolist() == expect_idx.tolist()
    assert (covered["label"].to_numpy() == data.y[expect_idx]).all()
    # the Browser kit's blanket_patterns: the same blanket's patterns = those of its instances
    with open_store(store, read_only=True) as s:
        bp = s.query("browser/blanket_patterns", run="d", **{"class": 4})
    mine = bp[np.isclose(bp["coverage"], 0.8)]
    keys = last[last["idx"].isin(expect_idx)]["key"]
    assert set(mine["pattern_uid"]) == set("d:p:3:" + keys)
    # planes: anchors and boxes as returned, and mean s over their MEASURED edges
    assert planes["anchors"].tolist() == [",".join(map(str, p["anchors"])) for p in out["planes"]]
    for row, p in zip(planes.itertuples(), out["planes"]):
        assert [row.umin, row.umax, row.vmin, row.vmax] == pytest.approx(p["box"])
        assert row.regions == p["regions"] and row.blankets == 40
        assert row.s == pytest.approx(np.mean([v for per in p["s"].values() for v in per.values()]))


def test_hardtanh_three_states_agree_between_graph_partition_and_grid(digits_run, tmp_path):
    run = digits_run((16, 16), 2, "hardtanh")
    with open_store(copy_store(run.store, tmp_path)) as s:
        out = run_mbh(s, "d", [0.6, 1.0], anchors=[3, 10, 42], device="cpu", scale=6.0)
    model, data = load_model(run.model), load_dataset("digits", "test")
    states = layer_states(model, data.x)[-1]
    assert {1, 2} <= set(np.unique(states).tolist())  # beyond what two-state code would read
    mp = maximal_patterns(states, data.y, list(range(10)), [0.6, 1.0])
    plane = out["planes"][0]
    grid = _grid_states(model, plane, 250)
    regions = region_table(model, plane)
    assert set(np.unique(grid).tolist()) == {0, 1, 2}  # the plane crosses all three states
    nontrivial = 0
    for k, key in enumerate(("0.6", "1")):
        for c in range(10):
            req = required(out, key, c, states.shape[1])
            np.testing.assert_array_equal(req, mp.required[k, c])
            inside = ((req < 0) | (grid == req)).all(1).mean()
            assert plane["s"][key][str(c)] == pytest.approx(1 - inside, abs=0.015), (key, c)  # coarse
            assert plane["s"][key][str(c)] == pytest.approx(exact_s(regions, req), rel=1e-9, abs=1e-12)
            nontrivial += 0.05 < inside < 0.95
    assert nontrivial >= 5


# --- against a greedy written from DESIGN.md's definition (tests/oracles.py) ---------------


def _tied_picks(states: np.ndarray, chosen: dict[int, int]) -> int:
    """How many chosen non-constant neurons share their individual coverage with another chosen one."""
    share = {i: np.unique(states[:, i], return_counts=True)[1].max() / len(states) for i in chosen}
    scores = [s for s in share.values() if s < 1]
    return sum(scores.count(s) > 1 for s in scores)


def test_run_mbh_equals_the_greedy_of_the_definition(mbh_run):
    """The stored run's maximal patterns (read from the graph by `run_mbh`) and `maximal_patterns`
    on forward-pass states, both greedy orders, against the greedy of DESIGN.md on the model's
    own forward pass: constraints, base and joint coverage per class and coverage. A trained
    net's classes have tied individual coverages among the neurons they keep, so the tie rule
    (no tied candidate dropped) is exercised, not assumed."""
    _, model, data, out = mbh_run
    states = layer_states(model, data.x)[-1]
    classes = list(range(10))
    direct = {g: maximal_patterns(states, data.y, classes, out["coverage"], g) for g in ("individual", "joint")}
    ties = 0
    for k, cov in enumerate(out["coverage"]):
        key = f"{cov:g}"
        for c in classes:
            mine = states[data.y == c]
            want, joint = greedy_maximal(mine, cov)
            got = out["classes"][key][str(c)]
            assert got["constraints"] == [[i, s] for i, s in want.items()], (key, c)
            assert got["joint"] == pytest.approx(joint) and got["samples"] == len(mine)
            assert got["base"] == sum((mine == mine[0]).all(0))
            np.testing.assert_array_equal(direct["individual"].required[k, c], required(out, key, c, states.shape[1]))
            want_j, joint_j = greedy_maximal(mine, cov, joint=True)
            req = direct["joint"].required[k, c]
            assert {int(i): int(req[i]) for i in np.flatnonzero(req >= 0)} == want_j, (key, c)
            assert direct["joint"].joint[k, c] == pytest.approx(joint_j)
            ties += _tied_picks(mine, want)
    assert ties > 0


@pytest.mark.parametrize("seed", range(3))
def test_maximal_patterns_equal_the_greedy_on_tied_three_state_samples(seed):
    """Random 2- and 3-state samples with few samples per class (so individual coverages tie
    often), as samples and as distinct patterns with weights, both greedy orders, many
    coverages: `maximal_patterns` equals the greedy of the definition everywhere."""
    rng = np.random.default_rng(seed)
    n, h, k = 240, 14, 4
    labels = rng.integers(0, k, n)
    bias = rng.random((k, h)) ** 0.3  # most neurons lean strongly to one status per class
    states = np.where(rng.random((n, h)) < bias[labels], 1, rng.integers(0, 3 if seed else 2, (n, h))).astype(np.int8)
    coverages = [1.0, 0.97, 0.9, 0.8, 0.7, 0.55, 0.4, 0.2]
    uniq, inv = np.unique(np.column_stack([states, labels]), axis=0, return_inverse=True)
    weights = np.bincount(inv.ravel())
    ties = 0
    for greedy in ("individual", "joint"):
        mp = maximal_patterns(states, labels, list(range(k)), coverages, greedy)
        mw = maximal_patterns(uniq[:, :-1], uniq[:, -1], list(range(k)), coverages, greedy, weights=weights)
        np.testing.assert_array_equal(mw.required, mp.required)
        for j, cov in enumerate(coverages):
            for c in range(k):
                want, joint = greedy_maximal(states[labels == c], cov, joint=greedy == "joint")
                req = mp.required[j, c]
                assert {int(i): int(req[i]) for i in np.flatnonzero(req >= 0)} == want, (greedy, cov, c)
                assert mp.joint[j, c] == pytest.approx(joint)
                ties += _tied_picks(states[labels == c], want)
    assert ties > 0
