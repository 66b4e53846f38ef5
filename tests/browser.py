"""A Gradio app served in a subprocess and opened in Debian's headless Chromium through Playwright (never
`playwright install`): shared by the browser tests of the demo Space and of the metric's widget."""

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url, process, log_path, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the app did not answer on {url} within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def served_app(command, env, port, log_path):
    """Run `command` (an app listening on 127.0.0.1:port) until the block ends; yields its URL."""
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_server(url, server, log_path)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def chromium_page(url, viewport=None):
    """A page of a fresh headless Chromium profile; yields (page, playwright's `expect`, outside_requests): the
    requests the page made to anything but the app, which a test of an offline app asserts empty."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium to run the browser test")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
                viewport=viewport or {"width": 1200, "height": 1500},
            )
            try:
                page = browser.new_page()
                outside_requests = []
                page.on("request", lambda request: None if request.url.startswith((url, "data:", "blob:"))
                        else outside_requests.append(request.url))
                page.goto(url)
                yield page, playwright_api.expect, outside_requests
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
