"""Runs survive what goes wrong around them (tiny model, real trainer processes): a controller
restart re-attaches to a live run; a SIGKILLed run is shown interrupted and resumes from its last
complete checkpoint (a half-written one is set aside) to the same step count; an abort while
loading ends cleanly; two processes through torchrun (gloo on CPU) give one result."""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from workbench.config import load_config
from workbench.events import read_all
from workbench.jobs import JobController
from workbench.progress import RunMonitor

from browser import wait_until
from conftest import ROOT

wait_for = functools.partial(wait_until, timeout=240, poll=0.2)


def submit_from_another_process(saves, config) -> str:
    """A UI process that starts a run and then goes away."""
    code = (
        "import sys; from workbench.jobs import JobController; from workbench.config import load_config; "
        "print(JobController(sys.argv[1]).submit(load_config(sys.argv[2])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(saves), str(config)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_restart_reattaches_then_a_killed_run_resumes_to_the_same_step_count(saves, write_config):
    max_steps = 8
    run_id = submit_from_another_process(saves, write_config(max_steps=max_steps, save_steps=3))
    run_dir = saves / run_id

    # the UI process that started it is gone; a new controller finds the run and streams it
    controller = JobController(saves)
    controller.tick()
    job = controller.job(run_id)
    assert job.status == "running"
    assert job.pid not in [c.pid for c in controller._children.values()]  # not its own child
    monitor = RunMonitor(run_dir)
    wait_for(lambda: any(e["type"] == "save" for e in read_all(run_dir)))
    monitor.update()
    assert monitor.step >= 3 and monitor.loss

    # the trainer dies (SIGKILL, as the kernel's OOM killer would) while nobody watches it
    os.killpg(job.pgid, signal.SIGKILL)
    wait_for(lambda: (controller.tick(), controller.job(run_id).status)[1] != "running", timeout=30)
    job = controller.job(run_id)
    assert job.status == "interrupted", job.message
    assert "resume" in job.message
    killed_at = max(e["step"] for e in read_all(run_dir) if e["type"] == "step")
    assert killed_at < max_steps

    # a checkpoint killed mid-save: weights there, trainer state missing
    complete = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    last_complete = int(complete[-1].name.split("-")[1])
    half = run_dir / f"checkpoint-{max_steps - 1}"
    shutil.copytree(complete[-1], half)
    (half / "trainer_state.json").unlink()

    controller.resume(run_id)
    job = controller.wait(run_id, timeout=300)
    assert job.status == "finished", job.message
    assert not half.exists() and (run_dir / f"incomplete-checkpoint-{max_steps - 1}").is_dir()
    starts = [e for e in read_all(run_dir) if e["type"] == "start"]
    assert starts[-1]["resumed_from"] == last_complete
    state = json.loads((run_dir / f"checkpoint-{max_steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == max_steps  # what an uninterrupted run reaches
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()

    # the loss curve continues where it stopped: one point per step, none twice
    monitor = RunMonitor(run_dir)
    monitor.update()
    assert [s for s, _ in monitor.loss] == list(range(1, max_steps + 1))
    assert load_config(run_dir / "config.yaml").max_steps == max_steps  # the config stayed as it was


def test_abort_while_loading_ends_cleanly_with_nothing_half_saved(saves, write_config):
    controller = JobController(saves)
    run_id = controller.submit(load_config(write_config(max_steps=50)))
    controller.abort(run_id)  # the trainer is still importing and loading
    job = controller.wait(run_id, timeout=180)
    assert job.status == "aborted"
    assert "training had not started" in job.message
    run_dir = saves / run_id
    assert not (run_dir / "final").exists() and not list(run_dir.glob("checkpoint-*"))
    assert not any(e["type"] == "step" for e in read_all(run_dir))


def test_two_processes_through_torchrun_give_one_result(saves, write_config):
    controller = JobController(saves)
    run_id = controller.submit(load_config(write_config(max_steps=3, save_steps=3, nproc_per_node=2)))
    job = controller.job(run_id)
    assert "torch.distributed.run" in job.command and "--nproc_per_node=2" in job.command
    job = controller.wait(run_id, timeout=400)
    run_dir = saves / run_id
    log = (run_dir / "train.log").read_text()
    assert job.status == "finished", job.message + log[-3000:]
    assert "process 0 of 2" in log and "process 1 of 2" in log  # both ranks trained
    assert log.count("done: result in") == 2
    events = read_all(run_dir)
    assert [e["step"] for e in events if e["type"] == "log" and "loss" in e] == [1, 2, 3]  # rank 0 only
    assert [e["type"] for e in events].count("end") == 1
    assert (run_dir / "final" / "adapter_model.safetensors").is_file()


def test_the_cli_hands_a_several_process_config_to_torchrun(write_config, tmp_path, monkeypatch):
    from workbench import train

    launched = []

    def fake_exec(path, argv):  # os.execv would replace this test's process
        launched.append(argv)
        raise SystemExit(0)

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(train.os, "execv", fake_exec)
    config = write_config(nproc_per_node=2, output_dir=str(tmp_path / "run"))
    with pytest.raises(SystemExit):
        train.main([str(config), "--set", "max_steps=2"])
    command = launched[0]
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[-3:] == ["--run-dir", str(tmp_path / "run"), "--set=max_steps=2"]


def test_deepspeed_without_deepspeed_is_refused_with_its_config_written(saves, write_config):
    controller = JobController(saves)
    run_id = controller.submit(load_config(write_config(nproc_per_node=2, distributed_engine="deepspeed_zero3")))
    job = controller.job(run_id)
    assert job.status == "failed" and job.pid is None
    assert "DeepSpeed" in job.message and "deepspeed.json" in job.message
    written = json.loads((saves / run_id / "deepspeed.json").read_text())
    assert written["zero_optimization"]["stage"] == 3
