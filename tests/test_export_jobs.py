"""Long exports run as a background process with progress; cancelling or killing one mid-way
never leaves anything that lists as a complete export."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from workbench import export
from workbench.export.job import job_file


@pytest.fixture()
def run_copy(trained_lora_run, tmp_path):
    """A private copy of the finished tiny LoRA run (its exports folder left behind)."""
    target = tmp_path / "saves" / trained_lora_run.name
    shutil.copytree(trained_lora_run, target, ignore=shutil.ignore_patterns("exports", "checkpoint-*"))
    return target


def wait_for(predicate, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def inside_staging(run_dir):
    """True once the export is writing into its temporary folder (the model is saved there)."""
    state = export.job_status(run_dir) or {}
    return state.get("state") == "running" and "zip" in (state.get("message") or "")


def test_an_export_killed_mid_way_never_lists_as_complete(run_copy):
    env = {**os.environ, "WORKBENCH_EXPORT_PAUSE_AT": "zip:60", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "export", "--run", str(run_copy), "--merge",
                             "--dtype", "fp16", "--job-file", str(job_file(run_copy))], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: inside_staging(run_copy), what="the export to reach its zip step")
        partial = run_copy / "exports" / ".merged-fp16.tmp"
        assert (partial / "config.json").is_file()  # half the export is on disk...
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # ...yet nothing lists as an export, and the job reads as failed, not running
    assert export.list_exports(run_copy) == [] and export.export_entries(run_copy) == []
    state = export.job_status(run_copy)
    assert state["state"] == "error" and "ended before finishing" in state["message"]
    # the next export of the same name starts clean and completes
    result = export.export_merged(run_copy, "fp16")
    assert [e.name for e in export.export_entries(run_copy)] == ["merged-fp16"]
    assert not (run_copy / "exports" / ".merged-fp16.tmp").exists() and result.archive.is_file()


def test_a_background_export_reports_progress_and_can_be_cancelled(run_copy, monkeypatch):
    monkeypatch.setenv("WORKBENCH_EXPORT_PAUSE_AT", "zip:60")
    first = export.start_job(run_copy, "merged", dtype="fp32")
    assert first["state"] == "running" and first["pid"]
    with pytest.raises(export.ExportError, match="already running"):
        export.start_job(run_copy, "gguf")
    wait_for(lambda: inside_staging(run_copy), what="the export to reach its zip step")
    assert 0 < export.job_status(run_copy)["fraction"] < 1
    state = export.cancel_job(run_copy)
    assert state["state"] == "cancelled"
    assert export.export_entries(run_copy) == []
    assert not any(p.name.endswith(".tmp") for p in (run_copy / "exports").iterdir())
