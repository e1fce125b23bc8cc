"""`apd report`, the Sankey counts, and the report rendered in a real (headless) browser."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.browser import CHROMIUM, render
from tests.cli import one_line_error
from toolkit.apd.runs import read_patterns
from toolkit.store import open_store
from toolkit.viz.sankey import sankey_data

RUN = "digits-test"


def graph_counts(store, run: str) -> tuple[int, int]:
    """APD nodes (patterns + labels) and edges (NEXT + PREDICTS) as the graph holds them."""
    n = store.read("MATCH (p:Pattern) WHERE p.run = $run RETURN count(p) AS n", {"run": run})["n"].iloc[0]
    n += store.read("MATCH (l:Label) WHERE l.run = $run RETURN count(l) AS n", {"run": run})["n"].iloc[0]
    e = store.read("MATCH (a:Pattern)-[r:NEXT]->(b:Pattern) WHERE a.run = $run RETURN count(r) AS n", {"run": run})
    e2 = store.read("MATCH (a:Pattern)-[r:PREDICTS]->(b:Label) WHERE a.run = $run RETURN count(r) AS n", {"run": run})
    return int(n), int(e["n"].iloc[0] + e2["n"].iloc[0])


def pandas_counts(rows: pd.DataFrame, keep: np.ndarray) -> tuple[int, int, pd.DataFrame]:
    """Nodes, links and per-link instances/errors of the subset `keep` (idx values), by pandas merges."""
    sub = rows[rows["idx"].isin(keep)]
    wide = sub.pivot(index="idx", columns="layer", values="key")
    per = sub.drop_duplicates("idx").set_index("idx")
    wide["pred"] = "pred" + per["pred"].astype(str)
    cols = list(wide.columns)
    nodes = sum(wide[c].nunique() for c in cols)
    links = pd.concat([wide[[a, b]].set_axis(["s", "t"], axis=1).assign(col=j, err=~per["correct"].astype(bool))
                       for j, (a, b) in enumerate(zip(cols[:-1], cols[1:]))])
    per_link = links.groupby(["col", "s", "t"]).agg(value=("err", "size"), errors=("err", "sum")).reset_index()
    return nodes, len(per_link), per_link


def test_sankey_of_all_instances_equals_the_graph(demo_store):
    with open_store(demo_store, read_only=True) as s:
        data = read_patterns(s, RUN)
        nodes, edges = graph_counts(s, RUN)
    d = sankey_data(data.patterns, data.pred, data.correct, max_nodes=10**6)
    assert (len(d.label), len(d.value)) == (nodes, edges)
    layers = data.patterns.shape[1]
    # every column and every transition carries every instance once
    assert np.bincount(d.column, weights=d.size).tolist() == [len(data.idx)] * (layers + 1)
    assert np.bincount(d.column[d.source], weights=d.value).tolist() == [len(data.idx)] * layers
    assert d.link_errors.sum() == layers * (~data.correct).sum()


@pytest.mark.parametrize("label, instances", [(3, 0), (None, 120), (7, 20)])
def test_sankey_of_a_subset_equals_pandas(demo_store, label, instances):
    from toolkit.viz.report import choose_instances

    with open_store(demo_store, read_only=True) as s:
        data = read_patterns(s, RUN)
    rows = choose_instances(data, label, instances, seed=4)
    keep = data.idx[rows]
    if label is not None:
        assert (data.label[rows] == label).all()
    assert len(rows) == (instances or int((data.label == label).sum()))
    d = sankey_data(data.patterns[rows], data.pred[rows], data.correct[rows], max_nodes=10**6)
    nodes, links, per_link = pandas_counts(data.frame, keep)
    assert (len(d.label), len(d.value)) == (nodes, links)
    assert sorted(d.value.tolist()) == sorted(per_link["value"].tolist())
    assert sorted(zip(d.value.tolist(), d.link_errors.tolist())) == sorted(
        zip(per_link["value"].tolist(), per_link["errors"].tolist()))


def test_sankey_caps_columns_with_an_other_bucket():
    rng = np.random.default_rng(0)
    patterns = rng.integers(0, 40, size=(1000, 2))
    patterns[:300, 0] = 5  # a clear largest pattern
    pred = rng.integers(0, 10, 1000)
    d = sankey_data(patterns, pred, rng.random(1000) < 0.9, max_nodes=6)
    assert np.bincount(d.column).tolist() == [6, 6, 6]
    assert d.other.sum() == 3 and d.label[0] == "L1 #1" and d.size[0] == (patterns[:, 0] == 5).sum()
    assert d.full[0] == "pattern 5" and not d.by_pred.any()  # the rest is not most of a column: one "other"
    top = pd.Series(patterns[:, 1]).value_counts().sort_values(ascending=False, kind="stable")
    col1 = d.size[d.column == 1]
    assert col1[-1] == 1000 - np.sort(top.to_numpy())[::-1][:5].sum()  # "other" = the rest
    assert np.bincount(d.column, weights=d.size).tolist() == [1000] * 3


def test_nearly_unique_columns_are_pooled_per_predicted_label():
    """A wide net: every instance its own layer-1 pattern, a few shared layer-2 patterns. The
    rest of a capped column goes to one "other" node per predicted label (counts by pandas),
    no single-instance pattern is drawn, and nodes sit by majority predicted label."""
    rng = np.random.default_rng(1)
    n = 400
    pred = rng.integers(0, 4, n)
    patterns = np.column_stack([np.arange(n), np.where(np.arange(n) < 60, np.arange(n) % 6, 1000 + np.arange(n))])
    d = sankey_data(patterns, pred, rng.random(n) < 0.8, max_nodes=8)
    assert d.own.tolist() == [n, n - 60] and d.by_pred[:2].tolist() == [True, True]
    col0 = d.column == 0
    assert d.other[col0].all() and [d.label[i] for i in np.flatnonzero(col0)] == [
        f"L1 other (pred {c})" for c in range(4)]
    assert d.size[col0].tolist() == pd.Series(pred).value_counts().sort_index().tolist()
    col1 = np.flatnonzero(d.column == 1)
    kept = col1[~d.other[col1]]
    assert [d.label[i] for i in kept] == ["L2 #1", "L2 #2", "L2 #3", "L2 #4"]  # 8 nodes - 4 per-label pools
    assert d.size[kept].tolist() == [10] * 4 and d.size[col1].sum() == n
    pooled = pd.Series(pred[patterns[:, 1] >= 4]).value_counts().sort_index()
    assert d.size[col1[d.other[col1]]].tolist() == pooled.tolist()
    assert (d.purity[col0] == 1).all() and d.major[col0].tolist() == [0, 1, 2, 3]
    from toolkit.viz.sankey import node_positions

    _, y = node_positions(d)
    assert (np.diff(y[col0]) > 0).all()  # pred 0's pool at the top, pred 3's at the bottom


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
def test_report_on_the_demo_store(apd, demo_store, tmp_path):
    apd.store_path = demo_store
    out = tmp_path / "report.html"
    info = apd.json("report", "--run", RUN, "--out", str(out), "--instances", "200", "--label", "4")
    assert info["sections"] == ["sankey", "patterns", "flows", "hardness", "plane"]
    fours = apd.json("cypher", "MATCH (i:Instance) WHERE i.run = 'digits-test' AND i.label = 4 RETURN count(i) AS n")
    assert info["instances"] == min(200, fours[0]["n"])
    assert info["sankey"][0]["instances"] == info["instances"]
    assert "skipped" not in info["plane"] and info["plane"]["regions"] > 100
    page = out.read_text()
    assert page.count('class="plotly-graph-div"') == 5  # a test split: no forgetting chart, a sentence instead
    assert "No forgetting events of true label 4: forgetting is tracked on the train split; this run is digits/test" in page
    assert "None" not in re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert page.count("define(\"plotly\"") <= 1 and "<script src=" not in page  # plotly.js inlined once, no CDN
    assert 'src="data:image/png;base64,' in page
    assert info["bytes"] == out.stat().st_size and 3e6 < info["bytes"] < 12e6


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
def test_unsplit_run_gets_the_same_clusters_in_memory(apd, demo_store, tmp_path):
    apd.store_path = demo_store
    before = apd.json("report", "--run", RUN, "--out", str(tmp_path / "a.html"))
    apd("split", "--run", RUN)
    after = apd.json("report", "--run", RUN, "--out", str(tmp_path / "b.html"))
    assert before["points_90"] == after["points_90"]
    # the sizes at 90%, from the stored final clusters by pandas: the smallest cluster size s
    # whose clusters of size <= s hold 90% of the instances / errors / forgetting events
    with open_store(demo_store, read_only=True) as s:
        inst = s.read("MATCH (i:Instance) WHERE i.run = $run RETURN i.cluster AS cluster, i.correct AS correct, "
                      "i.forgetting AS forgetting", {"run": RUN})
    inst["size"] = inst.groupby("cluster")["cluster"].transform("size")
    inst["errors"], inst["instances"] = (~inst["correct"].astype(bool)).astype(int), 1
    per_size = inst.groupby("size")[["instances", "errors", "forgetting"]].sum()
    for col in ("instances", "errors", "forgetting"):
        total = per_size[col].sum()
        want = (int(per_size.index[(per_size[col].cumsum() >= 0.9 * total).to_numpy().argmax()]) if total
                else "no forgetting events" if col == "forgetting" else f"no {col}")
        assert after["points_90"][f"size_90_{col}"] == want, col
    assert after["points_90"]["size_90_errors"] > 1  # not only singletons hold the errors


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
def test_report_with_snapshot_runs_side_by_side(apd, demo_store, tmp_path):
    apd.store_path = demo_store
    model = apd.json("runs")[0]["model"]
    apd("ingest", model, "--split", "test", "--run", "digits-test@again", "--device", "cpu", "--json")
    info = apd.json("report", "--run", RUN, "--runs", "digits-test*", "--out", str(tmp_path / "r.html"),
                    "--instances", "50")
    first, second = info["sankey"]
    assert (first["run"], second["run"]) == (RUN, "digits-test@again")  # same epoch: by name
    assert {k: v for k, v in first.items() if k != "run"} == {k: v for k, v in second.items() if k != "run"}
    one_line_error(apd("report", "--run", RUN, "--runs", "digits-t*", "--out", str(tmp_path / "x.html"), ok=False),
                   "snapshots of one split")


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
@pytest.mark.parametrize("args, message", [
    (["--run", "nope", "--out", "r.html"], "nope"),
    (["--run", RUN, "--out", "r.pdf"], ".html"),
    (["--run", RUN, "--out", "r.html", "--label", "42"], "true label 42"),
    (["--run", RUN, "--out", "r.html", "--runs", "zz*"], "zz*"),
    (["--run", RUN, "--out", "r.html", "--anchors", "1,2"], "--anchors"),
])
def test_report_errors_are_one_line_and_write_nothing(apd, demo_store, tmp_path, monkeypatch, args, message):
    apd.store_path = demo_store
    monkeypatch.chdir(tmp_path)
    one_line_error(apd("report", *args, ok=False), message)
    assert not list(tmp_path.glob("r.*")) and not list(tmp_path.glob(".r.*"))


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`apt-get install -y chromium`)")
def test_report_renders_in_headless_chromium(apd, demo_store, tmp_path):
    apd.store_path = demo_store
    out = tmp_path / "report.html"
    apd("report", "--run", RUN, "--out", str(out), "--instances", "300", "--json")
    seen = render(out, tmp_path / "report.png")
    assert seen["console_errors"] == [] and seen["exceptions"] == []
    assert seen["remote_requests"] == []  # offline: nothing fetched
    assert seen["sections"] == ["sankey", "patterns", "flows", "hardness", "plane"]
    assert len(seen["charts"]) == 5
    for chart in seen["charts"]:
        assert chart["svg"] and chart["marks"] > 20 and chart["width"] > 100 and chart["height"] > 100, chart
    assert seen["images"] and all(i["complete"] and i["width"] > 100 for i in seen["images"])
    shot = (tmp_path / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000


def test_snapshot_runs_in_numeric_epoch_order_with_the_reports_run(store):
    """Epochs sort as numbers (10 after 9), the report's own run takes its epoch's place even
    when the glob misses it, and runs the glob does not name stay out."""
    from tests.apd_graph import write_run
    from toolkit.apd.runs import snapshot_runs

    rng = np.random.default_rng(0)
    patterns, label = rng.integers(0, 3, (30, 2)), rng.integers(0, 3, 30)
    for run, epoch in (("m@e10", 10), ("m@e9", 9), ("m@e2", 2), ("final", 5), ("other", 1)):
        write_run(store, run, patterns, label, label, epoch=epoch)
    assert snapshot_runs(store, "m@e*") == ["m@e2", "m@e9", "m@e10"]
    assert snapshot_runs(store, "m@e*", also="final") == ["m@e2", "final", "m@e9", "m@e10"]
    with pytest.raises(Exception, match="no run matches 'zz\\*'"):
        snapshot_runs(store, "zz*", also="final")
