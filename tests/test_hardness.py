"""Hardness tables from the graph equal the same analyses done directly in pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.apd_graph import write_run
from tests.apd_synthetic import hierarchical
from toolkit.apd.clusters import split_run
from toolkit.apd.hardness import hardness, size_at_share
from toolkit.apd.splitting import split
from toolkit.errors import ApdError


def test_size_at_share_hand_example():
    sizes = pd.DataFrame({"size": [1, 2, 8], "errors": [5, 4, 1], "forgetting": [0, 0, 0]})
    assert size_at_share(sizes, "errors") == 2  # 5 / 10, then 9 / 10 reaches 90%
    assert size_at_share(sizes, "forgetting") is None


def test_tables_match_pandas(store):
    patterns, label, pred = hierarchical(3000, 4, seed=5, error_rate=0.2)
    forgetting = np.random.default_rng(5).poisson(0.5, len(label))
    write_run(store, "h", patterns, label, pred, forgetting=forgetting)
    with pytest.raises(ApdError, match="apd split --run h"):
        hardness(store, "h")
    split_run(store, "h")
    got = hardness(store, "h")

    final = split(patterns, pred).final_cluster
    size = np.bincount(final)[final]
    inst = pd.DataFrame({"bin": np.floor(np.log2(size)).astype(int), "size": size, "cluster": final,
                         "error": pred != label, "forgetting": forgetting})
    by_bin = inst.groupby("bin").agg(clusters=("cluster", "nunique"), instances=("size", "size"),
                                     errors=("error", "sum"), forgetting=("forgetting", "sum")).reset_index()
    assert got.by_size["size_min"].tolist() == (2 ** by_bin["bin"]).tolist()
    for col in ("clusters", "instances", "errors", "forgetting"):
        assert got.by_size[col].tolist() == by_bin[col].tolist(), col
    assert got.by_size["errors_cum"].iloc[-1] == pytest.approx(1.0)
    assert got.by_size["correct_share"].sum() == pytest.approx(1.0)

    ordered = inst.assign(one=1).sort_values("size")
    for col, key in (("error", "size_90_errors"), ("forgetting", "size_90_forgetting"), ("one", "size_90_instances")):
        cum = ordered[col].cumsum() / ordered[col].sum()
        assert got.summary[key] == ordered["size"][cum >= 0.9].iloc[0]
    assert got.summary["median_size_wrong"] == np.median(size[pred != label])
    assert got.summary["median_size_correct"] == np.median(size[pred == label])
    assert got.summary["forgetting_events"] == forgetting.sum()

    for layer in range(1, 5):
        per = pd.DataFrame({"p": patterns[:, layer - 1], "pred": pred, "error": pred != label})
        pats = per.groupby("p").agg(labels=("pred", "nunique"), n=("pred", "size"), errors=("error", "sum"))
        stable = pats[pats["labels"] == 1]
        row = got.stability[got.stability["layer"] == layer].iloc[0]
        assert row["stable_patterns"] == len(stable) and row["unstable_patterns"] == len(pats) - len(stable)
        assert row["stable_instances"] == stable["n"].sum()
        assert row["stable_errors"] == stable["errors"].sum()
        assert row["unstable_errors"] == pats["errors"].sum() - stable["errors"].sum()
