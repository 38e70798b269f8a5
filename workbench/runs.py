"""The run-folder layout, in one place (no torch, no transformers: the job controller and the UI
import this without loading a model library).

  saves/<run>/config.yaml   the run's settings
              job.json      the job controller's state of the run (absent for a CLI run)
              events.jsonl  what the trainer did (see events.py)
              train.log     the trainer's output
              STOP          a graceful stop was asked for
              checkpoint-N/ complete when trainer_state.json is there
              final/        the result (adapter or model)
  saves/_jobs/<kind>-<time>/  every other job (evaluation, sample gallery, export, bench):
              job.json      the same controller state as a run's, with its kind
              spec.json     what to do: {"kind": ..., "args": {...}}
              events.jsonl  progress, then an end or error event
              job.log       the job's output
              result.json   what it produced (written atomically when it ends)
              STOP          stop asked for

Every reader here is tolerant: a damaged file gives a readable problem, never an exception.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .confine import ConfinementError, run_folder
from .events import EVENTS_FILE

CONFIG_FILE = "config.yaml"
JOB_FILE = "job.json"
LOG_FILE = "train.log"
STOP_FILE = "STOP"
FINAL_DIR = "final"
STATE_FILE = "trainer_state.json"
INCOMPLETE_PREFIX = "incomplete-"
CHECKPOINT_PREFIX = "checkpoint-"
BASE_PREFIX = "base:"
TASKS_DIR = "_jobs"
TASK_SPEC = "spec.json"
TASK_RESULT = "result.json"
TASK_LOG = "job.log"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")

__all__ = [
    "BASE_PREFIX",
    "CHECKPOINT_PREFIX",
    "CONFIG_FILE",
    "EVENTS_FILE",
    "FINAL_DIR",
    "INCOMPLETE_PREFIX",
    "JOB_FILE",
    "LOG_FILE",
    "STATE_FILE",
    "STOP_FILE",
    "TASKS_DIR",
    "TASK_LOG",
    "TASK_RESULT",
    "TASK_SPEC",
    "RunRef",
    "checkpoint_step",
    "choose_run_dir",
    "complete_checkpoints",
    "new_task_id",
    "read_json_object",
    "task_folders",
    "is_run_folder",
    "locate",
    "new_run_id",
    "read_config",
    "read_config_checked",
    "read_job_data",
    "resolve_run",
    "run_folders",
    "saves_root",
]


def saves_root() -> Path:
    """--saves / WORKBENCH_SAVES, else ./saves: absolute, so a run never depends on a later cwd."""
    return Path(os.environ.get("WORKBENCH_SAVES") or "saves").expanduser().absolute()


def new_run_id(cfg) -> str:
    """<time>-<stage>-<method>-<first dataset>: readable, and sorted by start time."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "-", cfg.datasets()[0])[:24]
    return f"{stamp}-{cfg.stage}-{cfg.finetuning_type}-{dataset}"


def choose_run_dir(cfg) -> Path:
    """The folder this run writes to. A folder that already holds a previous run's events is
    never written over: unless resuming, the run goes to a fresh sibling folder."""
    if not cfg.output_dir:
        return saves_root() / new_run_id(cfg)
    run_dir = Path(cfg.output_dir)
    events = run_dir / EVENTS_FILE
    if cfg.resume_from_checkpoint or not events.exists() or events.stat().st_size == 0:
        return run_dir
    n = 2
    while (run_dir.parent / f"{run_dir.name}-r{n}").exists():
        n += 1
    return run_dir.parent / f"{run_dir.name}-r{n}"


def checkpoint_step(name: str) -> int | None:
    """N of a folder named checkpoint-N, else None."""
    match = _CHECKPOINT.fullmatch(name)
    return int(match.group(1)) if match else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints that finished saving (their trainer state is present), oldest first.

    The Trainer writes checkpoints non-atomically; one killed mid-save has no state file."""
    found = []
    for path in Path(run_dir).glob(CHECKPOINT_PREFIX + "*"):
        step = checkpoint_step(path.name)
        if step is not None and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((step, path))
    return [p for _, p in sorted(found)]


def is_run_folder(path: Path) -> bool:
    """A folder the job controller or the trainer made (it has a job.json or events)."""
    return (
        path.is_dir()
        and not path.name.startswith(".")
        and ((path / JOB_FILE).exists() or (path / EVENTS_FILE).exists())
    )


def run_folders(root: Path) -> list[Path]:
    """Every run folder under root (unsorted); none when root is missing."""
    try:
        return [p for p in Path(root).iterdir() if is_run_folder(p)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def new_task_id(kind: str) -> str:
    """<kind>-<time>: a job that is not a training run (its folder is saves/_jobs/<id>)."""
    return f"{re.sub(r'[^a-z0-9]+', '-', kind.lower())}-{time.strftime('%Y%m%d-%H%M%S')}"


def task_folders(root: Path) -> list[Path]:
    """Every job folder under saves/_jobs (unsorted); none when there is none."""
    try:
        return [
            p
            for p in (Path(root) / TASKS_DIR).iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / JOB_FILE).exists()
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []


# ---- config.yaml and job.json, read tolerantly ------------------------------------------------
def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None), (None, None) when absent, or (None, problem)."""
    try:
        return path.read_text(encoding="utf-8"), None
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, f"{path.name} is a folder, not a file"
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text"
    except OSError as err:
        return None, f"{path.name} cannot be read ({err.strerror or err})"


def read_config_checked(run_dir: Path) -> tuple[dict, str | None]:
    """The run's config.yaml as a dict and what is wrong with it (None when nothing is)."""
    import yaml

    text, problem = _read_text(Path(run_dir) / CONFIG_FILE)
    if text is None:
        return {}, problem or f"{CONFIG_FILE} is missing"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return {}, f"{CONFIG_FILE} is not valid YAML{where}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, f"{CONFIG_FILE} is not a mapping (it holds a {type(data).__name__})"
    return data, None


def read_config(run_dir: Path) -> dict:
    """The run's config.yaml as a dict; {} when it is missing or damaged."""
    return read_config_checked(run_dir)[0]


def read_job_data(run_dir: Path) -> tuple[dict | None, str | None]:
    """job.json as a dict: (data, None), (None, None) when there is none, (None, problem) when damaged."""
    text, problem = _read_text(Path(run_dir) / JOB_FILE)
    if text is None:
        return None, problem
    try:
        data = json.loads(text)
    except ValueError:
        return None, f"{JOB_FILE} is not valid JSON"
    if not isinstance(data, dict):
        return None, f"{JOB_FILE} is not an object (it holds {json.dumps(data)[:20]})"
    return data, None


def read_json_object(path: Path) -> tuple[dict | None, str | None]:
    """A JSON object file: (data, None), (None, None) when absent, (None, problem) when damaged."""
    text, problem = _read_text(Path(path))
    if text is None:
        return None, problem
    try:
        data = json.loads(text)
    except ValueError:
        return None, f"{Path(path).name} is not valid JSON"
    if not isinstance(data, dict):
        return None, f"{Path(path).name} is not an object (it holds {json.dumps(data)[:20]})"
    return data, None


# ---- naming a run or a checkpoint ---------------------------------------------------------------
@dataclass(frozen=True)
class RunRef:
    """A run, or one of its checkpoints, inside a saves folder."""

    root: Path
    run_id: str
    checkpoint: str = ""  # "" for the run's final result, else "checkpoint-N"

    @property
    def run_dir(self) -> Path:
        return self.root / self.run_id

    @property
    def folder(self) -> Path:
        """Where the weights are: final/ or checkpoint-N/."""
        return self.run_dir / (self.checkpoint or FINAL_DIR)

    @property
    def spec(self) -> str:
        return f"{self.run_id}/{self.checkpoint}" if self.checkpoint else self.run_id


def resolve_run(spec: str, root: Path | None = None) -> RunRef:
    """'<run>' or '<run>/checkpoint-N' inside root (the saves folder); ValueError naming the spec
    when it is not there. Nothing outside root is ever named."""
    root = Path(root or saves_root())
    run_id, _, checkpoint = str(spec).partition("/")
    bad = (
        not run_id
        or run_id.startswith(".")
        or "/" in checkpoint
        or "\\" in spec
        or (checkpoint and checkpoint_step(checkpoint) is None)
    )
    if not bad:
        try:  # after symlinks too: a link placed in the runs folder does not lead out of it
            run_folder(root, str(spec))
        except ConfinementError:
            bad = True
    if bad or not (root / run_id).is_dir():
        raise ValueError(f"no such run: {spec} (looked in {root})")
    return RunRef(root, run_id, checkpoint)


def locate(arg: str, root: Path | None = None) -> tuple[Path, str]:
    """What a command line names, as (saves folder, spec): a run folder or a checkpoint folder
    given as a path, or a run id / run/checkpoint-N inside root. Plain adapter folders (an
    adapter_config.json but no run around it) are given as (parent, name)."""
    root = Path(root or saves_root())
    folder = Path(arg)
    if folder.is_dir():
        if checkpoint_step(folder.name) is not None:
            return folder.resolve().parent.parent, f"{folder.resolve().parent.name}/{folder.name}"
        if (folder / CONFIG_FILE).is_file() or is_run_folder(folder) or (folder / "adapter_config.json").is_file():
            return folder.resolve().parent, folder.resolve().name
    return root, str(arg)
