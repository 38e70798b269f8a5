"""The Evaluate and Experiments tabs in a real browser: before/after with the forgetting check,
gap analysis, overlaid loss curves with metrics and config diff, and the checkpoint gallery."""

import shutil

import pytest

from browser import browser_page, pick_option, running_app, set_value, wait_until
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_evaluate_and_experiments_tabs(tmp_path, trained_lora_run):
    saves = tmp_path / "saves"
    shutil.copytree(trained_lora_run, saves / "lora-run")
    shutil.rmtree(saves / "lora-run" / "eval", ignore_errors=True)
    with running_app(saves, ROOT) as (url, _), browser_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Evaluate").click()
        page.wait_for_selector("#eval-compare")
        pick_option(page, "#eval-target", "lora-run")
        pick_option(page, "#eval-dataset", "date_format")
        set_value(page, "#eval-limit", "3")
        page.click("#eval-compare")
        wait_until(lambda: "Forgetting check" in page.inner_text("#eval-summary"), 240, what="the before/after report")
        summary = page.inner_text("#eval-summary")
        assert "improved" in summary and "exact_match" in summary
        table = page.inner_text("#eval-table")
        assert "Base" in table and "Tuned" in table and "Reference" in table
        page.screenshot(path=str(tmp_path / "evaluate.png"), full_page=True)

        page.click("#eval-gap")
        wait_until(lambda: "what tuning must fix" in page.inner_text("#eval-summary"), 240, what="the gap analysis")

        page.get_by_role("tab", name="Experiments").click()
        page.wait_for_timeout(1000)  # opening the tab refreshes its run lists
        page.click("#exp-show")
        wait_until(lambda: "date_format" in page.inner_text("#exp-metrics"), 60, what="the metrics table")
        wait_until(
            lambda: page.locator("#exp-loss [aria-roledescription='point']").count() >= 2, 60, what="loss curve points"
        )
        assert "activation_checkpointing" in page.inner_text("#exp-config")  # the first row of a long table
        set_value(page, "#gallery-prompts", "Who are you?")
        page.click("#gallery-build")
        wait_until(lambda: "final" in page.inner_text("#gallery-table"), 240, what="the gallery")
        assert "8" in page.inner_text("#gallery-table")
        page.screenshot(path=str(tmp_path / "experiments.png"), full_page=True)
