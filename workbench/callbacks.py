"""TrainerCallbacks: events.jsonl for viewers, and a stop file for an abort that keeps work."""

from __future__ import annotations

import math
import time
from pathlib import Path

from transformers import TrainerCallback

from .events import EventWriter
from .runs import STOP_FILE


class EventsCallback(TrainerCallback):
    """Writes start/step/log/eval/save events and prints one progress line per log."""

    def __init__(self, writer: EventWriter, echo: bool = True):
        self.writer = writer
        self.echo = echo
        self.started = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.writer.max_steps = state.max_steps
        self.writer.step = state.global_step
        self.started = time.time()
        if state.is_world_process_zero:
            self.writer.emit("start", resumed_from=state.global_step or None, epochs=args.num_train_epochs)

    def on_step_end(self, args, state, control, **kwargs):
        self.writer.step = state.global_step
        if state.is_world_process_zero:
            self.writer.emit("step", tokens_seen=getattr(state, "num_input_tokens_seen", None))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        logs = {k: v for k, v in logs.items() if _finite_number(v)}
        kind = "eval" if any(k.startswith("eval_") for k in logs) else "log"
        if kind == "log" and "loss" not in logs and "train_loss" in logs:
            kind = "summary"
        logs.setdefault("epoch", state.epoch)
        self.writer.emit(kind, **logs)
        if self.echo:
            shown = " ".join(f"{k} {v:.4g}" for k, v in logs.items() if k != "epoch")
            print(f"[{kind}] step {state.global_step}/{state.max_steps} {shown}", flush=True)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.writer.emit("save", checkpoint=str(path.name))


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class StopFileCallback(TrainerCallback):
    """When the run's STOP file appears, save a checkpoint and end training cleanly."""

    def __init__(self, run_dir: str | Path, writer: EventWriter):
        self.stop_path = Path(run_dir) / STOP_FILE
        self.writer = writer
        self.stopped = False

    def _check(self, control):
        if not self.stopped and self.stop_path.exists():
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
            self.writer.emit("stopped", reason="stop requested")
            print("stop requested: saving a checkpoint and ending", flush=True)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        return self._check(control)

    def on_substep_end(self, args, state, control, **kwargs):
        # within gradient accumulation: stop at the next step boundary
        if self.stop_path.exists():
            control.should_training_stop = True
        return control
