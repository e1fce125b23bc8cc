"""Backward splitting on arrays: a hand-worked example, and random data against a plain,
loop-based implementation of DESIGN.md's algorithm (FIFO queue, one cluster at a time)."""
from __future__ import annotations

import math
from collections import Counter, deque

import numpy as np
import pytest

from toolkit.apd.clusters import cluster_table, history_stats
from toolkit.apd.splitting import split


def reference(patterns: list[list[int]], target: list[int], eps: float = 1e-12) -> list[dict]:
    """Algorithm 1 as written: FIFO of (cluster, level); children numbered in creation order,
    the children of one cluster in ascending pattern id."""
    n, L = len(patterns), len(patterns[0])
    clusters = [{"parent": -1, "level": L + 1, "members": list(range(n)), "final": False, "gain": None}]
    queue = deque([0])

    def entropy(members):
        counts = Counter(target[i] for i in members)
        return -sum(c / len(members) * math.log2(c / len(members)) for c in counts.values())

    while queue:
        cid = queue.popleft()
        cluster = clusters[cid]
        layer = cluster["level"] - 1
        groups: dict[int, list[int]] = {}
        for i in cluster["members"]:
            groups.setdefault(patterns[i][layer - 1], []).append(i)
        size = len(cluster["members"])
        gain = entropy(cluster["members"]) - sum(len(m) / size * entropy(m) for m in groups.values())
        cluster["gain"] = gain
        if gain > eps:
            for key in sorted(groups):
                final = len(groups[key]) == 1 or layer == 1
                clusters.append({"parent": cid, "level": layer, "members": groups[key], "final": final, "gain": None})
                if not final:
                    queue.append(len(clusters) - 1)
        else:
            cluster["final"] = True
    return clusters


def members(result, cid: int) -> set[int]:
    return set(np.flatnonzero((result.membership == cid).any(axis=1)).tolist())


# Seven instances, three hidden layers. Predicted labels A=0 / B=1, one error (instance 2).
#   idx        0  1  2  3  4  5  6
#   pred       0  0  0  1  1  1  0
#   label      0  0  1  1  1  1  0
#   layer 3    0  0  0  0  1  1  1
#   layer 2    0  0  1  1  2  2  2
#   layer 1    0  1  2  3  4  4  4
# Root (level 4): 4 A / 3 B, H = -(4/7 log2 4/7 + 3/7 log2 3/7) = 0.98523.
#   Split on layer 3: {0,1,2,3} (3 A, 1 B: H = 0.81128) and {4,5,6} (2 B, 1 A: H = 0.91830);
#   gain = 0.98523 - (4/7 * 0.81128 + 3/7 * 0.91830) = 0.12808 > eps -> clusters 1 and 2, level 3.
# Cluster 1 {0,1,2,3}, split on layer 2: {0,1} (AA, H = 0) and {2,3} (AB, H = 1);
#   gain = 0.81128 - (1/2 * 0 + 1/2 * 1) = 0.31128 -> clusters 3 and 4, level 2.
# Cluster 2 {4,5,6}: all share layer-2 pattern 2, one child, gain 0 -> final as it is.
# Cluster 3 {0,1}: pure, H = 0, so any split gains 0 -> final (its layer-1 patterns differ).
# Cluster 4 {2,3}: layer 1 separates A from B, gain = 1 - 0 = 1 -> clusters 5 {2}, 6 {3},
#   level 1, final (singletons, and layer 1 is the first).
PATTERNS = np.array([[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 1, 0], [4, 2, 1], [4, 2, 1], [4, 2, 1]])
PRED = np.array([0, 0, 0, 1, 1, 1, 0])
LABEL = np.array([0, 0, 1, 1, 1, 1, 0])
H_ROOT = -(4 / 7 * math.log2(4 / 7) + 3 / 7 * math.log2(3 / 7))
H_1 = -(3 / 4 * math.log2(3 / 4) + 1 / 4 * math.log2(1 / 4))
H_2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))


def test_hand_worked_example():
    result = split(PATTERNS, PRED)
    c = result.clusters
    assert c["parent"].tolist() == [-1, 0, 0, 1, 1, 4, 4]
    assert c["level"].tolist() == [4, 3, 3, 2, 2, 1, 1]
    assert c["size"].tolist() == [7, 4, 3, 2, 2, 1, 1]
    assert c["final"].tolist() == [False, False, True, True, False, True, True]
    assert [members(result, k) for k in range(7)] == [set(range(7)), {0, 1, 2, 3}, {4, 5, 6}, {0, 1}, {2, 3}, {2}, {3}]
    assert result.final_cluster.tolist() == [3, 3, 5, 6, 2, 2, 2]
    assert c["gain"][0] == pytest.approx(H_ROOT - 4 / 7 * H_1 - 3 / 7 * H_2) == pytest.approx(0.12808, abs=1e-5)
    assert c["gain"][1] == pytest.approx(H_1 - 0.5) == pytest.approx(0.31128, abs=1e-5)
    assert c["gain"][2] == 0 and c["gain"][3] == 0 and c["gain"][4] == pytest.approx(1.0)
    assert c["gain"][5:].isna().all()  # never examined: singletons at the first layer

    table = cluster_table(result, PRED, LABEL == PRED)
    assert table["layers"].tolist() == ["", "3", "3", "2-3", "2-3", "1-2-3", "1-2-3"]
    assert table["purity"].tolist() == pytest.approx([4 / 7, 3 / 4, 2 / 3, 1, 1 / 2, 1, 1])
    assert table["label"].tolist() == [0, 0, 1, 0, 0, 0, 1]  # cluster 4 ties A/B: the smaller label
    assert table["correct"].tolist() == pytest.approx([6 / 7, 3 / 4, 1, 1, 1 / 2, 0, 1])

    stats, levels = history_stats(result)
    assert stats["depth"] == 3 and stats["leaves"] == 4 and stats["singletons"] == 2
    assert stats["leaf_sizes"] == {"1": 2, "2-3": 2}
    assert levels["clusters"].tolist() == [1, 2, 2, 2]


def test_true_label_target_changes_the_gain():
    # On the true label, cluster 1 {0,1,2,3} is 2 A / 2 B and layer 2 separates them exactly.
    result = split(PATTERNS, LABEL)
    assert result.clusters["gain"][1] == pytest.approx(1.0)
    assert result.final_cluster.tolist()[:4] == [3, 3, 4, 4]


def test_zero_gain_stops_only_that_branch():
    # Root 4 / 3 splits on layer 3 into {0..3} (2 / 2) and {4,5,6} (2 / 1): gain 0.020.
    # Layer 2 cuts {0..3} into {0,1} and {2,3}, each 1 / 1 like their parent: gain 0, so
    # cluster 1 is final, while cluster 2 goes on: {4,5} and {6}, then {4,5} is pure.
    patterns = np.array([[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 1, 0], [4, 2, 1], [5, 2, 1], [6, 3, 1]])
    target = np.array([0, 1, 0, 1, 0, 0, 1])
    result = split(patterns, target)
    c = result.clusters
    assert c["gain"][0] > 0.01
    assert abs(c["gain"][1]) <= 1e-12 and c["final"][1]
    assert result.final_cluster.tolist() == [1, 1, 1, 1, 3, 3, 4]
    assert c["level"].tolist() == [4, 3, 3, 2, 2] and c["final"].tolist() == [False, True, False, True, True]


def test_eps_rejects_float_noise():
    # Three children each 1 A / 4 B, like their parent: gain 0 on paper, 1.1e-16 in floats.
    patterns = np.array([[0, i // 5] for i in range(15)])
    target = np.array([0, 1, 1, 1, 1] * 3)
    assert split(patterns, target, eps=0.0).clusters["gain"][0] > 0  # noise accepted without eps
    assert len(split(patterns, target).clusters) == 1


def test_one_layer_and_one_instance():
    one = split(np.array([[5]]), np.array([2]))
    assert one.clusters["final"].tolist() == [True] and one.final_cluster.tolist() == [0]
    flat = split(np.array([[0], [0], [1]]), np.array([0, 1, 1]))
    assert flat.clusters["level"].tolist() == [2, 1, 1] and flat.final_cluster.tolist() == [1, 1, 2]


@pytest.mark.parametrize("seed", range(200))
def test_random_data_matches_the_plain_fifo(seed):
    rng = np.random.default_rng(seed)
    n, L = int(rng.integers(1, 60)), int(rng.integers(1, 5))
    patterns = rng.integers(0, int(rng.integers(1, 5)), size=(n, L)) * int(rng.choice([1, 1000]))
    target = rng.integers(0, int(rng.integers(1, 4)), size=n) + int(rng.choice([0, 7]))
    result = split(patterns, target)
    want = reference(patterns.tolist(), target.tolist())
    c = result.clusters
    assert len(c) == len(want)
    for cid, w in enumerate(want):
        assert (c["parent"][cid], c["level"][cid], c["final"][cid]) == (w["parent"], w["level"], w["final"])
        assert members(result, cid) == set(w["members"])
        assert (w["gain"] is None) == np.isnan(c["gain"][cid])
        if w["gain"] is not None:
            assert c["gain"][cid] == pytest.approx(w["gain"], abs=1e-9)
    for i, cid in enumerate(result.final_cluster):
        assert want[cid]["final"] and i in want[cid]["members"]
