"""The whole flow in a real browser: start a run, watch the chart grow, chat side by side,
merge and download, switch the language."""

import zipfile

import pytest

from browser import browser_page, pick_option, running_app, set_value, wait_until
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_train_watch_chat_merge_download(tmp_path, tiny_model_dir):
    saves = tmp_path / "saves"
    saves.mkdir()
    with running_app(saves, ROOT) as (url, _), browser_page() as page:
        page.goto(url)
        page.wait_for_selector("#train-start")
        # the method panel shows what the default run trains and whether it fits, unasked
        wait_until(
            lambda: "Trainable: 2,442,240" in page.inner_text("#method-panel"), 60, what="the method panel on open"
        )
        # the tiny test model stands in for the default one; everything else is the default
        model_box = page.locator("#field-model_name_or_path input")
        model_box.fill(str(tiny_model_dir))
        model_box.press("Enter")
        set_value(page, "#field-max_steps", "40")
        set_value(page, "#field-logging_steps", "2") if page.locator(
            "#field-logging_steps input"
        ).is_visible() else None
        page.click("#train-start")
        wait_until(lambda: "Started run" in page.inner_text("#train-message"), 30, what="the start message")

        # progress with step/total and ETA, then a loss chart that grows while the run trains
        wait_until(
            lambda: "step" in page.inner_text("#train-progress") and "/40" in page.inner_text("#train-progress"),
            120,
            what="progress step/total",
        )
        assert "ETA" in page.inner_text("#train-progress")

        def points():
            return page.locator("#loss-chart [aria-roledescription='point']").count()

        wait_until(lambda: points() >= 2, 120, what="loss points")
        first = points()
        wait_until(lambda: points() > first, 120, what="more loss points")
        wait_until(
            lambda: page.locator(".wb-progress[data-status='finished']").count() == 1, 300, what="the run to finish"
        )
        assert "[log]" in page.locator("#train-log textarea").input_value()
        page.screenshot(path=str(tmp_path / "train.png"), full_page=True)

        # chat: base vs the tuned run, side by side
        page.get_by_role("tab", name="Chat").click()
        page.wait_for_timeout(1000)  # opening the tab refreshes its model lists
        pick_option(page, "#chat-right", saves_run_id(saves))
        page.locator("#chat-input textarea").fill("Who are you?")
        page.click("#chat-send")
        wait_until(
            lambda: "tokens/s" in page.inner_text("#chat-stats-a") and "tokens/s" in page.inner_text("#chat-stats-b"),
            120,
            what="both panes to answer",
        )
        assert page.locator("#chat-pane-a .message").count() >= 2
        assert page.locator("#chat-pane-b .message").count() >= 2

        # export: merge, then download the zip
        page.get_by_role("tab", name="Export").click()
        pick_option(page, "#export-run", saves_run_id(saves))
        page.click("#export-merge")
        page.wait_for_selector("#export-download-merged", state="visible", timeout=180_000)
        with page.expect_download(timeout=120_000) as download:
            page.click("#export-download-merged")
        archive = tmp_path / "merged.zip"
        download.value.save_as(archive)
        names = zipfile.ZipFile(archive).namelist()
        assert "merged-fp32/model.safetensors" in names and "merged-fp32/tokenizer.json" in names

        # the same page in Chinese
        page.get_by_text("简体中文").click()
        wait_until(lambda: "合并" in page.locator("#export-merge").inner_text(), 20, what="Chinese labels")
        assert page.get_by_role("tab", name="对话").count() == 1
        wait_until(lambda: "可训练参数" in page.inner_text("#method-panel"), 20, what="the panel in Chinese")


def saves_run_id(saves):
    runs = [p.name for p in saves.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]
