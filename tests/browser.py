"""Headless Chromium for the tests that look at a page (``sweaug view``'s HTML, ``sweaug app``).

Debian's ``chromium`` (apt; ``.ci/run`` installs it) driven by Playwright for Python
(``pip install playwright``; never ``playwright install``: the browser is the system one).
When either is missing the calling test FAILS with a message saying what to install: these
tests are not optional.

```python
from browser import open_page, audio_states

with open_page(path_or_url, screenshot=tmp_path / "page.png") as page:
    assert page.errors == []           # console errors, uncaught exceptions, failed requests
    states = audio_states(page)        # one dict per <audio>: readyState, duration, error
```
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

# what this sandbox needs (root, no network): no sandbox, no GPU, nothing phoning home
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The system Chromium, or fail the test saying how to install it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("headless Chromium is needed for this test and is not installed: "
                    "apt-get install -y --no-install-recommends chromium (.ci/run does this)",
                    pytrace=False)
    return path


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is needed for this test: pip install -e '.[test]' "
                    "(it drives the system chromium; do not run `playwright install`)",
                    pytrace=False)
    return sync_playwright


def _url(target) -> str:
    if isinstance(target, Path) or not str(target).startswith(("http://", "https://", "file:")):
        return Path(target).resolve().as_uri()
    return str(target)


def _stream_closed(request) -> bool:
    """A server-sent-event stream the page itself closed: Gradio's client closes its
    ``queue/data`` event stream when a job completes, which Chromium reports as a failed
    request (``net::ERR_ABORTED``) whenever the close races the stream's last bytes. That is
    the page hanging up, not a failure; any other aborted request still counts as an error."""
    if "ERR_ABORTED" not in (request.failure or ""):
        return False
    return (request.resource_type == "eventsource"
            or "text/event-stream" in (request.headers.get("accept") or ""))


@contextlib.contextmanager
def open_page(target, screenshot: Path | None = None, width: int = 1280, height: int = 900,
              timeout_ms: int = 30_000, full_page: bool = True) -> Iterator:
    """Open ``target`` (a file path or URL) in a fresh headless Chromium profile and yield the
    Playwright page, after the load event. ``page.errors`` collects console errors, uncaught
    page exceptions and failed requests (as strings) for the whole visit; ``screenshot`` (a
    PNG path) is taken right after loading. Event streams the page closed itself are listed
    apart, in ``page.closed_streams`` (see ``_stream_closed``)."""
    binary = chromium_path()
    sync_playwright = _playwright()
    with tempfile.TemporaryDirectory(prefix="sweaug-chromium-") as profile, \
            sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=binary, headless=True, args=FLAGS,
            viewport={"width": width, "height": height})
        try:
            page = ctx.new_page()
            page.set_default_timeout(timeout_ms)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            closed: list[str] = []
            page.on("requestfailed", lambda r: (closed if _stream_closed(r) else errors).append(
                f"request failed: {r.url[:120]} ({r.failure})"))
            page.errors = errors
            page.closed_streams = closed
            page.goto(_url(target), wait_until="load")
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=full_page)
            yield page
        finally:
            ctx.close()


AUDIO_STATES_JS = """(timeoutMs) => Promise.all([...document.querySelectorAll('audio')].map(a =>
  new Promise(resolve => {
    const done = () => resolve({src: (a.currentSrc || a.src || '').slice(0, 80),
                                readyState: a.readyState, duration: a.duration,
                                error: a.error ? a.error.code : null});
    if (a.readyState >= 1 || a.error) return done();
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    if (a.preload === 'none') a.load();
    setTimeout(done, timeoutMs);
  })))"""


def audio_states(page, timeout_ms: int = 10_000) -> list[dict]:
    """Every ``<audio>`` element of the page once it has loaded its metadata (or failed, or
    ``timeout_ms`` passed): ``{"src", "readyState", "duration", "error"}``."""
    return page.evaluate(AUDIO_STATES_JS, timeout_ms)
