"""The Chat tab in a real browser: compare mode fills both panes, export, stop, regenerate, clear."""

import json
import shutil

import pytest

from browser import browser_page, pick_option, running_app, wait_until
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_compare_mode_fills_both_panes_and_exports(tmp_path, trained_lora_run, tiny_model_dir):
    saves = tmp_path / "saves"
    shutil.copytree(trained_lora_run, saves / "lora-run")
    with running_app(saves, ROOT) as (url, _), browser_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Chat").click()
        page.wait_for_selector("#chat-left")
        page.wait_for_timeout(1000)  # opening the tab refreshes its model lists
        page.get_by_text("Generation settings").click()
        set_max_new_tokens(page, 24)
        pick_option(page, "#chat-left", f"base:{tiny_model_dir}")
        pick_option(page, "#chat-right", "lora-run")
        page.locator("#chat-input textarea").fill("Who are you?")
        page.click("#chat-send")
        wait_until(
            lambda: "done" in page.inner_text("#chat-stats-a") and "done" in page.inner_text("#chat-stats-b"),
            180,
            what="both panes to answer",
        )
        assert "tokens/s" in page.inner_text("#chat-stats-a") and "tokens/s" in page.inner_text("#chat-stats-b")
        for pane in ("#chat-pane-a", "#chat-pane-b"):
            messages = page.locator(f"{pane} .message")
            assert messages.count() >= 2
            assert messages.nth(1).inner_text().strip(), f"{pane} has an empty reply"
        assert "lora-run" in page.inner_text("#chat-stats-b")
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)

        # export: one JSON file with both panes and the settings
        page.click("#chat-export")
        link = page.locator("#chat-export-file a").first
        link.wait_for(timeout=60_000)
        with page.expect_download(timeout=60_000) as download:
            link.click()
        record = json.loads(open(download.value.path(), encoding="utf-8").read())
        assert [p["model"] for p in record["panes"]] == [f"base:{tiny_model_dir}", "lora-run"]
        assert record["panes"][1]["messages"][0]["content"] == "Who are you?"

        # a long reply stopped at once: the pane says so
        set_max_new_tokens(page, 2000)
        page.click("#chat-compare input")  # single mode
        page.locator("#chat-input textarea").fill("Tell me more.")
        page.click("#chat-send")

        def running():
            return "tokens/s" in page.inner_text("#chat-stats-a") and "done" not in page.inner_text("#chat-stats-a")

        wait_until(running, 120, what="the reply to start")
        page.click("#chat-stop")
        try:
            wait_until(lambda: "stopped" in page.inner_text("#chat-stats-a"), 30, what="the stop")
        finally:
            page.screenshot(path=str(tmp_path / "stop.png"), full_page=True)
        tokens = int(page.inner_text("#chat-stats-a").split("tokens")[0].split("·")[-1].strip())
        assert tokens < 2000

        # regenerate: the stopped reply is replaced by a whole new one, nothing else changes
        set_max_new_tokens(page, 24)
        messages = page.locator("#chat-pane-a .message")
        count = messages.count()
        page.click("#chat-regenerate")
        wait_until(lambda: "done" in page.inner_text("#chat-stats-a"), 120, what="the regenerated reply")
        assert messages.count() == count and messages.nth(count - 1).inner_text().strip()
        assert page.inner_text("#chat-pane-a").count("Tell me more.") == 1
        # clear: both panes and their stats empty
        page.click("#chat-clear")
        wait_until(lambda: messages.count() == 0, 20, what="the cleared pane")
        assert not page.inner_text("#chat-stats-a").strip()


def set_max_new_tokens(page, value: int) -> None:
    box = page.locator("#chat-max-new input[type=number]")
    box.fill(str(value))
    box.press("Enter")
