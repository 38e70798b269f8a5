"""Jobs other than training: evaluation (plain, before/after, gap analysis), the checkpoint
sample gallery, exports and the speed bench. The job controller (jobs.py) queues and starts them
like training runs; each runs here, in its own process:

    python -m workbench.tasks saves/_jobs/<id>

It reads the job's spec.json, streams progress to its events.jsonl (step events, then one end or
error event), writes what it produced to result.json, and stops early when the controller leaves
a STOP file (or sends SIGTERM). The UI only submits, shows progress and reads result.json; no
model is ever loaded in the UI process for these.

This module's top level imports no torch: the controller and the UI import the submit helpers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from .config import atomic_write_text
from .events import EventWriter
from .runs import STOP_FILE, TASK_RESULT, TASK_SPEC, read_json_object

KINDS = ("eval", "gallery", "export", "bench")
EVAL_MODES = ("plain", "compare", "gap")
# a memory cap for the job's process (MiB of address space): lets a test, or a careful user,
# see an out-of-memory end as a failed job while the UI keeps serving
MEMORY_ENV = "WORKBENCH_JOB_MEMORY_MB"
# "WORD:SECONDS" holds the job at the first step whose message has WORD (a stop still ends it):
# lets tests stop or re-attach a job at a known point
PAUSE_ENV = "WORKBENCH_JOB_PAUSE_AT"


class Stopped(Exception):
    """The controller asked the job to stop (STOP file or SIGTERM)."""


class TaskError(ValueError):
    """A spec the job cannot carry out (named field, readable reason)."""


# ==== submitting (used by the UI and the tests) ===============================================
def submit(controller, kind: str, args: dict, owner: str | None = None) -> str:
    """Queue a job of this kind; returns its id at once. Refusals that need no model (an unknown
    kind or mode, a run that is not there, a reward model to export) are raised here."""
    if kind not in KINDS:
        raise TaskError(f"unknown job kind {kind!r} (one of {', '.join(KINDS)})")
    check_spec(controller.root, kind, args)
    return controller.submit_task(kind, args, owner=owner)


def check_spec(root: Path, kind: str, args: dict) -> None:
    from .runs import resolve_run

    if kind == "eval":
        mode = args.get("mode", "plain")
        if mode not in EVAL_MODES:
            raise TaskError(f"eval mode {mode!r} is not one of {', '.join(EVAL_MODES)}")
        if not args.get("spec"):
            raise TaskError("eval needs a target (spec)")
    elif kind in ("gallery", "export"):
        if not args.get("run"):
            raise TaskError(f"{kind} needs a run")
        ref = resolve_run(args["run"], root)  # ValueError naming the run when it is not there
        if kind == "export":
            from .export.common import KINDS as EXPORT_KINDS
            from .export.source import check_exportable

            if args.get("kind", "merged") not in EXPORT_KINDS:
                raise TaskError(f"unknown export kind {args.get('kind')!r}")
            check_exportable(ref.run_dir)


def view(controller, job) -> dict:
    """What a tab shows of a job: status, fraction done, one line, and its result once finished."""
    folder = controller.task_dir(job.run_id)
    mon = controller.monitor(job.run_id)
    result = None
    if job.status == "finished":
        result, _problem = read_json_object(folder / TASK_RESULT)
    spec, _ = read_json_object(folder / TASK_SPEC)
    last = mon.final or {}
    message = job.message or str(last.get("message") or mon.note or "")
    return {
        "id": job.run_id,
        "kind": job.kind,
        "status": job.status,
        "fraction": mon.fraction,
        "message": message,
        "result": result,
        "args": (spec or {}).get("args") or {},
    }


def latest(controller, kind: str, match: dict | None = None):
    """The newest job of this kind whose args contain `match` (None when there is none)."""
    for job in reversed(controller.tasks(kind)):
        if not match:
            return job
        spec, _ = read_json_object(controller.task_dir(job.run_id) / TASK_SPEC)
        args = (spec or {}).get("args") or {}
        if all(args.get(k) == v for k, v in match.items()):
            return job
    return None


# ==== running (the child process) ==============================================================
class _Reporter:
    def __init__(self, folder: Path):
        self.folder = folder
        self.events = EventWriter(folder)
        word, _, seconds = os.environ.get(PAUSE_ENV, "").partition(":")
        self.pause = (word, float(seconds or 0)) if word else None

    def _maybe_pause(self, message: str) -> None:
        import time

        if not self.pause or self.pause[0] not in message:
            return
        until, self.pause = time.time() + self.pause[1], None
        while time.time() < until:
            self.check_stop()
            time.sleep(0.1)

    def check_stop(self) -> None:
        if (self.folder / STOP_FILE).exists():
            raise Stopped()

    def progress(self, done: int, total: int, what: str = "") -> None:
        """The evaluate/gallery progress callback: one step event per call."""
        self.check_stop()
        self.events.emit("step", step=int(done), max_steps=int(total), phase=what)
        self._maybe_pause(what)

    def fraction(self, fraction: float, message: str) -> None:
        """The export progress callback (a fraction and a line)."""
        self.check_stop()
        self.events.emit("step", step=int(round(100 * fraction)), max_steps=100, message=message)
        self._maybe_pause(message)


def run(folder: Path) -> int:
    folder = Path(folder)
    reporter = _Reporter(folder)
    spec, problem = read_json_object(folder / TASK_SPEC)
    if spec is None:
        reporter.events.emit("error", message=f"bad spec: {problem or TASK_SPEC + ' is missing'}")
        return 2
    kind, args = spec.get("kind"), spec.get("args") or {}
    reporter.events.emit("phase", phase="loading_model", pid=os.getpid(), kind=kind)

    def on_term(signum, frame):
        raise Stopped()

    signal.signal(signal.SIGTERM, on_term)
    try:
        _limit_memory()
        reporter.check_stop()
        result = _RUNNERS[kind](args, reporter) if kind in _RUNNERS else None
        if kind not in _RUNNERS:
            raise TaskError(f"unknown job kind {kind!r}")
    except Stopped:
        reporter.events.emit("error", aborted=True, message="stopped before it finished: nothing was saved")
        return 143
    except MemoryError as err:
        reporter.events.emit(
            "error", message="out of memory: " + (one_line(err) or "the job's process could not allocate more memory")
        )
        return 1
    except Exception as err:  # noqa: BLE001 - every failure reaches the events, in one line
        traceback.print_exc()
        reporter.events.emit("error", message=failure_line(err))
        return 2 if isinstance(err, ValueError) else 1
    atomic_write_text(folder / TASK_RESULT, json.dumps(result, ensure_ascii=False, indent=1, default=str) + "\n")
    reporter.events.emit("end", phase="done")
    return 0


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300]


def failure_line(err: BaseException) -> str:
    text = one_line(err)
    if (
        "out of memory" in text.lower()
        or "can't allocate memory" in text.lower()
        or "cannot allocate memory" in text.lower()
    ):
        return f"out of memory: {text}"
    from .export.common import ExportError

    if isinstance(err, (ValueError, ExportError)):  # refusals (EvalError, DataError, ...) read as they are
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _limit_memory() -> None:
    """Cap the address space (MEMORY_ENV, MiB) once the libraries are loaded, so the cap limits
    what the job allocates (model, data); a cap below what is already mapped means nothing more."""
    megabytes = os.environ.get(MEMORY_ENV, "").strip()
    if not megabytes:
        return
    import resource

    import psutil
    import torch  # noqa: F401 - loaded before the cap: only the job's own allocations hit it
    import transformers  # noqa: F401

    limit = max(int(float(megabytes) * 1024 * 1024), psutil.Process().memory_info().vms)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _evaluator(args: dict):
    from .evaluate import Evaluator

    return Evaluator(
        root=Path(args["saves"]),
        batch_size=int(args.get("batch_size") or 8),
        max_new_tokens=int(args.get("max_new_tokens") or 64),
    )


def _run_eval(args: dict, reporter: _Reporter) -> dict:
    from dataclasses import asdict

    from .evaluate import base_spec_of, before_after, evaluate, gap_analysis, run_config_of
    from .runs import BASE_PREFIX

    evaluator = _evaluator(args)
    spec, mode = args["spec"], args.get("mode", "plain")
    limit = int(args.get("limit") or 0) or None
    dataset = args.get("dataset") or None
    split = args.get("split") or "test"
    if mode == "gap":
        base = spec if spec.startswith(BASE_PREFIX) else None
        cfg = None if base else run_config_of(spec, evaluator.root)
        base = base or base_spec_of(spec, evaluator.root)
        name = dataset or (cfg.dataset if cfg else "")
        if not name:
            raise TaskError("gap analysis of a base model needs a dataset")
        return gap_analysis(base, name, evaluator, reporter.progress, limit, cfg=cfg)
    if mode == "compare":
        return before_after(spec, dataset, split, evaluator, reporter.progress, limit)
    if spec.startswith(BASE_PREFIX) and not dataset:
        raise TaskError("evaluating a base model needs a dataset")
    return asdict(
        evaluate(spec, dataset, split, evaluator, reporter.progress, limit, dataset_dir=args.get("dataset_dir") or None)
    )


def _run_gallery(args: dict, reporter: _Reporter) -> dict:
    from .experiments import default_prompts, sample_gallery

    root, run_id = Path(args["saves"]), args["run"]
    prompts = [p for p in args.get("prompts") or [] if str(p).strip()] or default_prompts(root, run_id)
    return sample_gallery(root, run_id, prompts, _evaluator(args), reporter.progress)


def _run_export(args: dict, reporter: _Reporter) -> dict:
    from .export.kinds import run_export
    from .runs import resolve_run

    ref = resolve_run(args["run"], Path(args["saves"]))
    result = run_export(
        ref.run_dir,
        args.get("kind", "merged"),
        dtype=args.get("dtype") or "auto",
        quantize=args.get("quantize") or "4bit",
        gguf_type=args.get("gguf_type") or "q8_0",
        checkpoint=args.get("checkpoint") or ref.checkpoint or None,
        max_shard_size=args.get("max_shard_size") or "2GB",
        progress=reporter.fraction,
    )
    return {
        "run": ref.run_id,
        "kind": result.kind,
        "name": result.folder.name,
        "folder": str(result.folder),
        "archive": str(result.archive) if result.archive else None,
        "notes": list(result.notes),
        "parity": (getattr(result, "parity", None) or {}).get("summary"),
    }


def _run_bench(args: dict, reporter: _Reporter) -> dict:
    """The speed bench with the command line's options ("argv"); its JSON summary (the last line
    it prints) is the result, and everything it prints goes to the log as well."""
    import contextlib
    import io

    from . import bench

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = bench.main([str(a) for a in args.get("argv") or []])
    sys.stdout.write(printed.getvalue())
    if code:
        raise TaskError(f"the bench ended with code {code}; see its log")
    lines = [line for line in printed.getvalue().splitlines() if line.strip()]
    return {"summary": json.loads(lines[-1]) if lines else None}


_RUNNERS = {"eval": _run_eval, "gallery": _run_gallery, "export": _run_export, "bench": _run_bench}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m workbench.tasks JOB_FOLDER", file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
