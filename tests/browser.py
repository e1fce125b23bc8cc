"""Open an HTML file in headless Debian Chromium through the DevTools protocol and report
what a user would see: console errors, uncaught exceptions, network requests, and which
plotly charts rendered. Used by the report tests; skipped where Chromium is absent.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from base64 import b64decode
from pathlib import Path

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)

# Every plotly chart: its div, whether it holds a non-empty svg (or canvas), and its size.
_CHARTS = """JSON.stringify(Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => {
  const svg = d.querySelector('svg.main-svg'); const r = d.getBoundingClientRect();
  return {id: d.id, marks: d.querySelectorAll('svg.main-svg *').length + d.querySelectorAll('canvas').length,
          svg: !!svg, width: r.width, height: r.height};
}))"""
_IMAGES = """JSON.stringify(Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth})))"""
_SECTIONS = """JSON.stringify(Array.from(document.querySelectorAll('section')).map(s => s.id))"""


class Page:
    """A DevTools websocket session on one page target."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")

    def evaluate(self, expression: str):
        out = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return json.loads(out["result"]["value"])


def render(html: Path, screenshot: Path, settle: float = 2.0, timeout: float = 90.0) -> dict:
    """Load `html` offline in a fresh headless Chromium; return console errors, exceptions,
    non-local requests, chart and image states and sections, and save a full-page PNG."""
    profile = Path(tempfile.mkdtemp(prefix="apd-chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", url=html.resolve().as_uri())
        page.wait_for("Page.loadEventFired", timeout)
        time.sleep(settle)  # plotly draws after load
        charts = page.evaluate(_CHARTS)
        images = page.evaluate(_IMAGES)
        sections = page.evaluate(_SECTIONS)
        height = page.evaluate("JSON.stringify(document.documentElement.scrollHeight)")
        page.send("Emulation.setDeviceMetricsOverride", width=1280, height=min(int(height), 16000),
                  deviceScaleFactor=1, mobile=False)
        shot = page.send("Page.captureScreenshot", format="png")
        screenshot.write_bytes(b64decode(shot["data"]))
        events = page.events
        console_errors = [e["params"] for e in events if e.get("method") == "Runtime.consoleAPICalled"
                          and e["params"]["type"] in ("error", "assert")]
        console_errors += [e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
                           and e["params"]["entry"]["level"] == "error"]
        exceptions = [e["params"]["exceptionDetails"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
        requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        page.ws.close()
        return {"console_errors": console_errors, "exceptions": exceptions,
                "remote_requests": [u for u in requests if not u.startswith(("file:", "data:", "about:"))],
                "charts": charts, "images": images, "sections": sections}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
