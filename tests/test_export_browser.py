"""In a real browser, behind a login: export a run, download the zip (from disk, through the
login-protected file route), see it listed, delete it."""

import shutil
import urllib.error
import urllib.request
import zipfile

import pytest

from browser import browser_page, pick_option, running_app, wait_until
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_export_and_download_the_zip_behind_a_login(tmp_path, trained_lora_run):
    saves = tmp_path / "saves"
    run = saves / trained_lora_run.name
    shutil.copytree(trained_lora_run, run, ignore=shutil.ignore_patterns("exports", "checkpoint-*"))
    with running_app(saves, ROOT, extra_args=["--auth", "ann:secret"]) as (url, _), browser_page() as page:
        # a file under saves/ is not served to someone who has not logged in
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}gradio_api/file={(run / 'config.yaml').resolve()}", timeout=10)
        assert refused.value.code in (401, 403)

        page.request.post(f"{url}login", form={"username": "ann", "password": "secret"})
        page.goto(url)
        page.get_by_role("tab", name="Export").click()
        pick_option(page, "#export-run", run.name)
        page.click("#export-merge")
        wait_until(lambda: "started" in page.inner_text("#export-status"), 30, what="the start message")
        page.wait_for_selector("#export-download-merged", state="visible", timeout=240_000)
        assert page.locator("#export-progress [data-status='done']").count() == 1
        with page.expect_download(timeout=60_000) as download:
            page.click("#export-download-merged")
        archive = tmp_path / "merged.zip"
        download.value.save_as(archive)
        names = zipfile.ZipFile(archive).namelist()
        assert "merged-fp32/model.safetensors" in names and "merged-fp32/README.md" in names

        # the list links the same zip; the link downloads too
        link = page.locator("#export-table a.export-link[data-name='merged-fp32']")
        assert link.inner_text() == "merged-fp32.zip"
        with page.expect_download(timeout=60_000) as again:
            link.click()
        again.value.save_as(tmp_path / "again.zip")
        assert zipfile.ZipFile(tmp_path / "again.zip").namelist() == names
        page.screenshot(path=str(tmp_path / "export.png"), full_page=True)

        pick_option(page, "#export-delete-name", "merged-fp32")
        page.click("#export-delete")
        wait_until(lambda: page.locator("#export-none").count() == 1, 30, what="the list to empty")
        assert not (run / "exports" / "merged-fp32").exists()


def test_an_export_is_stopped_and_run_again_from_the_page(tmp_path, trained_lora_run):
    """The export is a job of the UI's controller: Cancel stops it (nothing half-written lists),
    Run again submits the same export, which then completes. Each attempt holds 45 s at its zip
    step (a test knob), so Cancel is pressed while the first surely runs."""
    saves = tmp_path / "saves"
    run = saves / trained_lora_run.name
    shutil.copytree(trained_lora_run, run, ignore=shutil.ignore_patterns("exports", "checkpoint-*"))
    with running_app(saves, ROOT, env={"WORKBENCH_JOB_PAUSE_AT": "zip:45"}) as (url, _), browser_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Export").click()
        pick_option(page, "#export-run", run.name)
        page.click("#export-merge")
        wait_until(lambda: "zip" in page.inner_text("#export-progress"), 240, what="the export's zip step")
        page.click("#export-cancel")
        page.wait_for_selector("#export-progress [data-status='cancelled']", timeout=120_000)
        assert page.locator("#export-none").count() == 1
        page.click("#export-resubmit")
        wait_until(lambda: "queued" in page.inner_text("#export-status"), 60, what="the job queued again")
        page.wait_for_selector("#export-progress [data-status='done']", timeout=240_000)
        page.wait_for_selector("#export-table a.export-link[data-name='merged-fp32']", timeout=30_000)
