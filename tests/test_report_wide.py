"""`apd report` on a wide net, where nearly every instance has a pattern of its own (as on a
784-300-100 Fashion-MNIST MLP): every chart still says something, checked from the figures'
data embedded in the page (not its pixels), and the page renders in headless Chromium.

The fixture is a 784-300-100-10 MLP, the net people study, trained 3 epochs on digits
scaled up to 28 x 28 (offline, seconds): like the Fashion-MNIST net its first layer gives
every test instance its own pattern, which is what made the report degenerate.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.browser import CHROMIUM, render
from tests.cli import Apd
from tests.stores import Built
from toolkit.apd.coarsen import DEFAULT_K, coarse_patterns
from toolkit.apd.runs import read_patterns
from toolkit.store import open_store
from toolkit.viz.sankey import LABELLED_SHARE

pytestmark = pytest.mark.embedded_only  # the session's digits stores are LadybugDB files


@pytest.fixture(scope="module")
def wide784(tmp_path_factory) -> Built:
    """A 784-300-100-10 MLP on the digits scaled to 28 x 28 (nearest pixel) and a store holding
    its test split as run `d`."""
    from loaders.train import train

    root = tmp_path_factory.mktemp("wide784")
    digits = load_digits()
    pixel = np.arange(28) * 8 // 28
    x = digits.images[:, pixel][:, :, pixel].reshape(len(digits.images), 784) / 16.0
    data = root / "digits28.npz"
    np.savez(data, x=x.astype(np.float32), y=digits.target)
    model = root / "m.pt"
    train(f"npz:{data}", [300, 100], epochs=3, out=model, progress=False)
    store = str(root / "s.lbug")
    Apd(store).json("ingest", str(model), "--dataset", f"npz:{data}", "--split", "test", "--run", "d", "--device", "cpu")
    return Built(store, str(model))


@pytest.fixture(scope="module")
def wide(wide784, tmp_path_factory):
    """The wide run `d`, its report (every test instance drawn) and the figures in the page."""
    built = wide784
    out = tmp_path_factory.mktemp("wide-report") / "r.html"
    info = Apd(built.store).json("report", "--run", "d", "--out", str(out), "--instances", "0", "--device", "cpu",
                                 "--sankey", "exact")
    page = out.read_text()
    with open_store(built.store, read_only=True) as s:
        data = read_patterns(s, "d")
    return info, page, figures(page), data, out


def figures(page: str) -> dict[str, list[dict]]:
    """Per section id, the plotly traces of its charts as embedded in the page (Plotly.newPlot's data)."""
    out: dict[str, list[dict]] = {}
    for sec in re.finditer(r'<section id="(\w+)">(.*?)</section>', page, re.S):
        for call in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', sec.group(2)):
            traces, _ = json.JSONDecoder().raw_decode(sec.group(2), call.end())
            out.setdefault(sec.group(1), []).append(traces)
    return out


def values(v) -> np.ndarray:
    """A trace's array as plotly embeds it: a list, or a typed array {dtype, bdata (base64)[, shape]}."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(k) for k in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)


def test_the_fixture_is_wide(wide):
    _, _, _, data, _ = wide
    own = [len(np.unique(data.patterns[:, j])) / len(data.idx) for j in range(2)]
    assert own[0] > 0.95, own  # nearly every instance its own layer-1 pattern, as on Fashion-MNIST


def test_sankey_pools_per_predicted_label_and_says_why(wide):
    info, page, figs, data, _ = wide
    (sankey,) = figs["sankey"][0]
    nodes = sankey["node"]
    instances = np.array([c[1] for c in nodes["customdata"]])
    n = len(data.idx)
    names = [c[4] for c in nodes["customdata"]]  # every node's name (tiny nodes show it on hover only)
    layer1 = [i for i, t in enumerate(names) if t.startswith("L1 ")]
    assert instances[layer1].sum() == n and instances[layer1].max() < 0.5 * n  # no "other" is the column
    assert all(re.fullmatch(r"L1 (#\d+|other \(pred \d+\))", names[i]) for i in layer1)
    keys = np.unique(data.frame["key"].astype(str))
    assert {c[0] for i, c in enumerate(nodes["customdata"]) if names[i].startswith("L2 #")} <= {
        f"pattern {k}" for k in keys}  # the full key on hover
    assert info["sankey"][0]["other_by_pred"][0] and "Patterns are nearly unique here" in page
    assert info["sankey"][0]["own_pattern"][0] == int((np.unique(data.patterns[:, 0], return_counts=True)[1] == 1).sum())


def test_by_default_a_wide_run_gets_the_coarse_sankey(wide784, tmp_path):
    """auto draws the coarse APD (10 label-informative neurons per layer) when patterns are
    nearly unique: its layer-1 nodes are the largest groups of the instances on those neurons."""
    built = wide784
    out = tmp_path / "r.html"
    info = Apd(built.store).json("report", "--run", "d", "--out", str(out), "--instances", "0", "--device", "cpu")
    page = out.read_text()
    with open_store(built.store, read_only=True) as s:
        coarse = coarse_patterns(s, "d", DEFAULT_K)
    (sankey,) = figures(page)["sankey"][0]
    nodes = sankey["node"]
    sizes = np.array([c[1] for c in nodes["customdata"]])
    names = [c[4] for c in nodes["customdata"]]  # every node's name (tiny nodes show it on hover only)
    layer1 = [i for i, t in enumerate(names) if t.startswith("L1 ")]
    kept = [i for i in layer1 if not names[i].startswith("L1 other")]
    groups = np.sort(np.unique(coarse.ids[:, 0], return_counts=True)[1])[::-1]
    assert len(kept) > 5 and sorted(sizes[kept].tolist(), reverse=True) == groups[:len(kept)].tolist()
    assert sizes[layer1].sum() == len(coarse.ids) and info["sankey"][0]["other_share"] < 0.5
    assert "coarse APD" in page and "Patterns are nearly unique here" not in page
    shown = [bool(nodes["label"][i]) for i in layer1]  # labels only on nodes thick enough to hold one
    assert shown == [bool(sizes[i] >= LABELLED_SHARE * len(coarse.ids)) for i in layer1] and any(shown)


def test_without_its_model_a_wide_run_gets_the_exact_sankey_and_the_reason(wide784, tmp_path):
    """auto needs the model for the coarse APD; a report still comes out, as without a plane."""
    model = tmp_path / "gone.pt"
    shutil.copy(wide784.model, model)
    store = str(tmp_path / "s.lbug")
    data = f"npz:{Path(wide784.model).parent / 'digits28.npz'}"
    Apd(store).json("ingest", str(model), "--dataset", data, "--split", "test", "--run", "d", "--device", "cpu")
    model.unlink()
    out = tmp_path / "r.html"
    info = Apd(store).json("report", "--run", "d", "--out", str(out), "--device", "cpu")
    page = out.read_text()
    assert "exact patterns (no coarse APD: " in page and "is gone" in page
    assert info["sankey"][0]["other_by_pred"][0]  # the exact wide-net Sankey, pooled per predicted label
    assert "is gone" in info["plane"]["skipped"]  # the plane picture says the same, as before


def test_flows_and_cluster_sizes_have_several_bins(wide):
    _, _, figs, data, _ = wide
    panels = [[values(t["y"]) for t in figs["flows"][0] if t.get("xaxis", "x") == axis] for axis in ("x", "x2", "x3")]
    flows = [int(np.sum(p)) for p in panels]
    assert flows == [len(data.idx)] * 3  # every flow once in each panel; here each its own instance
    by_label = np.sum(panels[2], axis=0)
    assert (by_label > 0).sum() > 1, by_label  # structure although every flow is a singleton
    assert by_label.tolist() == np.bincount(data.pred, minlength=len(by_label)).tolist()
    correct, wrong = figs["hardness"][0][:2]
    correct, wrong = values(correct["y"]), values(wrong["y"])
    assert (correct > 0).sum() > 1  # not one flat box at size 1
    assert correct.sum() + wrong.sum() == len(data.idx) and wrong.sum() == int((~data.correct).sum())


def test_no_forgetting_chart_on_a_test_split_but_a_sentence(wide):
    info, page, figs, _, _ = wide
    assert len(figs["hardness"]) == 2  # cluster sizes and the cumulative shares; no empty forgetting chart
    assert "forgetting is tracked on the train split; this run is npz:" in page
    assert info["points_90"]["size_90_forgetting"] == "no forgetting events"
    assert "None" not in re.sub(r"<script.*?</script>", "", page, flags=re.S)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`apt-get install -y chromium`)")
def test_wide_report_renders_in_headless_chromium(wide, tmp_path):
    _, _, _, _, out = wide
    seen = render(out, tmp_path / "wide-report.png")  # the screenshot stays in the test's tmp dir
    assert seen["console_errors"] == [] and seen["exceptions"] == [] and seen["remote_requests"] == []
    assert seen["sections"] == ["sankey", "patterns", "flows", "hardness", "plane"]
    assert len(seen["charts"]) == 5 and all(c["svg"] and c["marks"] > 20 for c in seen["charts"])
    assert (tmp_path / "wide-report.png").stat().st_size > 50_000
