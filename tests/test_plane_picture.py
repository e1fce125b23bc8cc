"""`apd plot plane` and `plane_picture`: files written by suffix, the blanket's red area is
the mask's area, and bad input fails in one line."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.cli import one_line_error
from tests.pictures import blanket_red, box_pixels
from toolkit.regions import partition, plane_from_anchors
from toolkit.viz.plane import default_anchors, plane_picture

RUN = "digits-test"


def red_share(fig) -> float:
    """Share of the axes' pixels drawn in the blanket red (exact colour, antialiasing off)."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    return float(blanket_red(box_pixels(img, fig.axes[0].get_window_extent()), 2).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_red_share_equals_the_masks_area_share(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    x = np.random.default_rng(seed).normal(size=(3, 5))
    part = partition(model, plane_from_anchors(*x))
    mask = np.random.default_rng(seed).random(part.count) < 0.4  # a hand-made "blanket"
    share = float(part.area[torch.from_numpy(mask)].sum() / part.plane.box_area)
    fig = plane_picture(part, np.zeros((0, 2)), [], blanket=mask, s=1 - share, size=5, dpi=100)
    assert part.count > 30 and 0.1 < share < 0.9
    assert red_share(fig) == pytest.approx(share, abs=0.01)  # ~500 x 450 pixels
    assert "s = " in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="blanket mask"):
        plane_picture(part, np.zeros((0, 2)), [], blanket=mask[:-1])


def test_default_anchors_take_three_labels():
    labels = np.array([4, 4, 1, 7, 1, 0, 9])
    assert default_anchors(labels) == [0, 2, 5]  # first 0, 1 and 4
    assert default_anchors(labels, first=9) == [2, 5, 6]  # 9 first, then 0 and 1


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_plane_writes_png_and_svg(apd, demo_store, tmp_path, suffix, magic):
    apd.store_path = demo_store
    out = tmp_path / f"plane{suffix}"
    info = apd.json("plot", "plane", "--run", RUN, "--anchors", "0,3,14", "--out", str(out))
    regions = apd.json("regions", "--run", RUN, "--anchors", "0,3,14")["regions"]
    assert info["regions"] == regions and info["anchors"] == [0, 3, 14]
    data = out.read_bytes()
    assert data.startswith(magic) and info["bytes"] == len(data) > 10_000
    if suffix == ".svg":
        assert b"<svg" in data


@pytest.mark.embedded_only  # the demo store is a LadybugDB file; the Neo4j leg would run the same
@pytest.mark.parametrize("args, message", [
    (["--anchors", "0,3,14", "--out", "plane.jpg"], ".png or .svg"),
    (["--anchors", "0,3", "--out", "plane.png"], "--anchors"),
    (["--anchors", "0,3,99999", "--out", "plane.png"], "out of range"),
    (["--anchors", "0,3,14", "--out", "plane.png", "--class", "42"], "class 42 has no samples"),
    (["--anchors", "0,3,14", "--out", "plane.png", "--class", "3", "--coverage", "1.5"], "(0, 1]"),
    (["--anchors", "0,3,14", "--out", "missing/plane.png"], "does not exist"),
])
def test_plot_plane_errors(apd, demo_store, tmp_path, monkeypatch, args, message):
    apd.store_path = demo_store
    monkeypatch.chdir(tmp_path)
    one_line_error(apd("plot", "plane", "--run", RUN, *args, ok=False), message)
    assert not list(tmp_path.rglob("plane*"))
    one_line_error(apd("plot", "plane", "--run", "nope", "--anchors", "0,1,2", "--out", "p.png", ok=False), "nope")


@pytest.mark.parametrize("corner", [(0.99, 0.99), (0.01, 0.01), (0.99, 0.01), (0.01, 0.99)])
def test_title_and_anchor_labels_are_never_clipped(corner):
    """A long title wraps and anchor labels near any edge of the box face its centre: every
    text's drawn extent lies inside the figure (and the labels inside the box)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    part = partition(model, plane_from_anchors(*np.random.default_rng(0).normal(size=(3, 4))))
    umin, umax, vmin, vmax = part.plane.box
    uv = np.array([[umin + corner[0] * (umax - umin), vmin + corner[1] * (vmax - vmin)]] * 2)
    title = "MBH plane fashion-mnist-test-with-a-long-name:plane:000 through instances [1234, 5678, 9012] " * 2
    fig = plane_picture(part, uv, ["#98765 (label 7, a long anchor label)", "#1"], title=title, size=5, dpi=100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box, page = fig.axes[0].get_window_extent(), fig.bbox
    texts = [t for t in fig.axes[0].texts]
    assert len(texts) == 2 and "\n" in fig.axes[0].title.get_text()
    for t in [fig.axes[0].title, *texts]:
        e = t.get_window_extent(renderer)
        assert page.x0 <= e.x0 and e.x1 <= page.x1 and page.y0 <= e.y0 and e.y1 <= page.y1, (t.get_text(), e)
    for t in texts:
        e = t.get_window_extent(renderer)
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, t.get_text()
