"""Neo4j Browser 5 driven as a user drives it, on a `tests.browser.Page`: the connect form,
the editor (commands pasted, then the Run button), and the graph a result frame draws.

Selectors are the Browser's own `data-testid` attributes (those its e2e tests use) and the
SVG of its graph view (`g.node` with `circle.b-outline` and `text.caption` lines).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.browser import Page

EDITOR = '[data-testid="activeEditor"] textarea'
FRAMES = 'document.querySelectorAll(\'[data-testid="frame"]\')'  # newest first

# The command line of the newest frame, whitespace collapsed (as the frame shows it).
_NEWEST_COMMAND = ("(c => c && c.textContent.split(/\\s+/).join(' ').trim())"
                   f"({FRAMES}[0]?.querySelector('[data-testid=\"frameCommand\"]'))")

# Every drawn node of the newest frame: its caption (the lines joined), fill and stroke.
_NODES = f"""Array.from({FRAMES}[0].querySelectorAll('svg g.node')).map(g => ({{
  caption: Array.from(g.querySelectorAll('text.caption')).map(t => t.textContent.trim()).join(' '),
  fill: g.querySelector('circle.b-outline').getAttribute('fill'),
  stroke: g.querySelector('circle.b-outline').getAttribute('stroke'),
  at: g.getAttribute('transform')}}))"""


class Neo4jBrowser:
    """One Browser tab: connect once, then run commands and read the graphs they draw."""

    def __init__(self, page: Page, http: str):
        self.page = page
        self.http = http

    def connect(self, bolt: str, user: str, password: str, timeout: float = 60.0) -> None:
        """Open /browser/, fill the connect form and wait for 'You are connected as user ...'."""
        self.page.navigate(f"{self.http}/browser/")
        self.page.type_into('input[data-testid="boltaddress"]', bolt)
        self.page.type_into('input[data-testid="username"]', user)
        self.page.type_into('input[data-testid="password"]', password)
        self.page.click('button[data-testid="connect"]')
        self.page.wait_until(f"Array.from({FRAMES}).some(f => f.innerText.includes("
                             f"{json.dumps('You are connected as user ' + user)}))", timeout, "connected")

    def run(self, command: str, timeout: float = 30.0) -> str:
        """Paste `command` into the editor, press Run, wait for its frame; return the frame's text."""
        self.page.paste(EDITOR, command)
        self.page.click('[data-testid="editor-Run"]')
        self.page.wait_until(f"{_NEWEST_COMMAND} === {json.dumps(' '.join(command.split()))}", timeout,
                             f"a frame for {command[:60]!r}")
        return self.page.evaluate(f"JSON.stringify({FRAMES}[0].innerText)")

    def graph(self, nodes: int, timeout: float = 30.0) -> dict:
        """Wait until the newest frame draws `nodes` nodes and the layout stops moving; return
        its nodes (caption, fill, stroke) and its number of drawn relationships."""
        self.page.wait_until(f"{FRAMES}[0].querySelectorAll('svg g.node').length === {nodes}", timeout,
                             f"a graph of {nodes} nodes")
        end, last = time.monotonic() + timeout, None
        while True:  # the force layout settles within seconds
            drawn = self.page.evaluate(f"JSON.stringify({_NODES})")
            if drawn == last or time.monotonic() > end:
                break
            last = drawn
            time.sleep(0.5)
        rels = self.page.evaluate(f"JSON.stringify({FRAMES}[0].querySelectorAll('svg g.relationship').length)")
        return {"nodes": [{k: n[k] for k in ("caption", "fill", "stroke")} for n in drawn], "relationships": rels}

    def frame_screenshot(self, path: Path) -> None:
        """A PNG of the newest frame only (its editor line, graph and overview)."""
        box = self.page.evaluate(f"JSON.stringify((r => ({{x: r.x, y: r.y, width: r.width, height: r.height}}))"
                                 f"({FRAMES}[0].getBoundingClientRect()))")
        self.page.screenshot(path, clip={**box, "scale": 1})


# What Neo4j Browser 5.24 fetches from the internet (the tests' Chromium resolves no remote
# host, so each fails with ERR_NAME_NOT_RESOLVED, in CI too, and nothing leaves the machine).
REMOTE_HOSTS = {
    "fonts.googleapis.com": "index.html links two Google Fonts; the page falls back to local fonts",
    "canny.io": "the feedback widget's script",
    "cdn.segment.com": "usage analytics, loaded once the Browser connects",
    "o110884.ingest.sentry.io": "Sentry: performance traces sampled at random (20%), crash reports",
}


def unexplained(errors: list[dict], bolt: str) -> list[dict]:
    """The console errors left after the Browser's known offline and probing failures:
    a remote host of REMOTE_HOSTS that did not resolve, and the Browser's discovery probe of
    the Bolt address over plain HTTP (`boltToHttp` in its discovery helpers: it looks for SSO
    providers there), which Neo4j's Bolt port closes without an answer."""
    probe = "http://" + urlsplit(bolt).netloc + "/"
    return [e for e in errors if not (
        e.get("text") == "Failed to load resource: net::ERR_NAME_NOT_RESOLVED"
        and urlsplit(e.get("url", "")).hostname in REMOTE_HOSTS
        or e.get("text") == "Failed to load resource: net::ERR_EMPTY_RESPONSE" and e.get("url") == probe)]
