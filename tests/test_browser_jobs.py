"""Runs in a real browser: two sessions start runs (one trains, one waits in the queue); the app
process is restarted while the first trains and the reopened page finds it and keeps streaming;
Abort stops it gracefully and the queued run then starts by itself."""

import re

import pytest

from browser import CHROMIUM, CHROMIUM_ARGS, running_app, set_value, wait_until
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def start_run(page, url, model_dir, max_steps):
    page.goto(url)
    page.wait_for_selector("#train-start")
    model_box = page.locator("#field-model_name_or_path input")
    model_box.fill(str(model_dir))
    model_box.press("Enter")
    set_value(page, "#field-max_steps", str(max_steps))
    page.click("#train-start")
    wait_until(
        lambda: "run **" in page.inner_text("#train-message") or "run" in page.inner_text("#train-message"),
        30,
        what="the start message",
    )


def shown_step(page) -> int:
    return int(page.locator(".wb-progress").get_attribute("data-step") or 0)


def status_of(page) -> str:
    return page.locator(".wb-progress").get_attribute("data-status") or ""


def test_two_sessions_queue_and_a_restarted_app_finds_the_live_run(tmp_path, tiny_model_dir):
    from playwright.sync_api import sync_playwright

    saves = tmp_path / "saves"
    saves.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        second = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        for page in (first, second):
            page.set_default_timeout(60_000)

        with running_app(saves, ROOT) as (url, _):
            start_run(first, url, tiny_model_dir, 400)
            assert "Started run" in first.inner_text("#train-message")
            # the second session loads its settings from a YAML file, saves them back, and starts
            second.goto(url)
            second.wait_for_selector("#train-start")
            config = tmp_path / "small.yaml"
            config.write_text(f"model_name_or_path: {tiny_model_dir}\ndataset: identity\nmax_steps: 3\n")
            second.locator("#train-load-config input[type=file], input[type=file]").first.set_input_files(str(config))
            wait_until(lambda: "small.yaml" in second.inner_text("#train-message"), 30, what="the config to load")
            assert second.locator("#field-max_steps input").input_value() == "3"
            second.click("#train-save-config")
            wait_until(lambda: "Config saved" in second.inner_text("#train-message"), 30, what="the saved config")
            wait_until(lambda: second.locator("#train-saved-config").is_visible(), 30, what="the saved file")
            assert len(list((saves / "configs").glob("*.yaml"))) == 1
            second.click("#train-start")
            wait_until(lambda: "Queued run" in second.inner_text("#train-message"), 30, what="the queued message")
            # each session sees both runs, neither lost
            for page in (first, second):
                wait_until(
                    lambda p=page: "Running" in p.inner_text("#runs-table") and "Queued" in p.inner_text("#runs-table"),
                    30,
                    what="both runs listed",
                )
            wait_until(lambda: shown_step(first) >= 2, 180, what="the first run to stream steps")

        # the app process is gone and comes back; the run kept training meanwhile
        runs = sorted(
            p.name for p in saves.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "configs"
        )
        assert len(runs) == 2
        with running_app(saves, ROOT) as (url, _):
            first.goto(url)
            first.wait_for_selector("#train-start")
            wait_until(
                lambda: first.locator(".wb-progress").count() == 1 and status_of(first) == "running",
                60,
                what="the reopened page to show the live run",
            )
            before = shown_step(first)
            wait_until(lambda: shown_step(first) > before, 120, what="steps to keep streaming")
            assert "/400" in first.inner_text("#train-progress")

            def points():
                return first.locator("#loss-chart [aria-roledescription='point']").count()

            wait_until(lambda: points() >= 2, 60, what="the loss chart")
            first.screenshot(path=str(tmp_path / "reattached.png"), full_page=True)

            first.click("#train-abort")
            wait_until(lambda: status_of(first) == "aborted", 180, what="the graceful abort")
            assert "gracefully" in first.inner_text("#train-progress")

            def table():
                return first.inner_text("#runs-table")

            wait_until(lambda: "Finished" in table(), 240, what="the queued run to start by itself and finish")
            assert re.search(r"Aborted", table())

            # the run controls in Chinese (the upload button keeps working as a button)
            first.get_by_text("简体中文").click()
            wait_until(
                lambda: "加载配置" in first.locator("#train-load-config").inner_text(), 30, what="Chinese labels"
            )
            wait_until(lambda: "已完成" in table() and "状态" in table(), 30, what="the runs table in Chinese")
        browser.close()
    assert (saves / runs[0] / "final" / "adapter_model.safetensors").is_file()
    assert (saves / runs[1] / "final" / "adapter_model.safetensors").is_file()
