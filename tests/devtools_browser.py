"""Headless Chromium, started once, driven over the DevTools protocol on a pipe (stdlib only).

``--remote-debugging-pipe`` makes Chromium read JSON commands on fd 3 and write
replies and events on fd 4, each message ended by a NUL byte.  One browser
takes every page's screenshot for tests/test_book.py: a Chromium started per
page (``--screenshot``) cost 2-4 s a page, most of it the start and a fixed
14,000-px-tall capture; here each capture is as tall as its page.  Networking
is off as before (a proxy that does not exist, no background services).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path

OFFLINE = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>")
LOADED = ("new Promise(done => { const fonts = () => document.fonts.ready.then(() => done(1)); "
          "document.readyState === 'complete' ? fonts() : addEventListener('load', fonts); })")
MAX_HEIGHT = 30000  # px: a screenshot taller than this is cut (none of the book's pages is)


def _high(fd: int) -> int:
    """``fd`` moved to a number >= 10, so that bash's ``3<&N 4>&M`` cannot overwrite it."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """``with Browser(chromium, profile_dir) as b: b.screenshot(url, png)``; every reply within ``timeout`` s."""

    def __init__(self, exe: str, profile_dir: Path, timeout: float = 60.0):
        self.timeout, self._id, self._buf = timeout, 0, b""
        to_r, to_w = (_high(f) for f in os.pipe())
        from_r, from_w = (_high(f) for f in os.pipe())
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_r} 4>&{from_w}', exe, *OFFLINE, "--remote-debugging-pipe",
             f"--user-data-dir={profile_dir}", "about:blank"],
            pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._w, self._r = to_w, from_r
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        finally:
            for fd in (self._w, self._r):
                os.close(fd)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited (code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command and return its result (events arriving meanwhile are passed over)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def screenshot(self, url: str, out: Path, width: int = 1280) -> Path:
        """A PNG of the whole page at ``url`` (``width`` px wide, as tall as the page) written to ``out``."""
        def size(h: int) -> None:
            self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=h,
                      deviceScaleFactor=1, mobile=False)

        size(800)
        # Page.navigate answers once the new document is committed; this promise, evaluated in it, then
        # settles after its load event (images: the charts) and its fonts, never on a stale event
        self.call("Page.navigate", session=True, url=url)
        self.call("Runtime.evaluate", session=True, awaitPromise=True, expression=LOADED)
        height = self.call("Runtime.evaluate", session=True, returnByValue=True,
                           expression="document.documentElement.scrollHeight")["result"]["value"]
        size(min(int(height), MAX_HEIGHT))
        png = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        out.write_bytes(base64.b64decode(png))
        return out
