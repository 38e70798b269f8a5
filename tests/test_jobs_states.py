"""Job states without a model: stand-in trainer processes (plain Python) that the controller did
not start itself, as after a UI restart. Covers the abort escalation (stop file → SIGTERM →
SIGKILL, and which one happened), a reused pid, a dead run, and two UIs queueing at once."""

import functools
import json
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from workbench.config import from_dict
from workbench.jobs import Job, JobController

from browser import wait_until

wait_for = functools.partial(wait_until, timeout=60, poll=0.1)


def stand_in(saves, run_id, code: str) -> subprocess.Popen:
    """A 'trainer' in its own process group, registered in job.json as a running run."""
    run_dir = saves / run_id
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model_name_or_path: m\ndataset: identity\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=run_dir,
        start_new_session=True,
        stdout=open(run_dir / "train.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    Job(
        run_id=run_id,
        status="running",
        started=time.time(),
        pid=proc.pid,
        pgid=proc.pid,
        proc_start=psutil.Process(proc.pid).create_time(),
    ).save(run_dir)
    return proc


EVENT = (
    "import json,time\ndef emit(**e):\n    e.setdefault('step',0); e.setdefault('max_steps',10); e['time']=time.time()\n"
    "    open('events.jsonl','a').write(json.dumps(e)+'\\n')\n"
)
IGNORES_STOP = (
    EVENT + "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "emit(type='phase', phase='training')\nwhile True: time.sleep(0.1)\n"
)
DIES_ON_TERM = (
    EVENT + "import signal,sys\n"
    "def term(*a):\n    emit(type='error', message='aborted: the process was terminated', aborted=True); sys.exit(143)\n"
    "signal.signal(signal.SIGTERM, term)\nemit(type='phase', phase='training')\nwhile True: time.sleep(0.1)\n"
)
SAVING_THEN_ENDS = (
    EVENT + "emit(type='phase', phase='saving')\ntime.sleep(1.5)\n"
    "emit(type='end', final='final', stopped=False, step=10)\n"
)


def test_escalation_reaches_sigkill_and_says_so(saves):
    proc = stand_in(saves, "stuck", IGNORES_STOP)
    controller = JobController(saves, grace=0.5, term_seconds=0.5)
    assert "stop requested" in controller.abort("stuck")
    assert (saves / "stuck" / "STOP").exists()
    wait_for(lambda: (controller.tick(), controller.job("stuck").status)[1] == "aborted", timeout=30)
    job = controller.job("stuck")
    assert job.abort_stage == "sigkill"
    assert "SIGKILL" in job.message
    assert proc.wait(10) == -9
    assert not (saves / "stuck" / "STOP").exists()


def test_escalation_stops_at_sigterm_when_that_works(saves):
    proc = stand_in(saves, "term", DIES_ON_TERM)
    wait_for(lambda: (saves / "term" / "events.jsonl").exists())
    controller = JobController(saves, grace=0.3, term_seconds=60)
    controller.abort("term")
    wait_for(lambda: (controller.tick(), controller.job("term").status)[1] == "aborted", timeout=30)
    job = controller.job("term")
    assert job.abort_stage == "sigterm"
    assert "SIGTERM" in job.message
    assert proc.wait(10) == 143


def test_abort_while_saving_lets_the_result_finish(saves):
    stand_in(saves, "saving", SAVING_THEN_ENDS)
    controller = JobController(saves, grace=60)
    controller.abort("saving")
    wait_for(lambda: (controller.tick(), controller.job("saving").status)[1] != "stopping", timeout=30)
    job = controller.job("saving")
    assert job.status == "finished"
    assert "already ended" in job.message


def test_a_reused_pid_is_not_mistaken_for_the_run(saves):
    run_dir = saves / "old"
    run_dir.mkdir()
    # this test's own process is alive, but it started at another time than the run's
    me = psutil.Process(os.getpid())
    Job(run_id="old", status="running", pid=me.pid, pgid=None, proc_start=me.create_time() - 1000).save(run_dir)
    controller = JobController(saves)
    controller.tick()
    job = controller.job("old")
    assert job.status == "interrupted"
    assert "resume" in job.message


def test_a_run_that_died_unwatched_is_interrupted_and_a_live_one_stays_running(saves):
    dead = stand_in(saves, "dead", EVENT + "emit(type='phase', phase='training', step=3)\ntime.sleep(60)\n")
    alive = stand_in(saves, "alive", EVENT + "emit(type='phase', phase='training')\ntime.sleep(60)\n")
    try:
        wait_for(lambda: (saves / "dead" / "events.jsonl").exists())
        os.killpg(dead.pid, 9)
        dead.wait(10)
        killed_at = time.time()
        controller = JobController(saves)  # a fresh controller: the UI was restarted
        controller.tick()
        assert controller.job("dead").status == "interrupted"
        assert controller.job("dead").ended <= killed_at  # its duration ends at its last sign of life
        assert controller.job("alive").status == "running"
        assert controller.job("alive").pid == alive.pid
    finally:
        os.killpg(alive.pid, 9)
        alive.wait(10)


def test_two_ui_processes_queueing_at_once_lose_no_run(saves, tmp_path):
    # two controllers stand for two UI processes (or two browser sessions of one)
    first, second = JobController(saves, max_running=0), JobController(saves, max_running=0)
    cfg = {"model_name_or_path": "m", "dataset": "identity"}
    ids, barrier = [], threading.Barrier(8)

    def start(controller):
        barrier.wait()
        ids.append(controller.submit(from_dict(dict(cfg)), run_id="same-name"))

    threads = [threading.Thread(target=start, args=(c,)) for c in [first, second] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 8
    assert sorted(j.run_id for j in first.jobs() if j.status == "queued") == sorted(ids)


def test_the_queue_starts_runs_in_the_order_they_were_queued(saves, monkeypatch):
    controller = JobController(saves, max_running=0)
    ids = [
        controller.submit(from_dict({"model_name_or_path": "m", "dataset": "identity"}), run_id=f"r{i}")
        for i in range(3)
    ]
    launched = []
    monkeypatch.setattr(
        controller,
        "_launch",
        lambda job: (launched.append(job.run_id), setattr(job, "status", "running"), job.save(saves / job.run_id)),
    )
    monkeypatch.setattr(controller, "is_alive", lambda job: True)
    controller.max_running = 1
    controller.tick()
    assert launched == ["r0"]
    # r0 ends: the next one starts by itself
    job = controller.job("r0")
    job.status = "finished"
    job.save(saves / "r0")
    controller.tick()
    assert launched == ["r0", "r1"]
    assert [controller.job(i).status for i in ids] == ["finished", "running", "queued"]


def test_a_failure_says_why_in_one_line(saves):
    """Our own child ends: the reason comes from its error event, or else from the log's last line."""
    controller = JobController(saves)
    cases = {
        "oom": EVENT + "emit(type='error', message='out of memory: CUDA out of memory. Tried to allocate 2.00 GiB')\n"
        "raise SystemExit(1)\n",
        "config": "import sys\nprint(\"error: run.yaml: unknown key 'lerning_rate'\", file=sys.stderr)\nsys.exit(2)\n",
        "crash": "import os\nprint('Traceback (most recent call last):')\nprint('Fatal Python error: Segmentation fault', flush=True)\n"
        "os.kill(os.getpid(), 11)\n",
    }
    for run_id, code in cases.items():
        run_dir = saves / run_id
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text("model_name_or_path: m\ndataset: identity\n")
        Job(run_id=run_id).save(run_dir)
        code = f"import os\nos.chdir({str(run_dir)!r})\n" + code
        controller.command_for = lambda *a, code=code: [sys.executable, "-c", code]
        controller.tick()
        controller.wait(run_id, timeout=60)
    assert controller.job("oom").status == "failed"
    assert controller.job("oom").message.startswith("out of memory: CUDA out of memory")
    assert controller.job("config").message == "bad config: run.yaml: unknown key 'lerning_rate'"
    assert "SIGSEGV" in controller.job("crash").message


def test_engine_arguments_for_several_processes(monkeypatch, tmp_path):
    from workbench import distributed

    cfg = from_dict({"model_name_or_path": "m", "dataset": "identity", "nproc_per_node": 1})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert distributed.process_count(cfg) == 1 and distributed.launch_prefix(1) == [sys.executable]
    assert distributed.engine_training_args(cfg, tmp_path) == {}  # one process: no engine
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.engine_training_args(cfg, tmp_path) == {"use_cpu": True, "ddp_backend": "gloo"}
    cfg.distributed_engine = "fsdp"  # on CPU accelerate would quietly run DDP instead: refused
    with pytest.raises(ValueError, match="'fsdp' needs GPUs"):
        distributed.engine_training_args(cfg, tmp_path)
    monkeypatch.setattr(distributed, "visible_accelerators", lambda: 2)
    assert distributed.engine_training_args(cfg, tmp_path)["fsdp"] == "full_shard auto_wrap"
    monkeypatch.setattr(distributed, "visible_accelerators", lambda: 0)
    cfg.distributed_engine = "deepspeed_zero2"
    with pytest.raises(ValueError, match="DeepSpeed"):
        distributed.engine_training_args(cfg, tmp_path)
    assert json.loads((tmp_path / "deepspeed.json").read_text())["zero_optimization"]["stage"] == 2


def test_one_run_at_a_time_per_device_set(saves, monkeypatch):
    controller = JobController(saves, max_running=0)
    cfg = {"model_name_or_path": "m", "dataset": "identity"}
    for run_id, devices in [("gpu0-a", "0"), ("gpu0-b", "0"), ("gpu1", "1"), ("both", "0,1")]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", devices)
        controller.submit(from_dict(dict(cfg)), run_id=run_id)
    launched = []
    monkeypatch.setattr(
        controller,
        "_launch",
        lambda job: (
            launched.append((job.run_id, job.devices)),
            setattr(job, "status", "running"),
            job.save(saves / job.run_id),
        ),
    )
    monkeypatch.setattr(controller, "is_alive", lambda job: True)
    controller.max_running = 1
    controller.tick()
    # device 0 and device 1 each run one; the second run on 0 and the run on both wait
    assert launched == [("gpu0-a", "0"), ("gpu1", "1")]
    assert controller.job("gpu0-b").status == "queued" and controller.job("both").status == "queued"
