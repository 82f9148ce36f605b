"""Headless Chromium driven through the DevTools protocol, for the site's browser tests.

A page is opened at a given width and colour scheme; the tests then run JavaScript probes in
it, read every console message it logged (with its level), and take full-page screenshots.
The protocol is spoken over a WebSocket with tornado's client (installed with Jupyter), so the
tests need nothing beyond Chromium itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tornado.websocket import websocket_connect

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
# A closed network: no background connections Chromium would make on its own.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--remote-debugging-port=0"]
WARNING_LEVELS = {"warning", "error", "assert"}  # console levels the tests count as problems


@dataclass
class Message:
    """One console message or uncaught exception of a page."""

    level: str  # "log", "info", "warning", "error", ...
    text: str
    source: str = ""

    def __str__(self) -> str:
        return f"[{self.level}] {self.text} {self.source}".strip()


@dataclass
class View:
    """How a page is looked at: window width and height, colour scheme."""

    name: str
    width: int
    height: int = 1000
    dark: bool = False
    mobile: bool = False


VIEWS = [View("light", 1400), View("dark", 1400, dark=True), View("mobile", 400, 900, mobile=True)]


@dataclass
class Tab:
    """One page in the browser, spoken to over its DevTools WebSocket."""

    browser: Browser
    socket: object
    messages: list[Message] = field(default_factory=list)
    _next_id: int = 0
    _events: list[dict] = field(default_factory=list)

    def _run(self, coroutine):
        return self.browser.loop.run_until_complete(coroutine)

    async def _call(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        self._next_id += 1
        call_id = self._next_id
        await self.socket.write_message(json.dumps({"id": call_id, "method": method,
                                                    "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer in {timeout} s")
            raw = await asyncio.wait_for(self.socket.read_message(), left)
            if raw is None:
                raise ConnectionError("Chromium closed the connection")
            message = json.loads(raw)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            level = {"warn": "warning"}.get(params["type"], params["type"])
            frames = params.get("stackTrace", {}).get("callFrames", [])
            source = f"({frames[0]['url']}:{frames[0]['lineNumber']})" if frames else ""
            self.messages.append(Message(level, text, source))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.messages.append(Message("error", f"uncaught: {text}", details.get("url", "")))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.messages.append(Message(entry["level"], entry["text"], entry.get("url", "")))
        elif method:
            self._events.append(message)

    def call(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        return self._run(self._call(method, params, timeout))

    def evaluate(self, expression: str, timeout: float = 60):
        """The value of a JavaScript expression (awaited if it is a promise), as JSON data."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, view: View, settle_s: float = 20) -> None:
        """Load ``url`` in ``view`` and wait until its formulas are typeset and fitted."""
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": view.width, "height": view.height, "deviceScaleFactor": 1,
                   "mobile": view.mobile})
        self.call("Emulation.setEmulatedMedia",
                  {"features": [{"name": "prefers-color-scheme",
                                 "value": "dark" if view.dark else "light"}]})
        self.messages.clear()
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + settle_s
        ready = ("document.readyState === 'complete'"
                 " && !!document.documentElement.dataset.dlbookMath")
        while time.monotonic() < deadline:
            if self.evaluate(ready):
                break
            self._run(asyncio.sleep(0.2))
        self._run(asyncio.sleep(0.3))  # late console messages

    def screenshot(self, path: Path, view: View, max_height: int = 16000) -> None:
        """A PNG of the whole page (its first ``max_height`` pixels): the window is made as
        tall as the page, so everything is painted as a reader scrolling it would see it
        (capturing beyond the window left code blocks unpainted), then set back."""
        height = min(self.evaluate("document.documentElement.scrollHeight"), max_height)
        metrics = {"width": view.width, "deviceScaleFactor": 1, "mobile": view.mobile}
        self.call("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
        self._run(asyncio.sleep(1.0))  # layout, and dlbook.js refitting the formulas
        shot = self.call("Page.captureScreenshot", {"format": "png"}, timeout=120)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.call("Emulation.setDeviceMetricsOverride", {**metrics, "height": view.height})


class Browser:
    """A headless Chromium for the length of a ``with`` block; ``tab()`` opens a page."""

    def __init__(self) -> None:
        if CHROMIUM is None:
            raise FileNotFoundError("Chromium is not installed")
        self.loop = asyncio.new_event_loop()
        self.profile = Path(tempfile.mkdtemp(prefix="dlbook-chromium-"))
        self.process = None
        self.port = None

    def __enter__(self) -> Browser:
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
                                         "about:blank"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("Chromium did not start")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.loop.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def tab(self) -> Tab:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=30) as answer:
            target = json.loads(answer.read())
        async def connect():  # inside the loop, so tornado binds the socket to it
            return await websocket_connect(target["webSocketDebuggerUrl"],
                                           max_message_size=512 * 2**20)

        socket = self.loop.run_until_complete(connect())
        return Tab(self, socket)

    def close_tab(self, tab: Tab) -> None:
        tab.socket.close()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))
