"""The Neo4j Browser kit (cypher/browser/) in a real Neo4j Browser 5, in headless Chromium.

A digits run goes into the session's Neo4j server through the CLI (ingest, split, flows,
MBH); the test then opens the server's /browser, connects with the password, applies
apd.grass with `:style`, sets each saved query's parameters with `:param` and runs it. Every
drawn node must carry the caption and colours the style gives its label, filled from the
node as the store holds it (so a truncated caption, an unstyled label or a wrong property
fails), the Browser must draw the relationships the store has between those nodes, and the
console must show no error beyond the offline and probing ones that `unexplained` names.

APD_DOCS_SCREENSHOT=docs/neo4j-browser.png also writes the instance_path frame there (the
README's picture).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser import CHROMIUM, chromium
from tests.cli import Apd
from tests.neo4j_server import empty_neo4j
from tests.neo4j_browser import REMOTE_HOSTS, Neo4jBrowser, unexplained
from toolkit.store import open_store

KIT = Path(__file__).resolve().parent.parent / "cypher" / "browser"  # the files a user loads
RUN = "digits-test"


def grass(text: str) -> dict[str, dict[str, str]]:
    """A grass file's rules: selector -> {property: value} (quotes around values dropped)."""
    return {sel: dict((k.strip(), v.strip().strip("'\"")) for k, v in re.findall(r"([\w-]+):\s*([^;]+);", body))
            for sel, body in re.findall(r"^([\w.]+) \{(.*?)^\}", text, re.S | re.M)}


def expected_nodes(store, query: str, params: dict, style: dict) -> tuple[list[dict], int]:
    """The nodes a saved query returns, each as the style should draw it, and the number of
    relationships the store holds between them: straight from the store, not from Browser."""
    rows = store.read(query, params)
    uids = sorted({u for c in rows.columns for v in rows[c] if (u := getattr(v, "get", lambda _: None)("uid"))})
    nodes = store.read("MATCH (n) WHERE n.uid IN $uids RETURN labels(n) AS labels, properties(n) AS props",
                       {"uids": uids})
    want = []
    for labels, props in zip(nodes["labels"], nodes["props"]):
        (label,) = labels
        rule = {**style["node"], **style[f"node.{label}"]}
        # Browser prints numbers as Cypher does, as Python's str does: 3, 0.8, 1.0 (a float keeps its point)
        caption = re.sub(r"\{(\w+)\}", lambda m: str(props[m[1]]), rule["caption"])
        want.append({"caption": caption, "fill": rule["color"], "stroke": rule["border-color"]})
    rels = store.read("MATCH (a)-[r]->(b) WHERE a.uid IN $uids AND b.uid IN $uids RETURN count(r) AS n",
                      {"uids": uids})
    return want, int(rels["n"].iloc[0])


@pytest.fixture
def bolt(neo4j_server, tmp_path):
    """The server holding one digits run with clusters, flows and MBH blankets (via the CLI)."""
    from loaders.train import train

    if neo4j_server["http"] is None:
        pytest.skip("APD_NEO4J_URI names an outside server: its Browser address is unknown")
    empty_neo4j(neo4j_server["bolt"])
    apd, model = Apd(neo4j_server["bolt"]), tmp_path / "digits.pt"
    train("digits", [32, 32, 32], epochs=5, out=model, seed=0, progress=False)
    apd("ingest", str(model), "--dataset", "digits", "--split", "test", "--run", RUN, "--device", "cpu")
    apd("split", "--run", RUN)
    apd("flows", "--run", RUN)
    apd("mbh", "--run", RUN, "--anchors", "5,17,40", "--coverage", "0.8,1", "--device", "cpu")
    return neo4j_server["bolt"]


def parameters(store) -> dict[str, dict]:
    """Each saved query's parameters, chosen from the store: the top 3 flows, the lowest class
    with a blanket, the largest final cluster of at most 8 instances, the first misclassified
    instance."""
    def one(text: str) -> int:
        return store.read(text, {"run": RUN}).iloc[0, 0].item()

    return {
        "top_flows": {"run": RUN, "top": 3},
        "blanket_patterns": {"run": RUN, "class": one(
            "MATCH (b:Blanket) WHERE b.run = $run RETURN min(b.class) AS c")},
        "cluster_instances": {"run": RUN, "cid": one(
            "MATCH (i:Instance)-[:`IN`]->(c:Cluster) WHERE c.run = $run WITH c, count(i) AS n WHERE n <= 8 "
            "RETURN c.cid AS cid ORDER BY n DESC, cid LIMIT 1")},
        "instance_path": {"run": RUN, "idx": one(
            "MATCH (i:Instance) WHERE i.run = $run AND NOT i.correct RETURN min(i.idx) AS idx")},
    }


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (`apt-get install -y chromium`)")
def test_saved_queries_draw_styled_graphs_in_neo4j_browser(bolt, neo4j_server, tmp_path):
    style_text = (KIT / "apd.grass").read_text()
    style = grass(style_text)
    assert sorted(p.stem for p in KIT.glob("*.cypher")) == ["blanket_patterns", "cluster_instances",
                                                           "instance_path", "top_flows"]
    with open_store(bolt, read_only=True) as store:
        chosen = parameters(store)
        want = {name: expected_nodes(store, (KIT / f"{name}.cypher").read_text(), p, style)
                for name, p in chosen.items()}
    with chromium(width=1400, height=900) as page:
        browser = Neo4jBrowser(page, neo4j_server["http"])
        browser.connect(bolt, "neo4j", neo4j_server["password"])
        assert "node.Pattern {" in browser.run(":style " + style_text)  # the frame shows the style now set
        for name, params in chosen.items():
            for key, value in params.items():
                browser.run(f":param {key} => {value!r}")
            browser.run((KIT / f"{name}.cypher").read_text())
            nodes, rels = want[name]
            assert nodes and rels, name  # an empty answer would test nothing
            drawn = browser.graph(len(nodes))
            page.screenshot(tmp_path / f"{name}.png")
            assert sorted(drawn["nodes"], key=str) == sorted(nodes, key=str), name
            assert drawn["relationships"] == rels, name
            if name == "instance_path" and os.environ.get("APD_DOCS_SCREENSHOT"):
                browser.frame_screenshot(Path(os.environ["APD_DOCS_SCREENSHOT"]))
        assert unexplained(page.console_errors(), bolt) == []
        assert page.exceptions() == []
        remote = {urlsplit(u).hostname for u in page.requests()} - {"127.0.0.1", None}
        assert remote <= set(REMOTE_HOSTS), remote - set(REMOTE_HOSTS)
    for name in chosen:
        shot = (tmp_path / f"{name}.png").read_bytes()
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 30_000, name
