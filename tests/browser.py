"""Headless Debian Chromium through the DevTools protocol, reporting what a user would see:
console errors, uncaught exceptions, network requests, screenshots. `render` opens a local
HTML file (the report tests); `chromium()` yields a `Page` that a test drives like a user
(navigate, type, click, wait for an element), e.g. Neo4j Browser. Skipped where Chromium is
absent.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from base64 import b64decode
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

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
    """A DevTools websocket session on one page target; every event it sees is kept in `events`."""

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

    def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` (which must evaluate to a JSON string), promises awaited."""
        out = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression[:200]}: {out['exceptionDetails']}")
        return json.loads(out["result"]["value"])

    def navigate(self, url: str, timeout: float = 90.0) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", timeout)

    def wait_until(self, expression: str, timeout: float = 30.0, what: str | None = None) -> Any:
        """Poll a JS expression (no JSON.stringify needed) until it is truthy; return its value."""
        end = time.monotonic() + timeout
        while True:
            value = self.evaluate(f"JSON.stringify(({expression}) || null)")
            if value:
                return value
            if time.monotonic() > end:
                raise TimeoutError(f"{what or expression} not within {timeout} s")
            time.sleep(0.2)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element, select what it holds, and type `text` as keyboard input replacing it."""
        self.wait_until(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        self.evaluate(f"JSON.stringify((e => {{ e.focus(); e.select && e.select(); return 1 }})"
                      f"(document.querySelector({json.dumps(selector)})))")
        self.send("Input.insertText", text=text)

    def paste(self, selector: str, text: str) -> None:
        """Paste `text` into the element as a user's Ctrl+V would (a code editor then inserts it
        as it is: no auto-closed brackets or auto-indent, which typing would add)."""
        self.wait_until(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        self.evaluate(f"""JSON.stringify((() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus();
          const d = new DataTransfer(); d.setData('text/plain', {json.dumps(text)});
          e.dispatchEvent(new ClipboardEvent('paste', {{clipboardData: d, bubbles: true, cancelable: true}}));
          return 1 }})())""")

    def click(self, selector: str) -> None:
        self.wait_until(f"!!document.querySelector({json.dumps(selector)})", what=selector)
        self.evaluate(f"JSON.stringify(document.querySelector({json.dumps(selector)}).click() || 1)")

    def screenshot(self, path: Path, clip: dict | None = None) -> None:
        """A PNG of the viewport, or of `clip` ({x, y, width, height, scale}: CSS pixels)."""
        shot = self.send("Page.captureScreenshot", format="png", **({"clip": clip} if clip else {}))
        path.write_bytes(b64decode(shot["data"]))

    def console_errors(self) -> list[dict]:
        """console.error / console.assert calls and error-level log entries seen so far."""
        errors = [e["params"] for e in self.events if e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"]["type"] in ("error", "assert")]
        return errors + [e["params"]["entry"] for e in self.events if e.get("method") == "Log.entryAdded"
                         and e["params"]["entry"]["level"] == "error"]

    def exceptions(self) -> list[dict]:
        return [e["params"]["exceptionDetails"] for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


@contextmanager
def chromium(width: int = 1280, height: int = 900, timeout: float = 90.0) -> Iterator[Page]:
    """A fresh headless Chromium and its first page, with the Page, Runtime, Log and Network
    domains enabled; stopped and removed on exit. Its own profile, and offline: no host name
    but 127.0.0.1 resolves, so a page's remote requests fail alike everywhere (CI included)
    and nothing leaves the machine."""
    profile = Path(tempfile.mkdtemp(prefix="apd-chromium-"))
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", f"--window-size={width},{height}", "about:blank"],
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
        try:
            yield page
        finally:
            page.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def render(html: Path, screenshot: Path, settle: float = 2.0, timeout: float = 90.0) -> dict:
    """Load `html` offline in a fresh headless Chromium; return console errors, exceptions,
    non-local requests, chart and image states and sections, and save a full-page PNG."""
    with chromium(timeout=timeout) as page:
        page.navigate(html.resolve().as_uri(), timeout)
        time.sleep(settle)  # plotly draws after load
        charts = page.evaluate(_CHARTS)
        images = page.evaluate(_IMAGES)
        sections = page.evaluate(_SECTIONS)
        height = page.evaluate("JSON.stringify(document.documentElement.scrollHeight)")
        page.send("Emulation.setDeviceMetricsOverride", width=1280, height=min(int(height), 16000),
                  deviceScaleFactor=1, mobile=False)
        page.screenshot(screenshot)
        return {"console_errors": page.console_errors(), "exceptions": page.exceptions(),
                "remote_requests": [u for u in page.requests() if not u.startswith(("file:", "data:", "about:"))],
                "charts": charts, "images": images, "sections": sections}
