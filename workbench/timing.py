"""Before Start: how long a run will take, from the data's real token counts and a speed
measured on this machine.

  steps       what the Trainer will run: max_steps, or epochs x ceil(examples / (batch x
              accumulation)) (packed rows for packing)
  tokens      the real tokens those steps see (the examples' tokenized lengths, cut at the
              cutoff; an epoch sees every example once)
  speed       real tokens per second for this (machine, model, stage, method, quantization,
              dtype), measured: every finished run records the speed of its steps after the
              first, and `calibrate` trains a few steps on the run's own data when none is known
  time        tokens / speed + the first step's one-off cost

The speed is real tokens/s of training steps (not counting model loading, evaluation or saving).
A speed measured on a busy machine predicts a busy machine's runs.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

SPEED_FILE = "speeds.json"
CALIBRATION_STEPS = 4
FIRST_STEP_EXTRA = 1.0  # the first step also pays allocation and warm-up: ~one more step


@dataclass
class TimeEstimate:
    steps: int
    tokens: int  # real tokens the steps see
    tokens_per_s: float | None
    source: str  # "measured" (past runs / calibration) or "none"
    key: str

    @property
    def seconds_per_step(self) -> float | None:
        if not self.tokens_per_s or not self.steps:
            return None
        return self.tokens / self.steps / self.tokens_per_s

    @property
    def seconds(self) -> float | None:
        per_step = self.seconds_per_step
        return None if per_step is None else per_step * (self.steps + FIRST_STEP_EXTRA)

    def line(self) -> str:
        """e.g. 'about 4 min (220 steps, ~1.1 s/step)'."""
        if self.seconds is None:
            return (
                f"unknown ({self.steps} steps, {self.tokens:,} tokens): no speed measured yet "
                f"on this machine for this model, stage, method and dtype"
            )
        return f"about {format_duration(self.seconds)} ({self.steps} steps, ~{self.seconds_per_step:.1f} s/step)"


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# ---- what the run will do -----------------------------------------------------------------
def planned_steps(cfg, lengths: list[int]) -> tuple[int, int]:
    """(optimizer steps, real tokens seen) for the examples' lengths (one process)."""
    from .data import packing_enabled

    lengths = [min(n, cfg.cutoff_len) for n in lengths if n > 0]
    if not lengths:
        return 0, 0
    pairs = 2 if cfg.stage in ("dpo", "rm") else 1
    if packing_enabled(cfg):
        rows = math.ceil(sum(lengths) / cfg.cutoff_len)
    else:
        rows = len(lengths)
    per_step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    steps_per_epoch = max(1, math.ceil(rows / per_step))
    epoch_tokens = sum(lengths) * pairs
    if cfg.max_steps and cfg.max_steps > 0:
        steps = cfg.max_steps
        tokens = round(epoch_tokens * steps / steps_per_epoch)
    else:
        steps = max(1, math.ceil(cfg.num_train_epochs * steps_per_epoch))
        tokens = round(epoch_tokens * cfg.num_train_epochs)
    return steps, tokens


# ---- measured speeds, per machine -----------------------------------------------------------
def speed_key(cfg, dtype) -> str:
    """What a measured speed is valid for: machine, model, stage, method, quantization, dtype,
    and the settings that change the work per token."""
    from .models import machine_key

    quant = f"{cfg.quantization_bit}bit" if cfg.quantization_bit else "none"
    dtype_name = str(dtype).replace("torch.", "")
    extra = "ckpt" if cfg.activation_checkpointing else "nockpt"
    return (
        f"{machine_key()} | {Path(str(cfg.model_name_or_path)).name} | {cfg.stage} | "
        f"{cfg.finetuning_type} | {quant} | {dtype_name} | {extra}"
    )


def _speed_file() -> Path:
    from .models import cache_root

    return cache_root() / SPEED_FILE


def known_speed(key: str) -> float | None:
    try:
        found = json.loads(_speed_file().read_text(encoding="utf-8")).get(key)
        return float(found["tokens_per_s"]) if found else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def record_speed(key: str, tokens_per_s: float, source: str) -> None:
    """Keep the latest measured speed for `key` (a failure to write only costs a re-measure)."""
    from .models import _atomic_write

    if not tokens_per_s or tokens_per_s <= 0:
        return
    path = _speed_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    known[key] = {"tokens_per_s": round(tokens_per_s, 2), "source": source, "time": time.time()}
    try:
        _atomic_write(path, json.dumps(known, indent=1))
    except OSError:
        pass


def speed_from_events(events: list[dict]) -> float | None:
    """Real tokens/s of a run's steps after the first, from its `step` events (each carries
    the non-padding tokens seen so far and its time)."""
    steps = [e for e in events if e.get("type") == "step" and e.get("tokens_seen") and e.get("time")]
    if len(steps) < 2:
        return None
    first, last = steps[0], steps[-1]
    seconds = last["time"] - first["time"]
    tokens = last["tokens_seen"] - first["tokens_seen"]
    return tokens / seconds if seconds > 0 and tokens > 0 else None


def record_run(cfg, dtype, events_path: Path) -> float | None:
    """After a run: remember the speed its steps reached, for the next estimate."""
    events = []
    try:
        for line in Path(events_path).read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    except OSError:
        return None
    speed = speed_from_events(events)
    if speed:
        record_speed(speed_key(cfg, dtype), speed, "run")
    return speed


def calibrate(cfg, steps: int = CALIBRATION_STEPS) -> float | None:
    """Train `steps` optimizer steps of this run on its own data in a scratch folder, in a
    process of its own as every training is, and return the speed it recorded (a few seconds on
    small models; it loads the weights)."""
    import copy
    import subprocess
    import sys
    import tempfile

    from .config import save_config
    from .models import compute_dtype_for_model

    short = copy.deepcopy(cfg)
    short.max_steps, short.logging_steps, short.save_steps = steps, 1, steps + 1  # no checkpoint
    short.eval_steps, short.val_size, short.resume_from_checkpoint = None, 0.0, None
    with tempfile.TemporaryDirectory(prefix="workbench-calibrate-") as tmp:
        short.output_dir = tmp
        save_config(short, Path(tmp) / "calibrate.yaml")
        # the trainer records the speed its steps reached under this run's key
        subprocess.run(
            [sys.executable, "-m", "workbench.train", str(Path(tmp) / "calibrate.yaml"), "--run-dir", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
    return known_speed(speed_key(cfg, compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)))


# ---- the estimate ---------------------------------------------------------------------------
def estimate_time(cfg, lengths: list[int] | None = None, measure: bool = False) -> TimeEstimate:
    """Steps, tokens and the expected duration of a run. `lengths`: the tokenized examples'
    lengths (memory.data_lengths(cfg) when not given). `measure`: calibrate when no speed is
    known for this run's kind on this machine."""
    from .memory import data_lengths
    from .models import compute_dtype_for_model

    if lengths is None:
        lengths = data_lengths(cfg)
    steps, tokens = planned_steps(cfg, lengths)
    dtype = compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)
    key = speed_key(cfg, dtype)
    speed = known_speed(key)
    if speed is None and measure:
        speed = calibrate(cfg)
    return TimeEstimate(steps, tokens, speed, "measured" if speed else "none", key)


# ---- the lines `workbench train CONFIG --check` prints ----------------------------------------
def dtype_line(cfg) -> str:
    """Which compute dtype the run uses, and why."""
    from .models import compute_dtype_for_model, cpu_bf16_choice, device_type, model_linear_shape

    dtype = str(compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)).replace("torch.", "")
    if cfg.compute_type != "auto":
        return f"compute dtype: {dtype} (set by compute_type)"
    if device_type() == "cpu":
        return f"compute dtype: {dtype} (auto, measured: {cpu_bf16_choice(model_linear_shape(cfg.model_name_or_path)).reason()})"
    return f"compute dtype: {dtype} (auto on {device_type()})"


def estimate_lines(cfg, calibrate: bool = False) -> list[str]:
    """'estimated peak memory: ...' (from the data's largest batch, with the cutoff-based worst
    case beside it) and 'estimated time: ...', for the --check report."""
    from .memory import data_lengths, estimate, format_bytes

    lengths = data_lengths(cfg)
    mem = estimate(cfg, lengths=lengths)
    verdict = "fits" if mem.fits else "does not fit"
    lines = [
        dtype_line(cfg),
        f"estimated peak memory: {format_bytes(mem.needed)} on {mem.device} "
        f"({format_bytes(mem.device_free)} free: {verdict}); activations "
        f"{format_bytes(mem.activations)} for the largest batch of this data "
        f"({mem.batch_tokens:,} tokens); worst case at batch x cutoff "
        f"({mem.worst_batch_tokens:,} tokens): {format_bytes(mem.worst_needed)}",
    ]
    est = estimate_time(cfg, lengths, measure=calibrate)
    line = f"estimated time: {est.line()}"
    if est.tokens_per_s:
        line += f" at {est.tokens_per_s:.0f} real tokens/s measured on this machine"
    elif not calibrate:
        line += "; `--check --calibrate` measures it (trains a few steps)"
    lines.append(line)
    return lines
