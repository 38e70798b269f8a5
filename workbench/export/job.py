"""Long exports as a background process the UI polls: progress in a small JSON file, cancel by
signal. The process is the same `workbench export` command a user would type.

  saves/<run>/exports/.job.json   {"state": running|done|error|cancelled, "fraction", "message", ...}
  saves/<run>/exports/.job.log    the process's output
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .common import ExportError, exports_dir
from .source import check_exportable

JOB_FILE = ".job.json"
JOB_LOG = ".job.log"
_children: dict[int, subprocess.Popen] = {}  # reaped here so a finished child is not a zombie


def job_file(run_dir: Path) -> Path:
    return exports_dir(run_dir) / JOB_FILE


def write_job(path: Path, **state) -> None:
    """Atomic: a reader sees the old state or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**state, "time": time.time()}), encoding="utf-8")
    os.replace(tmp, path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_status(run_dir: Path) -> dict | None:
    """The run's latest export job, or None. A job whose process vanished mid-way (killed, machine
    restarted) reads as an error; what it wrote was a temporary folder that never lists."""
    path = job_file(Path(run_dir))
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if state.get("state") == "running" and not _alive(state.get("pid")):
        time.sleep(0.2)  # the process may have written its last state just now
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if state.get("state") == "running" and not _alive(state.get("pid")):
            state.update(state="error", message="the export process ended before finishing")
            write_job(path, **{k: v for k, v in state.items() if k != "time"})  # say so once, on disk
    return state


def start_job(run_dir: Path, kind: str, **options) -> dict:
    """Start `workbench export` for this run in the background; returns its first state."""
    run_dir = Path(run_dir)
    check_exportable(run_dir)  # refused here, not in a background job that fails later
    current = job_status(run_dir)
    if current and current.get("state") == "running":
        raise ExportError(f"an export of {run_dir.name} is already running ({current.get('kind')}); "
                          f"wait for it or cancel it")
    path = job_file(run_dir)
    argv = [sys.executable, "-m", "workbench", "export", "--run", str(run_dir.resolve()),
            "--job-file", str(path.resolve())]
    if kind == "merged":
        argv += ["--merge", "--dtype", options.get("dtype") or "auto"]
    elif kind == "bnb":
        argv += ["--quantize", options.get("quantize", "4bit")]
    elif kind == "gguf":
        argv += ["--gguf", options.get("gguf_type", "q8_0")]
    elif kind != "adapter":
        raise ExportError(f"unknown export kind '{kind}'")
    if options.get("max_shard_size"):
        argv += ["--shard-size", options["max_shard_size"]]
    if options.get("checkpoint"):
        argv += ["--checkpoint", options["checkpoint"]]
    write_job(path, state="running", kind=kind, fraction=0.0, message="starting", pid=None)
    exports_dir(run_dir).mkdir(parents=True, exist_ok=True)
    with open(exports_dir(run_dir) / JOB_LOG, "wb") as log:
        # our own package first on the path, so the child runs this very code
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=env)
    _children[child.pid] = child
    write_job(path, state="running", kind=kind, fraction=0.0, message="starting", pid=child.pid)
    return job_status(run_dir)


def cancel_job(run_dir: Path, wait: float = 30.0) -> dict | None:
    """Ask the export to stop (SIGTERM: it removes its temporary folder); SIGKILL if it lingers."""
    state = job_status(Path(run_dir))
    if not state or state.get("state") != "running" or not state.get("pid"):
        return state
    pid = state["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return job_status(run_dir)
    deadline = time.time() + wait
    while time.time() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    state = job_status(run_dir) or {}
    if state.get("state") in ("running", "error"):
        write_job(job_file(Path(run_dir)), **{**state, "state": "cancelled", "message": "cancelled"})
    return job_status(run_dir)
