"""Pictures: seconds for the plane picture, the Sankey and the whole report.

- plane picture: the 784-300-100-10 net at init (the regions bench's first plane, ~14k
  regions) drawn to PNG and SVG (partition time not counted);
- Sankey: 60,000 synthetic instances x 4 layers, aggregation (`sankey_data`) and the
  figure's HTML, uncapped-but-readable at 30 nodes per column;
- report: `apd report` on a fresh `apd demo` store (digits, 450 test instances).

Run: .venv/bin/python bench/bench_viz.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import plotly.io as pio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import best  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_regions import anchors, digits784, make_net  # noqa: E402
from tests.apd_synthetic import hierarchical  # noqa: E402
from toolkit.regions import partition, plane_from_anchors  # noqa: E402
from toolkit.store import open_store  # noqa: E402
from toolkit.viz.plane import plane_picture, save_picture  # noqa: E402
from toolkit.viz.report import build_report  # noqa: E402
from toolkit.viz.sankey import sankey_data, sankey_figure  # noqa: E402


def main() -> None:
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-viz-"))

    x, y = digits784()
    idx = anchors(y, 0)
    part = partition(make_net([784, 300, 100, 10], False, 0), plane_from_anchors(*x[idx]), device="cpu",
                     decision=True)
    uv = part.plane.project(x[idx])
    for suffix in (".png", ".svg"):
        sec, out = best(lambda: save_picture(plane_picture(part, uv, [str(i) for i in idx]), tmp / f"p{suffix}"))
        rows.append((f"plane picture, {part.count:,} regions, {suffix[1:].upper()}", sec,
                     f"{out.stat().st_size / 1e6:.1f} MB"))

    patterns, label, pred = hierarchical(60_000, 4, seed=0, error_rate=0.05)
    correct = pred == label
    sec, data = best(lambda: sankey_data(patterns, pred, correct, max_nodes=30))
    rows.append(("Sankey aggregation, 60,000 instances x 4 layers", sec, f"{len(data.label)} nodes, "
                 f"{len(data.value)} links"))
    sec, _ = best(lambda: pio.to_html(sankey_figure([("bench", data)]), full_html=False, include_plotlyjs=False))
    rows.append(("Sankey figure to HTML", sec, ""))

    from loaders.demo import demo

    store = str(tmp / "apd.lbug")
    demo(store, str(tmp / "apd-demo.pt"), progress=False)
    with open_store(store, read_only=True) as s:
        sec, info = best(lambda: build_report(s, "digits-test", tmp / "report.html", instances=0, device="cpu"))
    rows.append(("`apd report` on the demo store (450 instances, unsplit)", sec,
                 f"{info.bytes / 1e6:.1f} MB, plane {info.plane['regions']} regions"))

    print("| step | seconds (loaded machine) | note |\n| --- | --- | --- |")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.3f} | {note} |")


if __name__ == "__main__":
    main()
