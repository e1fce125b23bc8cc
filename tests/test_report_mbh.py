"""The blanket in pictures: after `apd mbh`, the red share of `apd plot plane --class` and of
the report's plane picture is 1 - s as `apd mbh` measured it, counted in the PNG's pixels, and
the report's caption carries the class, coverage and s stored in the graph."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib import pyplot as plt

from tests.browser import CHROMIUM, render
from tests.cli import Apd, one_line_error
from tests.pictures import blanket_red, box_pixels
from tests.stores import copy_store
from toolkit.store import open_store
from toolkit.viz.plane import plane_picture, run_plane

ANCHORS = "5,17,40"
CAPTION = re.compile(r'<figcaption class="blanket" data-class="(\d+)" data-coverage="([^"]+)" data-s="([^"]+)">'
                     r"Blanket of class (\d+) at coverage ([\d.]+) \((\w+) greedy\) in red: s = ([\d.]+)")


@pytest.fixture(scope="module")
def mbh(digits_run, tmp_path_factory):
    """Run `d` (digits test split, the session's 64-16-16-10 net) with `apd mbh` on one plane
    at two coverages, in a copy of the session's store. The tests only read the store."""
    apd = Apd(copy_store(digits_run().store, tmp_path_factory.mktemp("report-mbh")))
    out = apd.json("mbh", "--run", "d", "--anchors", ANCHORS, "--coverage", "0.8,1", "--device", "cpu")
    return apd, out


def plane_box(png: np.ndarray, store: str) -> np.ndarray:
    """The pixels inside the plane's box: the axes' extent of the same picture, drawn here (the
    axes sit at a fixed place of the figure and keep the box's aspect), one pixel trimmed."""
    with open_store(store, read_only=True) as s:
        rp = run_plane(s, "d", [int(a) for a in ANCHORS.split(",")], device="cpu")
    fig = plane_picture(rp.part, rp.anchors_uv, ["a", "b", "c"])
    fig.canvas.draw()
    extent = fig.axes[0].get_window_extent()
    x0, y0, x1, y1 = extent.extents
    height = fig.bbox.height
    plt.close(fig)
    assert png.shape[0] == round(height)
    outside = png[int(height - y1) + 2:int(height - y0) - 2, int(x0) - 3]
    assert (outside == 255).all()  # just left of the box: the figure's white background
    return box_pixels(png, extent)


def red_and_fill(png_bytes: bytes, store: str) -> tuple[float, float]:
    """Red (blanket) pixels among the box's region pixels, and the share of the box that is
    region fill at all (the rest: boundary, anchors, labels, antialiased edges)."""
    rgb = np.rint(mpimg.imread(io.BytesIO(png_bytes), format="png")[:, :, :3] * 255)
    box = plane_box(rgb, store).reshape(-1, 3)
    red = blanket_red(box, 3)
    grey = (box[:, 0] == box[:, 1]) & (box[:, 1] == box[:, 2]) & (box[:, 0] >= 198) & (box[:, 0] <= 243)
    return red.sum() / (red.sum() + grey.sum()), (red.sum() + grey.sum()) / len(box)


def test_plot_plane_red_share_is_one_minus_s(mbh, tmp_path):
    apd, out = mbh
    s = out["planes"][0]["s"]["0.8"]
    classes = sorted((c for c, v in s.items() if 0.05 < v < 0.95), key=lambda c: s[c])
    assert len(classes) >= 2, s  # blankets neither empty nor the whole box
    for cls in (classes[0], classes[-1], *[c for c, v in s.items() if v in (0.0, 1.0)][:1]):
        pic = apd.json("plot", "plane", "--run", "d", "--anchors", ANCHORS, "--class", cls, "--coverage", "0.8",
                       "--out", str(tmp_path / f"p{cls}.png"), "--device", "cpu")
        share, filled = red_and_fill((tmp_path / f"p{cls}.png").read_bytes(), apd.store_path)
        assert filled > 0.95
        assert share == pytest.approx(1 - s[cls], abs=0.01), cls
        assert pic["s"] == pytest.approx(s[cls], abs=1e-9)


def _section(page: str) -> tuple[dict, bytes]:
    found = CAPTION.findall(page)
    assert len(found) == 1, found
    cls, cov, s, cls_t, cov_t, greedy, s_t = found[0]
    assert (cls, float(cov), round(float(s), 4)) == (cls_t, float(cov_t), float(s_t)) and greedy == "individual"
    png = re.search(r'alt="plane partition with blanket" src="data:image/png;base64,([^"]+)"', page).group(1)
    return {"class": int(cls), "coverage": float(cov), "s": float(s)}, base64.b64decode(png)


@pytest.mark.parametrize("args, cls, coverage", [
    ([], "first anchor", 0.8),  # defaults: 0.8 is stored; the first anchor's class
    (["--label", "3", "--coverage", "1"], 3, 1.0),
])
def test_report_draws_the_stored_blanket(mbh, tmp_path, args, cls, coverage):
    apd, out = mbh
    plane = out["planes"][0]
    cls = plane["anchor_labels"][0] if cls == "first anchor" else cls
    path = tmp_path / "r.html"
    info = apd.json("report", "--run", "d", "--out", str(path), "--instances", "100", *args)
    caption, png = _section(path.read_text())
    assert caption == {"class": cls, "coverage": coverage, "s": caption["s"]}
    measured = apd.json("query", "plane_blankets", "-p", "run=d")
    row = [m for m in measured if m["class"] == cls and m["coverage"] == coverage]
    assert len(row) == 1 and row[0]["plane"] == "d:plane:000" and row[0]["anchors"] == ANCHORS
    assert caption["s"] == row[0]["s"] == pytest.approx(plane["s"][f"{coverage:g}"][str(cls)], abs=1e-12)
    blanket = [b for b in apd.json("query", "blankets", "-p", "run=d") if b["class"] == cls and
               b["coverage"] == coverage]
    assert blanket[0]["s"] == pytest.approx(caption["s"], abs=1e-12)  # one plane: mean s = its s
    drawn = info["plane"]["blanket"]
    assert drawn["s_drawn"] == pytest.approx(caption["s"], abs=1e-9) and info["plane"]["regions"] == plane["regions"]
    share, filled = red_and_fill(png, apd.store_path)
    assert filled > 0.95 and share == pytest.approx(1 - caption["s"], abs=0.01)


def test_plane_blankets_query_matches_mbh_and_planes(mbh):
    apd, out = mbh
    measured = apd.json("query", "plane_blankets", "-p", "run=d")
    plane = out["planes"][0]
    expect = {(float(k), int(c)): v for k, per in plane["s"].items() for c, v in per.items()}
    assert {(m["coverage"], m["class"]): m["s"] for m in measured} == pytest.approx(expect, abs=1e-12)
    assert len(measured) == len(expect) == 20
    assert [(m["coverage"], m["class"]) for m in measured] == sorted(expect)
    planes = apd.json("query", "planes", "-p", "run=d")
    assert planes[0]["s"] == pytest.approx(np.mean([m["s"] for m in measured]))


def test_report_refuses_a_coverage_not_stored(mbh, tmp_path):
    apd, _ = mbh
    result = apd("report", "--run", "d", "--out", str(tmp_path / "r.html"), "--coverage", "0.5", ok=False)
    one_line_error(result, "--coverage 0.5 has no stored blankets")
    assert "stored: 0.8, 1" in result.stderr and not list(tmp_path.iterdir())


def test_report_with_anchors_draws_no_blanket(mbh, tmp_path):
    apd, _ = mbh
    info = apd.json("report", "--run", "d", "--out", str(tmp_path / "r.html"), "--anchors", "1,2,3")
    assert "blanket" not in info["plane"] and "<figcaption" not in (tmp_path / "r.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`apt-get install -y chromium`)")
def test_report_with_blanket_renders_in_headless_chromium(mbh, tmp_path):
    apd, _ = mbh
    out = tmp_path / "report.html"
    apd("report", "--run", "d", "--out", str(out), "--instances", "200", "--json")
    seen = render(out, tmp_path / "report.png")
    assert seen["console_errors"] == [] and seen["exceptions"] == [] and seen["remote_requests"] == []
    assert seen["sections"] == ["sankey", "patterns", "flows", "hardness", "plane"]
    assert len(seen["charts"]) == 5 and all(c["svg"] and c["marks"] > 20 for c in seen["charts"])
    assert len(seen["images"]) == 1 and seen["images"][0]["complete"] and seen["images"][0]["width"] > 100



def test_a_blanket_covering_no_region_is_said_not_drawn_grey(mbh, tmp_path, monkeypatch):
    """A class whose blanket covers none of the plane (every class's here covers some: the
    blanket is emptied by hand) gets a caption saying so, and no red-and-grey "s = 1.000"."""
    import toolkit.mbh.runs
    from toolkit.viz.report import build_report

    apd, _ = mbh
    monkeypatch.setattr(toolkit.mbh.runs, "class_blanket",
                        lambda store, run, part, *a, **k: (np.zeros(part.count, dtype=bool), 1.0))
    path = tmp_path / "r.html"
    with open_store(apd.store_path, read_only=True) as s:
        info = build_report(s, "d", path, label=3, instances=50, device="cpu")
    page = path.read_text()
    assert "Class 3 has no blanket region on this plane at coverage 0.8" in page
    assert not CAPTION.findall(page) and info.plane["blanket"]["s_drawn"] == 1.0
