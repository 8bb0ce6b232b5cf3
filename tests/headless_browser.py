"""A headless Chromium driven over the Chrome DevTools protocol, for tests of HTML pages.

Only the protocol's JSON messages over one websocket per page (`websocket-client`): no
browser download, no driver binary. `find_browser()` names the installed browser, or None.
"""

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time

# Debian's package, other distributions' names for it, then Google's builds.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser():
    """Path of a Chromium-based browser on PATH, or None."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless browser process; `open(url)` gives a `Page`. Use it as a context manager."""

    def __init__(self, executable, start_timeout=60):
        self.profile = tempfile.TemporaryDirectory(prefix="keras_s2s_browser_")
        command = [executable, "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                   "--disable-extensions", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--mute-audio",
                   # No host name resolves: a page that tried to load anything would fail to.
                   "--host-resolver-rules=MAP * ~NOTFOUND",
                   f"--user-data-dir={self.profile.name}", "--remote-debugging-port=0",
                   "about:blank"]
        # The sandbox needs privileges a container (or root) rarely has; the pages are the
        # tests' own files.
        # A file, not a pipe, for its log: a full pipe would stall the browser.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log)
        port_file = os.path.join(self.profile.name, "DevToolsActivePort")
        deadline = time.monotonic() + start_timeout
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                error = self.log.read().decode(errors="replace")
                self.close()
                raise RuntimeError(f"{executable} did not start its DevTools server: {error[-2000:]}")
            time.sleep(0.05)
        self.port = int(open(port_file).read().split()[0])

    def open(self, url, width=900, height=1000, mobile=False):
        """A new tab at `url`, loaded, with a `width` x `height` viewport."""
        import urllib.request

        # The endpoint answers PUT only (a page's own GET cannot open tabs).
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            target = json.load(response)
        page = Page(target["webSocketDebuggerUrl"])
        page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)
        page.navigate(url)
        return page

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.profile.cleanup()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Page:
    """One tab: `send` a protocol command, `evaluate` JavaScript; `events` holds what the
    page reported (requests, console messages, exceptions)."""

    def __init__(self, websocket_url):
        import websocket  # websocket-client

        self.socket = websocket.create_connection(websocket_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events = []
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method, **params):
        """Sends one command and returns its result (events that arrive meanwhile are kept)."""
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method, timeout=30):
        """Waits for an event named `method` (one that already arrived counts)."""
        deadline = time.monotonic() + timeout
        while not any(event.get("method") == method for event in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} event within {timeout} s")
            self.events.append(json.loads(self.socket.recv()))

    def navigate(self, url):
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression):
        """The value of a JavaScript expression (JSON-serialisable values only)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def hover(self, selector):
        """Moves the mouse to the centre of the first element `selector` matches."""
        box = self.evaluate(f"(() => {{ const node = document.querySelector({json.dumps(selector)});"
                            "node.scrollIntoView({block: 'center'});"
                            "const r = node.getBoundingClientRect();"
                            "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        return box

    def click(self, selector):
        x, y = self.hover(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def press(self, key, code=None, key_code=None):
        """One key press (keyDown then keyUp), e.g. press("Tab", "Tab", 9)."""
        params = {"key": key, "code": code or key, "windowsVirtualKeyCode": key_code or 0}
        self.send("Input.dispatchKeyEvent", type="rawKeyDown", **params)
        self.send("Input.dispatchKeyEvent", type="keyUp", **params)

    def screenshot(self):
        """The viewport as PNG bytes."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def requested_urls(self):
        return [event["params"]["request"]["url"] for event in self.events
                if event.get("method") == "Network.requestWillBeSent"]

    def errors(self):
        """Exceptions thrown and error-level console or log messages (CSP violations among them)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
            elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(str(params["args"]))
        return found

    def close(self):
        self.socket.close()
