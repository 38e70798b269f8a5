"""The job controller runs training in its own process group, and Abort keeps a usable adapter."""

import os
import time

import psutil

from workbench.config import load_config
from workbench.events import read_all
from workbench.jobs import JobController


def wait_for(predicate, timeout=120, poll=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    raise TimeoutError("condition not reached")


def test_start_returns_at_once_and_the_run_finishes_in_its_own_process(saves, write_config):
    controller = JobController(saves)
    cfg = load_config(write_config(max_steps=3))
    run_id = controller.submit(cfg)
    job = controller.job(run_id)
    # Start never waits for training: it returns while the trainer has not yet written its result
    assert job.status == "running" and job.pid != os.getpid() and not (saves / run_id / "final").exists()
    assert os.getpgid(job.pid) == job.pid  # its own process group
    job = controller.wait(run_id, timeout=300)
    assert job.status == "finished", job.message
    assert (saves / run_id / "final" / "adapter_config.json").is_file()
    assert (saves / run_id / "train.log").stat().st_size > 0


def test_abort_stops_gracefully_keeps_an_adapter_and_the_queued_run_starts_by_itself(saves, write_config):
    controller = JobController(saves)
    cfg = load_config(write_config(max_steps=5000, save_steps=1000, logging_steps=1))
    run_id = controller.submit(cfg)
    waiting = controller.submit(load_config(write_config("b.yaml", max_steps=2)))
    assert controller.job(waiting).status == "queued"  # one run at a time
    wait_for(lambda: any(e["type"] == "step" and e["step"] >= 3 for e in read_all(saves / run_id)))
    message = controller.abort(run_id)
    assert "stop requested" in message
    assert controller.job(run_id).status == "stopping"
    job = controller.wait(run_id, timeout=120)
    assert job.status == "aborted"
    assert "gracefully" in job.message
    assert (saves / run_id / "final" / "adapter_model.safetensors").is_file()
    steps = [e["step"] for e in read_all(saves / run_id) if e["type"] == "step"]
    assert steps[-1] < 5000
    assert not psutil.pid_exists(job.pid) or psutil.Process(job.pid).status() == psutil.STATUS_ZOMBIE
    # the queued run starts by itself once the device is free
    assert controller.wait(waiting, timeout=300).status == "finished"
    assert controller.job(waiting).started >= job.ended - 1.5
