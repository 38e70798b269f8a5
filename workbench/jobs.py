"""The job controller: start, queue, watch, abort, resume and re-attach training runs and every
other long job (evaluation, sample gallery, export, bench: see tasks.py).

It knows processes, files and states, not models. Each run's state lives in
saves/<run>/job.json (written atomically), so a restarted UI finds every run again:

  queued → running → finished | failed | aborted
                   → stopping (abort requested) → aborted
  running, but the process is gone with no end/error event → interrupted (resume offered)

A run is identified by its pid *and* the process start time, so a reused pid is never
mistaken for the run. The trainer runs in its own process group (start_new_session) with its
output going to train.log, never to a pipe. Other jobs live in saves/_jobs/<id>/ (runs.py) with
the same job.json, run `python -m workbench.tasks <folder>` and share the one queue per device set:
an evaluation waits for the training on its device.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from . import distributed
from .config import RunConfig, atomic_write_text, save_config
from .locale import Message
from .progress import RunMonitor
from .runs import (
    CONFIG_FILE,
    JOB_FILE,
    LOG_FILE,
    STOP_FILE,
    TASK_LOG,
    TASK_SPEC,
    TASKS_DIR,
    complete_checkpoints,
    new_run_id,
    new_task_id,
    read_config_checked,
    read_job_data,
    run_folders,
    saves_root,
    task_folders,
)

ACTIVE = ("running", "stopping")
FINAL = ("finished", "failed", "aborted", "interrupted")
DAMAGED = "damaged"  # its job.json cannot be read: shown with the problem, never started or resumed
STATUSES = ("queued", *ACTIVE, *FINAL, DAMAGED)
GRACE_SECONDS = float(os.environ.get("WORKBENCH_ABORT_GRACE", "60"))
TERM_SECONDS = 10.0
TRAIN = "train"  # the kind of a training run; other kinds are in tasks.KINDS


@dataclass
class Job:
    run_id: str
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    pgid: int | None = None
    proc_start: float | None = None  # psutil create_time: tells our pid from a reused one
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    message: str = ""  # one readable line: why it failed, how it was stopped
    abort_requested: float | None = None
    abort_stage: str | None = None  # stop_file, sigterm, sigkill
    resume: bool = False
    owner: str | None = None  # the UI session that started it (for display only)
    devices: str = "all"  # the accelerators it may use (CUDA_VISIBLE_DEVICES); one run per set
    kind: str = TRAIN  # train, or a job of tasks.py (eval, gallery, export, bench)

    @classmethod
    def load(cls, run_dir: Path) -> Job | None:
        """The run's job, None when it has no job.json, or a job with status damaged that says
        what is wrong. The folder name is the run id, whatever the file claims."""
        run_dir = Path(run_dir)
        data, problem = read_job_data(run_dir)
        if data is None and problem is None:
            return None
        if problem is None:
            problem = _job_problem(data)
        if problem is not None:
            return cls.damaged(run_dir, problem)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["run_id"] = run_dir.name
        message = Message.from_data(data["message_data"]) if "message_data" in data else None
        if message is not None:
            known["message"] = message
        return cls(**known)

    @classmethod
    def damaged(cls, run_dir: Path, problem: str) -> Job:
        try:
            created = run_dir.stat().st_mtime
        except OSError:
            created = 0.0
        return cls(run_id=run_dir.name, status=DAMAGED, created=created, message=problem)

    def save(self, run_dir: Path) -> None:
        data = asdict(self)
        if isinstance(self.message, Message):  # its key, so the page can show it in any language
            data["message_data"] = self.message.to_data()
        atomic_write_text(run_dir / JOB_FILE, json.dumps(data, indent=2))


class JobController:
    """One per process that manages runs; several processes may share a saves folder (a file
    lock serialises their decisions)."""

    def __init__(
        self,
        root: str | Path | None = None,
        max_running: int = 1,
        grace: float | None = None,
        term_seconds: float | None = None,
    ):
        self.root = Path(root) if root else saves_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_running = max_running
        self.grace = GRACE_SECONDS if grace is None else grace  # stop file → SIGTERM
        self.term_seconds = TERM_SECONDS if term_seconds is None else term_seconds  # SIGTERM → SIGKILL
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self._monitors: dict[str, RunMonitor] = {}
        self._read_lock = threading.Lock()
        self._configs: dict[str, tuple] = {}

    # ---- paths and reading ------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        path = (self.root / run_id).resolve()
        if path.parent != self.root.resolve() or not run_id or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        return path

    def task_dir(self, task_id: str) -> Path:
        tasks = (self.root / TASKS_DIR).resolve()
        path = (tasks / task_id).resolve()
        if path.parent != tasks or not task_id or task_id.startswith("."):
            raise ValueError(f"not a job id: {task_id!r}")
        return path

    def folder(self, job_id: str) -> Path:
        """The folder of a job: saves/_jobs/<id> when there is one, else the run's folder."""
        with contextlib.suppress(ValueError):
            path = self.task_dir(job_id)
            if path.is_dir():
                return path
        return self.run_dir(job_id)

    def _dir_of(self, job: Job) -> Path:
        return self.task_dir(job.run_id) if job.kind != TRAIN else self.run_dir(job.run_id)

    def job(self, run_id: str) -> Job | None:
        return Job.load(self.folder(run_id))

    def tasks(self, kind: str | None = None) -> list[Job]:
        """Every job that is not a training run (of one kind, or all), oldest first; damaged ones
        (unreadable job.json) are listed with status damaged."""
        out = []
        for path in task_folders(self.root):
            try:
                job = Job.load(path)
            except Exception as err:  # noqa: BLE001 - one unreadable job must not hide the others
                job = Job.damaged(path, f"cannot be read: {err}")
            if job is not None and (kind is None or job.kind == kind or job.status == DAMAGED):
                out.append(job)
        return sorted(out, key=lambda j: (j.created, j.run_id))

    def run_ids(self) -> list[str]:
        """Every run folder (with a job.json or events from a CLI run), oldest first."""
        return [job.run_id for job in self.jobs()]

    def jobs(self) -> list[Job]:
        """Every run's job, oldest first (each job.json read once: the UI calls this every second).
        A damaged run is a job with status damaged; a CLI run is described from its events."""
        out = []
        for path in run_folders(self.root):
            try:
                job = Job.load(path)
                if job is None:
                    job = self._job_from_events(path.name)
            except Exception as err:  # noqa: BLE001 - one unreadable run must not hide the others
                job = Job.damaged(path, f"cannot be read: {err}")
            out.append(job)
        return sorted(out, key=lambda j: (j.created, j.run_id))

    def monitor(self, run_id: str) -> RunMonitor:
        """The run's progress, read incrementally: each call reads only the events appended since
        the last one (the run list asks for every run each second)."""
        run_dir = self.folder(run_id)
        with self._read_lock:  # the watcher thread and the page read the same monitors
            mon = self._monitors.get(str(run_dir))
            if mon is None or mon.run_dir != run_dir or mon.truncated():
                mon = self._monitors[str(run_dir)] = RunMonitor(run_dir)
            mon.update()
        return mon

    def config_of(self, run_id: str) -> tuple[dict, str | None]:
        """The run's config.yaml and what is wrong with it, parsed again only when the file changed."""
        path = self.run_dir(run_id) / CONFIG_FILE
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None
        cached = self._configs.get(run_id)
        if cached is None or cached[0] != key:
            data, problem = read_config_checked(path.parent) if key else ({}, None)
            cached = self._configs[run_id] = (key, data, problem)
        return cached[1], cached[2]

    def summary(self, job: Job, now: float | None = None) -> dict:
        """One line of the run list: status (or what is damaged), stage, method, dataset, steps,
        last loss and duration; every value read tolerantly."""
        cfg, config_problem = self.config_of(job.run_id)
        mon = self.monitor(job.run_id)
        damaged = job.message if job.status == DAMAGED else config_problem
        end = job.ended or ((now or time.time()) if job.status in ACTIVE else None)
        duration = end - job.started if job.started and end else None
        return {
            "run": job.run_id,
            "status": DAMAGED if damaged else job.status,
            "damaged": damaged,
            "stage": _text(cfg.get("stage"), "sft"),
            "method": _text(cfg.get("finetuning_type"), "lora"),
            "dataset": _text(cfg.get("dataset"), ""),
            "step": mon.step,
            "max_steps": mon.max_steps,
            "last_loss": mon.last_loss(),
            "duration": duration,
            "message": job.message,
        }

    def summaries(self, jobs: list[Job] | None = None) -> list[dict]:
        return [self.summary(job) for job in (self.jobs() if jobs is None else jobs)]

    def _job_from_events(self, run_id: str) -> Job:
        """A run started on the command line has no job.json: describe it from its events."""
        run_dir = self.run_dir(run_id)
        mon = self.monitor(run_id)
        job = Job(
            run_id=run_id,
            status="interrupted",
            started=mon.first_time,
            created=mon.first_time if mon.first_time is not None else _mtime(run_dir),
        )
        if mon.final is not None:
            job.status, job.message = _status_from_final(mon.final)
            job.ended = mon.last_time
        elif mon.pid and cli_process_alive(mon.pid, mon.pid_time):
            job.status, job.pid = "running", mon.pid
        else:
            job.ended = mon.last_time
            job.message = Message("jobmsg.no_final_event")
        return job

    # ---- submitting ---------------------------------------------------------------------
    def submit(self, cfg: RunConfig, run_id: str | None = None, owner: str | None = None) -> str:
        """Queue a run and return its id at once; the run starts when the device is free."""
        with self._lock:
            base = run_id or new_run_id(cfg)
            run_id = self.unique_id(base)
            while True:  # another UI process may take the same name at the same moment
                try:
                    self.run_dir(run_id).mkdir(parents=True, exist_ok=False)
                    break
                except FileExistsError:
                    run_id = self.unique_id(base)
            run_dir = self.run_dir(run_id)
            cfg.output_dir = str(run_dir)
            save_config(cfg, run_dir / CONFIG_FILE)
            Job(run_id=run_id, owner=owner, devices=current_device_set()).save(run_dir)
        self.tick()
        return run_id

    def submit_task(self, kind: str, args: dict, owner: str | None = None, start_now: bool = True) -> str:
        """Queue a job of tasks.py (use tasks.submit, which checks the spec first); its id at once.
        With start_now False it only waits in the queue for a controller's next tick (a UI's watcher)."""
        with self._lock:
            base = new_task_id(kind)
            (self.root / TASKS_DIR).mkdir(parents=True, exist_ok=True)
            task_id, n = base, 2
            while True:
                try:
                    self.task_dir(task_id).mkdir(exist_ok=False)
                    break
                except FileExistsError:
                    task_id, n = f"{base}-{n}", n + 1
            folder = self.task_dir(task_id)
            spec = {"kind": kind, "args": {**args, "saves": str(self.root.resolve())}}
            atomic_write_text(folder / TASK_SPEC, json.dumps(spec, ensure_ascii=False, indent=1))
            Job(run_id=task_id, owner=owner, devices=current_device_set(), kind=kind).save(folder)
        if start_now:
            self.tick()
        return task_id

    def resubmit(self, task_id: str, owner: str | None = None) -> str:
        """Queue an ended job again with the same spec (a new job: the old one stays as it ended)."""
        from .runs import read_json_object

        job = self.job(task_id)
        if job is None or job.kind == TRAIN:
            raise ValueError(f"no such job: {task_id}")
        if job.status not in FINAL:
            raise ValueError(f"job {task_id} cannot be submitted again while it is {job.status}")
        spec, problem = read_json_object(self.task_dir(task_id) / TASK_SPEC)
        if spec is None:
            raise ValueError(f"job {task_id}: {problem or TASK_SPEC + ' is missing'}")
        args = {k: v for k, v in (spec.get("args") or {}).items() if k != "saves"}
        return self.submit_task(job.kind, args, owner=owner)

    def unique_id(self, base: str) -> str:
        run_id, n = base, 2
        while (self.root / run_id).exists():
            run_id, n = f"{base}-{n}", n + 1
        return run_id

    def resume(self, run_id: str) -> None:
        """Queue an ended run again to continue from its last complete checkpoint."""
        with self._lock, self._disk_lock():
            run_dir = self.run_dir(run_id)
            job = self.job(run_id)
            if job is None or job.status not in FINAL:
                raise ValueError(
                    Message(
                        "jobmsg.cannot_resume",
                        run=run_id,
                        status=Message("jobstate." + (job.status if job else "unknown")),
                    )
                )
            if not complete_checkpoints(run_dir):
                raise ValueError(Message("jobmsg.no_checkpoint", run=run_id))
            (run_dir / STOP_FILE).unlink(missing_ok=True)
            job.status, job.resume, job.message = "queued", True, ""
            job.created = time.time()  # back of the queue
            job.exit_code = job.abort_requested = job.abort_stage = job.ended = None
            job.save(run_dir)
        self.tick()

    # ---- aborting -----------------------------------------------------------------------
    def abort(self, run_id: str) -> str:
        """Ask a run to stop. Graceful first (stop file: the trainer saves and ends), then
        SIGTERM to its process group after a grace period, SIGKILL last (see tick)."""
        with self._lock, self._disk_lock():
            run_dir = self.folder(run_id)
            job = self.job(run_id)
            if job is None:
                raise ValueError(Message("jobmsg.no_such_run", run=run_id))
            if job.status == "queued":
                job.status, job.ended, job.message = "aborted", time.time(), Message("jobmsg.dequeued")
                job.save(run_dir)
                return job.message
            if job.status not in ACTIVE:
                return Message("jobmsg.already", run=run_id, status=Message("jobstate." + job.status))
            (run_dir / STOP_FILE).write_text("stop requested\n")
            job.status, job.abort_requested, job.abort_stage = "stopping", time.time(), "stop_file"
            job.save(run_dir)
            return Message("jobmsg.stop_requested" if job.kind == TRAIN else "jobmsg.stop_requested_job")

    # ---- the loop -----------------------------------------------------------------------
    def tick(self) -> None:
        """Bring every job's state up to date and start queued runs when the device is free."""
        with self._lock, self._disk_lock():
            # runs the controller started (a job.json); CLI runs and damaged ones are only shown
            folders = run_folders(self.root) + task_folders(self.root)
            jobs = [j for j in map(Job.load, folders) if j is not None and j.status != DAMAGED]
            for job in jobs:
                if job.status in ACTIVE:
                    self._refresh(job)
            active = [j for j in jobs if j.status in ACTIVE]
            for job in sorted((j for j in jobs if j.status == "queued"), key=lambda j: j.created):
                # one run at a time per device set: runs on other devices do not wait for it
                if sum(1 for a in active if devices_overlap(a.devices, job.devices)) >= self.max_running:
                    continue
                self._launch(job)
                if job.status in ACTIVE:
                    active.append(job)

    def start_watcher(self, interval: float = 1.0) -> None:
        """Tick in a background thread (the UI process runs one)."""
        if self._watcher and self._watcher.is_alive():
            return

        def loop():
            while not self._stop_watching.wait(interval):
                try:
                    self.tick()
                except Exception as err:  # noqa: BLE001 - the watcher must outlive one bad tick
                    print(f"job watcher: {err}", file=sys.stderr, flush=True)

        self._stop_watching.clear()
        self._watcher = threading.Thread(target=loop, name="job-watcher", daemon=True)
        self._watcher.start()

    def stop_watcher(self) -> None:
        self._stop_watching.set()

    @contextlib.contextmanager
    def _disk_lock(self):
        with open(self.root / ".controller.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- processes ----------------------------------------------------------------------
    def command_for(self, run_dir: Path, nproc: int, resume: bool, cfg=None) -> list[str]:
        """The same trainer, once or through torchrun (several processes, or node 0 of several)."""
        train = ["-m", "workbench.train", str(run_dir / CONFIG_FILE), "--run-dir", str(run_dir)]
        if resume:
            train += ["--set", "resume_from_checkpoint=last"]
        return distributed.launch_prefix(nproc, cfg) + train

    def equivalent_command(self, run_id: str) -> str:
        """What a user types to repeat the run without the browser (the CLI hands a run with
        several processes to torchrun itself; it never overwrites this run's folder)."""
        return "workbench train " + shlex.quote(str(self.run_dir(run_id) / CONFIG_FILE))

    def _launch(self, job: Job) -> None:
        from .config import load_config

        if job.kind != TRAIN:
            return self._launch_task(job)
        run_dir = self.run_dir(job.run_id)
        try:
            cfg = load_config(run_dir / CONFIG_FILE)
        except Exception as err:  # noqa: BLE001 - a bad config fails the run, not the controller
            job.status, job.ended, job.message = "failed", time.time(), Message("jobmsg.bad_config", reason=str(err))
            job.save(run_dir)
            return
        nproc = distributed.process_count(cfg)
        if distributed.uses_torchrun(cfg):
            try:  # refuse an engine that cannot run here before starting any process
                distributed.prepare_engine(cfg, run_dir)
            except Exception as err:  # noqa: BLE001
                job.status, job.ended, job.message = (
                    "failed",
                    time.time(),
                    Message("jobmsg.bad_config", reason=str(err)),
                )
                job.save(run_dir)
                return
        self._start(job, run_dir, self.command_for(run_dir, nproc, job.resume, cfg), LOG_FILE)

    def _launch_task(self, job: Job) -> None:
        folder = self.task_dir(job.run_id)
        # our own package first on the path, so the child runs this very code
        package_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self._start(job, folder, [sys.executable, "-m", "workbench.tasks", str(folder)], TASK_LOG, {"PYTHONPATH": path})

    def _start(self, job: Job, run_dir: Path, command: list[str], log_name: str, extra_env: dict | None = None):
        """Start the job's process in its own group, its output into its log file."""
        log = open(run_dir / log_name, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        if job.devices != "all":
            env["CUDA_VISIBLE_DEVICES"] = job.devices
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=os.getcwd(),
        )
        log.close()
        self._children[job.run_id] = proc
        job.status, job.started, job.pid, job.pgid = "running", time.time(), proc.pid, proc.pid
        job.command = command
        try:
            job.proc_start = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            job.proc_start = None
        job.save(run_dir)

    def is_alive(self, job: Job) -> bool:
        """The job's own process is still there (same pid and start time, not a zombie)."""
        child = self._children.get(job.run_id)
        if child is not None and child.poll() is not None:
            job.exit_code = child.returncode
            return False
        if not job.pid:
            return False
        try:
            proc = psutil.Process(job.pid)
            if job.proc_start is not None and abs(proc.create_time() - job.proc_start) > 0.01:
                return False  # the pid was reused by another process
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _refresh(self, job: Job) -> None:
        run_dir = self._dir_of(job)
        if self.is_alive(job):
            if job.status == "stopping":
                self._escalate(job, run_dir)
            return
        self._children.pop(job.run_id, None)
        self._kill_leftovers(job)  # workers of a distributed run whose launcher died
        mon = self.monitor(job.run_id)
        final = mon.final
        # a run that ended while no controller watched ended at its last event, not now
        job.ended = mon.last_time if mon.last_time and mon.last_time > (job.started or 0) else time.time()
        if final is not None:
            job.status, job.message = _status_from_final(final)
            if job.abort_requested and job.status == "failed" and final.get("aborted"):
                job.status = "aborted"
            if job.abort_requested and job.status == "finished":
                job.message = Message("jobmsg.ended_before_stop")
            if job.status == "aborted" and job.abort_stage == "sigterm":
                job.message = Message("jobmsg.sigterm_then", reason=job.message)
        elif job.abort_requested:
            job.status = "aborted"
            job.message = Message(
                {"sigkill": "jobmsg.sigkill", "sigterm": "jobmsg.sigterm"}.get(job.abort_stage or "", "jobmsg.stopped")
            )
        elif job.exit_code is not None:
            job.status = "failed"
            job.message = _exit_message(job.exit_code, run_dir, job.kind)
        else:
            job.status = "interrupted"
            job.message = Message("jobmsg.unwatched" if job.kind == TRAIN else "jobmsg.unwatched_job")
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        job.save(run_dir)

    def _escalate(self, job: Job, run_dir: Path) -> None:
        waited = time.time() - (job.abort_requested or time.time())
        if job.abort_stage == "stop_file" and waited >= self.grace:
            self._kill_group(job, signal.SIGTERM)
            job.abort_stage = "sigterm"
            job.save(run_dir)
        elif job.abort_stage == "sigterm" and waited >= self.grace + self.term_seconds:
            self._kill_group(job, signal.SIGKILL)
            job.abort_stage = "sigkill"
            job.save(run_dir)

    def _kill_leftovers(self, job: Job) -> None:
        """SIGKILL what is left of the run's process group, but only processes that started
        after the run did: a pid or group id reused by someone else is left alone."""
        if not job.pgid or job.proc_start is None:
            return
        for proc in psutil.process_iter(["create_time"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                if (
                    proc.info["create_time"] + 0.01 >= job.proc_start
                    and os.getpgid(proc.pid) == job.pgid
                    and proc.pid != os.getpid()
                ):
                    proc.kill()

    def _kill_group(self, job: Job, sig: int) -> None:
        """Signal the whole group (launcher and workers); only called while is_alive holds."""
        if not job.pgid:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pgid, sig)

    def wait(self, run_id: str, timeout: float = 600, poll: float = 0.5) -> Job:
        """Tick until the run has ended (for tests and the CLI)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.tick()
            job = self.job(run_id)
            if job and job.status in FINAL:
                return job
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} did not end within {timeout} s")


def print_runs(saves: str | Path | None = None, as_json: bool = False) -> int:
    """`workbench runs`: every run, oldest first; a damaged one says what is wrong. Reads only."""
    from .progress import format_duration

    root = Path(saves) if saves else saves_root()
    rows = []
    if root.is_dir():
        controller = JobController(root)
        rows = controller.summaries()
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no runs in {root}")
        return 0
    table = [("RUN", "STATUS", "STAGE/METHOD", "DATASET", "STEPS", "LOSS", "DURATION")]
    for row in rows:
        status = f"damaged: {row['damaged']}" if row["damaged"] else row["status"]
        steps = f"{row['step']}/{row['max_steps']}" if row["max_steps"] else str(row["step"])
        loss = "" if row["last_loss"] is None else f"{row['last_loss']:.4f}"
        table.append(
            (
                row["run"],
                status,
                f"{row['stage']}/{row['method']}",
                row["dataset"],
                steps,
                loss,
                format_duration(row["duration"]),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def cli_process_alive(pid: int, wrote_at: float | None) -> bool:
    """A run started on the command line is alive while its pid is, and that process is the one
    that wrote the run's events: it began before it wrote its first event. A pid reused by a
    later process fails the start-time test."""
    try:
        proc = psutil.Process(int(pid))
        if wrote_at is not None and proc.create_time() > wrote_at + 1.0:
            return False  # started after the run's process wrote: someone else has the pid
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError, TypeError, OverflowError):
        return False


_FIELD_TYPES = {
    "status": (str,),
    "created": (int, float),
    "started": (int, float, type(None)),
    "ended": (int, float, type(None)),
    "pid": (int, type(None)),
    "pgid": (int, type(None)),
    "proc_start": (int, float, type(None)),
    "command": (list,),
    "exit_code": (int, type(None)),
    "message": (str,),
    "abort_requested": (int, float, type(None)),
    "abort_stage": (str, type(None)),
    "resume": (bool,),
    "owner": (str, type(None)),
    "devices": (str,),
    "kind": (str,),
}


def _job_problem(data: dict) -> str | None:
    """What makes a parsed job.json unusable, or None."""
    if "status" not in data:
        return Message("jobmsg.no_status", file=JOB_FILE)
    for name, types in _FIELD_TYPES.items():
        if name in data and (not isinstance(data[name], types) or (isinstance(data[name], bool) and bool not in types)):
            return Message("jobmsg.wrong_type", file=JOB_FILE, name=name, type=type(data[name]).__name__)
    if data["status"] not in STATUSES or data["status"] == DAMAGED:
        return Message("jobmsg.unknown_status", file=JOB_FILE, status=repr(data["status"][:20]))
    if not all(isinstance(part, str) for part in data.get("command", [])):
        return Message("jobmsg.bad_command", file=JOB_FILE)
    return None


def _text(value, default: str) -> str:
    """A config value for display: lists joined, anything else as text, missing as the default."""
    if value is None or value == "":
        return default
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def current_device_set() -> str:
    """The accelerators this process may hand to a run: CUDA_VISIBLE_DEVICES, or all of them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "all" if visible is None else ",".join(d.strip() for d in visible.split(",") if d.strip())


def devices_overlap(a: str, b: str) -> bool:
    """Two device sets share a device ('all' shares with every set; CPU-only runs are 'all')."""
    if a == "all" or b == "all":
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


def _status_from_final(event: dict) -> tuple[str, str]:
    if event["type"] == "end":
        if event.get("stopped"):
            return "aborted", Message("jobmsg.stopped_gracefully")
        return "finished", ""
    if event.get("aborted"):
        return "aborted", event.get("message", "aborted")
    return "failed", event.get("message", "failed")


def _exit_message(code: int, run_dir: Path, kind: str = TRAIN) -> str:
    what = Message("jobmsg.what_train") if kind == TRAIN else Message("jobmsg.what_job", kind=kind)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return Message("jobmsg.killed_oom" if -code == signal.SIGKILL else "jobmsg.killed", what=what, signal=name)
    tail = last_log_line(run_dir, LOG_FILE if kind == TRAIN else TASK_LOG)
    if code == 2 and kind == TRAIN:  # train.py's exit code for a config it refuses
        return Message("jobmsg.bad_config", reason=tail.removeprefix("error: ") or Message("jobmsg.see_log"))
    return Message("jobmsg.exit_code_tail" if tail else "jobmsg.exit_code", what=what, code=code, tail=tail)


def last_log_line(run_dir: Path, log_name: str = LOG_FILE) -> str:
    try:
        with open(run_dir / log_name, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            lines = [ln for ln in handle.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1].strip() if lines else ""


def tail_log(run_dir: Path, max_bytes: int = 8192, log_name: str = LOG_FILE) -> str:
    try:
        with open(run_dir / log_name, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    # progress bars write carriage returns: show only the final state of each line
    return "\n".join(line.split("\r")[-1] for line in text.split("\n"))
