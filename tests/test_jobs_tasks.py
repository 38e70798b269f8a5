"""Evaluation, the sample gallery and exports as jobs of the one controller (tiny model): submit,
progress, queue behind training, abort, resubmit, failure in one line, re-attach, damaged files."""

import json
import os
import shutil
import time

import psutil
import pytest

from tests.conftest import ROOT
from workbench import tasks
from workbench.data.registry import SHIPPED_DIR
from workbench.jobs import Job, JobController
from workbench.runs import TASKS_DIR


@pytest.fixture()
def saves(trained_lora_run, tmp_path):
    """A private saves folder holding a copy of the finished tiny LoRA run."""
    root = tmp_path / "saves"
    shutil.copytree(trained_lora_run, root / trained_lora_run.name, ignore=shutil.ignore_patterns("exports", "eval"))
    return root


def wait_for(predicate, controller, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        controller.tick()
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def steps_seen(controller, job_id):
    return controller.monitor(job_id).step


EVAL = {
    "spec": "lora-run",
    "dataset": "date_format",
    "dataset_dir": str(SHIPPED_DIR),
    "limit": 4,
    "max_new_tokens": 8,
    "batch_size": 4,
}


def test_an_evaluation_job_streams_progress_and_saves_its_result(saves):
    controller = JobController(saves, grace=5, term_seconds=5)
    job_id = tasks.submit(controller, "eval", EVAL)
    job = controller.wait(job_id, timeout=300)
    assert job.status == "finished" and job.kind == "eval", job.message
    view = tasks.view(controller, job)
    assert view["fraction"] == 1.0 and view["result"]["rows"] == 4
    assert "exact_match" in view["result"]["metrics"] and len(view["result"]["predictions"]) == 4
    assert (saves / "lora-run" / "eval" / "date_format-test.json").is_file()  # saved like the CLI does
    # the training run list does not show it; the job list does
    assert job_id not in controller.run_ids() and [j.run_id for j in controller.tasks("eval")] == [job_id]
    assert (saves / TASKS_DIR / job_id / "job.log").is_file()


def test_an_evaluation_waits_for_the_training_on_its_device(saves):
    controller = JobController(saves)
    train = saves / "busy-run"
    train.mkdir()
    me = psutil.Process()  # a live process stands in for the trainer
    Job(
        run_id="busy-run", status="running", started=time.time(), pid=me.pid, pgid=None, proc_start=me.create_time()
    ).save(train)
    job_id = tasks.submit(controller, "eval", {**EVAL, "limit": 1})
    controller.tick()
    assert controller.job(job_id).status == "queued"
    Job(run_id="busy-run", status="finished", ended=time.time()).save(train)
    assert controller.wait(job_id, timeout=300).status == "finished"


def test_an_export_job_can_be_aborted_and_submitted_again(saves, monkeypatch):
    monkeypatch.setenv(tasks.PAUSE_ENV, "zip:120")
    controller = JobController(saves, grace=30, term_seconds=5)
    job_id = tasks.submit(controller, "export", {"run": "lora-run", "kind": "merged", "dtype": "fp32"})
    wait_for(
        lambda: "zip" in tasks.view(controller, controller.job(job_id))["message"],
        controller,
        what="the export to reach its zip step",
    )
    assert 0 < tasks.view(controller, controller.job(job_id))["fraction"] < 1
    assert controller.abort(job_id).startswith("stop requested")
    job = controller.wait(job_id, timeout=60)
    assert job.status == "aborted" and "stopped before it finished" in job.message
    from workbench import export

    assert export.export_entries(saves / "lora-run") == []
    assert not any(p.name.endswith(".tmp") for p in (saves / "lora-run" / "exports").iterdir())
    monkeypatch.delenv(tasks.PAUSE_ENV)
    again = controller.resubmit(job_id)
    job = controller.wait(again, timeout=300)
    assert job.status == "finished", job.message
    result = tasks.view(controller, job)["result"]
    assert result["name"] == "merged-fp32" and os.path.isfile(result["archive"])
    assert [e.name for e in export.export_entries(saves / "lora-run")] == ["merged-fp32"]
    assert tasks.latest(controller, "export", {"run": "lora-run"}).run_id == again


def test_out_of_memory_in_a_job_fails_it_in_one_line_and_the_controller_keeps_going(saves, monkeypatch):
    monkeypatch.setenv(tasks.MEMORY_ENV, "1")  # nothing more than the libraries: loading the model fails
    controller = JobController(saves)
    job_id = tasks.submit(controller, "gallery", {"run": "lora-run", "prompts": ["hello"]})
    job = controller.wait(job_id, timeout=300)
    assert job.status == "failed" and "\n" not in job.message
    assert "memory" in job.message.lower(), job.message
    monkeypatch.delenv(tasks.MEMORY_ENV)
    # the same controller (the UI's) still runs the next job
    ok = controller.wait(
        tasks.submit(controller, "gallery", {"run": "lora-run", "prompts": ["hello"], "max_new_tokens": 4}), timeout=300
    )
    assert ok.status == "finished" and tasks.view(controller, ok)["result"]["prompts"] == ["hello"]


def test_a_restarted_controller_reattaches_to_a_running_job_and_can_stop_it(saves, monkeypatch):
    monkeypatch.setenv(tasks.PAUSE_ENV, "generate:120")
    first = JobController(saves, grace=30, term_seconds=5)
    job_id = tasks.submit(first, "eval", EVAL)
    wait_for(lambda: steps_seen(first, job_id) > 0, first, what="the evaluation's first step")
    first.stop_watcher()  # as if its UI process were gone: the job is not
    second = JobController(saves, grace=0.5, term_seconds=1)
    second.tick()
    assert second.job(job_id).status == "running"
    second.abort(job_id)
    job = second.wait(job_id, timeout=60)
    assert job.status == "aborted"


def test_bad_job_requests_are_refused_before_anything_starts(saves):
    controller = JobController(saves)
    with pytest.raises(ValueError, match="no such run: nope"):
        tasks.submit(controller, "export", {"run": "nope", "kind": "merged"})
    with pytest.raises(tasks.TaskError, match="eval mode 'best'"):
        tasks.submit(controller, "eval", {"spec": "lora-run", "mode": "best"})
    with pytest.raises(tasks.TaskError, match="unknown job kind"):
        tasks.submit(controller, "dance", {})
    assert controller.tasks() == []


def test_damaged_job_folders_are_listed_not_fatal(saves):
    controller = JobController(saves)
    for name, text in {"eval-a": "[]", "eval-b": "{", "eval-c": json.dumps({"status": 3})}.items():
        folder = saves / TASKS_DIR / name
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(text)
    controller.tick()
    listed = controller.tasks("eval")
    assert sorted(j.run_id for j in listed) == ["eval-a", "eval-b", "eval-c"]
    assert all(j.status == "damaged" and j.message for j in listed)
    with pytest.raises(ValueError):
        controller.resubmit("eval-a")


@pytest.mark.slow
def test_the_ui_keeps_serving_when_a_job_runs_out_of_memory(saves):
    """The served UI's own controller starts the job (its children inherit the memory cap), reports
    it failed in one line, and the page is still served."""
    import urllib.request

    from tests.browser import running_app

    with running_app(saves, ROOT, env={tasks.MEMORY_ENV: "1"}) as (url, proc):
        # queued on disk as the Evaluate tab would; the UI's watcher starts it
        job_id = JobController(saves).submit_task("eval", {**EVAL, "limit": 1}, start_now=False)
        deadline = time.time() + 300
        while time.time() < deadline and JobController(saves).job(job_id).status not in ("failed", "finished"):
            time.sleep(0.5)
        job = JobController(saves).job(job_id)
        assert job.status == "failed" and "memory" in job.message.lower() and "\n" not in job.message
        assert proc.poll() is None
        assert urllib.request.urlopen(url, timeout=30).status == 200


@pytest.mark.slow
def test_the_bench_runs_as_a_job_and_its_summary_is_the_result(tmp_path):
    controller = JobController(tmp_path / "saves")
    job_id = tasks.submit(
        controller,
        "bench",
        {
            "argv": [
                "--model",
                "tiny",
                "--methods",
                "lora",
                "--steps",
                "2",
                "--rows",
                "8",
                "--cutoff",
                "64",
                "--no-extras",
            ]
        },
    )
    job = controller.wait(job_id, timeout=600)
    assert job.status == "finished", job.message
    summary = tasks.view(controller, job)["result"]["summary"]
    assert summary["methods"]["lora"]["speedup"] > 0
