"""Launch the real app in its own process and drive it with Playwright in Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(saves: Path, root: Path, extra_args: list[str] | None = None, env: dict | None = None):
    """Yield the base URL of a freshly started `workbench ui`; stop it afterwards."""
    port = free_port()
    log = open(saves.parent / f"ui-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "ui",
            "--port",
            str(port),
            "--saves",
            str(saves),
            "--dataset-dir",
            str(root / "data"),
            # the tests' models are folders under pytest's tmp, outside the workspace
            "--allow-local-models",
            *(extra_args or []),
        ],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited: {(saves.parent / f'ui-{port}.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1100, locale: str | None = None):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True, **({"locale": locale} if locale else {})
        )
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


def pick_option(page, dropdown_selector: str, text: str) -> None:
    """Choose the option of a Gradio dropdown whose text is `text`."""
    box = page.locator(f"{dropdown_selector} input")
    box.click()
    box.fill(text)  # filters the options; a stale value would hide the others
    option = page.locator("ul[role=listbox] li", has_text=text).first
    try:
        option.wait_for(timeout=15_000)
    except Exception as err:
        shown = page.locator("ul[role=listbox] li").all_inner_texts()
        raise AssertionError(f"no option {text!r} in {dropdown_selector}; shown: {shown}") from err
    option.click()


def set_value(page, selector: str, value: str) -> None:
    box = page.locator(f"{selector} input, {selector} textarea").first
    box.fill(value)
    box.press("Tab")


def wait_until(predicate, timeout: float = 120, poll: float = 0.5, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
