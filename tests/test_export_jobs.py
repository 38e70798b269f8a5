"""A command-line export killed mid-way never leaves anything that lists as a complete export
(exports from the page are jobs of the controller: tests/test_jobs_tasks.py)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from workbench import export

from conftest import ROOT


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


def inside_staging(job_file):
    """True once the export is writing into its temporary folder (the model is saved there)."""
    try:
        state = json.loads(job_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return False
    return state.get("state") == "running" and "zip" in (state.get("message") or "")


def test_an_export_killed_mid_way_never_lists_as_complete(run_copy, tmp_path):
    job_file = tmp_path / "progress.json"
    env = {**os.environ, "WORKBENCH_EXPORT_PAUSE_AT": "zip:60", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "export",
            "--run",
            str(run_copy),
            "--merge",
            "--dtype",
            "fp16",
            "--job-file",
            str(job_file),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: inside_staging(job_file), what="the export to reach its zip step")
        partial = run_copy / "exports" / ".merged-fp16.tmp"
        assert (partial / "config.json").is_file()  # half the export is on disk...
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # ...yet nothing lists as an export
    assert export.list_exports(run_copy) == [] and export.export_entries(run_copy) == []
    # the next export of the same name starts clean and completes
    result = export.export_merged(run_copy, "fp16")
    assert [e.name for e in export.export_entries(run_copy)] == ["merged-fp16"]
    assert not (run_copy / "exports" / ".merged-fp16.tmp").exists() and result.archive.is_file()
