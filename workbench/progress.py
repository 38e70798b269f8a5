"""What a viewer shows of a run: progress, ETA, throughput and curves, built from events.jsonl
read incrementally, so a refresh costs the same at step 10 and at step 100,000."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .events import EventReader

HARDWARE_KEPT = 720  # samples a viewer keeps: an hour at the default 5 s
# what the RL chart shows -> trl's metric name in a log event
RL_SERIES = {"reward": "reward", "reward_std": "reward_std", "kl": "kl", "completion_length": "completions/mean_length"}


@dataclass
class RunMonitor:
    run_dir: Path
    phase: str = "queued"
    step: int = 0
    max_steps: int = 0
    started: float | None = None  # time of the first training step of this attempt
    start_step: int = 0
    last_time: float | None = None
    tokens_seen: int | None = None
    start_tokens: int | None = None
    loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    learning_rate: list[tuple[int, float]] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    first_token_time: float | None = None
    # online RL (grpo/rloo): series name -> points, from trl's metrics (see RL_SERIES)
    rl: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    final: dict | None = None  # the end or error event
    first_time: float | None = None  # time of the run's first event
    pid: int | None = None  # the trainer process of the latest attempt
    pid_time: float | None = None  # when that process said so (it was running by then)
    hardware: list[dict] = field(default_factory=list)  # `hw` samples of the training process
    new_hardware: bool = False  # hardware samples arrived since the last update()
    new_points: bool = False  # curves changed since the last update()
    note: str = ""  # the latest step's message (what a non-training job is doing)
    point_times: dict[int, float] = field(default_factory=dict)  # step -> when its point was logged

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self._reader = EventReader(self.run_dir)

    def update(self) -> bool:
        """Consume new events; True when anything changed."""
        events = self._reader.read_new()
        self.new_points = self.new_hardware = False
        for event in events:
            try:
                self._apply(event)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # an event with missing or mistyped fields (a hand edit) is left out
        return bool(events)

    def truncated(self) -> bool:
        return self._reader.truncated()

    @property
    def skipped_lines(self) -> int:
        return self._reader.skipped

    def _apply(self, event: dict) -> None:
        kind = event["type"]
        self.last_time = event["time"]
        if self.first_time is None:
            self.first_time = event["time"]
        if isinstance(event.get("pid"), int):
            self.pid, self.pid_time = event["pid"], event["time"]
        if isinstance(event.get("max_steps"), int) and event["max_steps"]:
            self.max_steps = event["max_steps"]
        if kind == "phase" and isinstance(event.get("phase"), str):
            self.phase = event["phase"]
            if self.phase == "preparing_data":
                self.final = None  # a resumed attempt
        elif kind == "data":
            self.data = event
        elif kind == "model":
            self.model = event
        elif kind == "start":
            self.started, self.start_step = event["time"], event["step"]
            self.step = event["step"]
            self.start_tokens = None
            # a resumed run replays from its checkpoint: drop points past it
            self.loss = [p for p in self.loss if p[0] <= self.step]
            self.eval_loss = [p for p in self.eval_loss if p[0] <= self.step]
            self.learning_rate = [p for p in self.learning_rate if p[0] <= self.step]
            self.rl = {k: [p for p in v if p[0] <= self.step] for k, v in self.rl.items()}
        elif kind == "step":
            self.step = event["step"]
            if isinstance(event.get("message") or event.get("phase"), str):
                self.note = event.get("message") or event.get("phase")
            if event.get("tokens_seen") is not None:
                self.tokens_seen = event["tokens_seen"]
                if self.start_tokens is None:
                    self.start_tokens = self.tokens_seen
                    self.first_token_time = event["time"]
        elif kind == "log":
            self.step = max(self.step, event["step"])
            self.point_times[event["step"]] = event["time"]
            if isinstance(event.get("loss"), (int, float)):
                self.loss.append((event["step"], float(event["loss"])))
                self.new_points = True
            if isinstance(event.get("learning_rate"), (int, float)):
                self.learning_rate.append((event["step"], float(event["learning_rate"])))
            for series, key in RL_SERIES.items():
                if isinstance(event.get(key), (int, float)):
                    self.rl.setdefault(series, []).append((event["step"], float(event[key])))
                    self.new_points = True
        elif kind == "eval":
            if isinstance(event.get("eval_loss"), (int, float)):
                self.eval_loss.append((event["step"], float(event["eval_loss"])))
                self.point_times.setdefault(event["step"], event["time"])
                self.new_points = True
        elif kind == "hw":
            self.hardware.append(event)
            del self.hardware[:-HARDWARE_KEPT]
            self.new_hardware = True
        elif kind in ("end", "error"):
            self.final = event
            if kind == "end":
                self.phase = "done"

    # ---- derived ------------------------------------------------------------------------
    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    def steps_per_second(self, now: float | None = None) -> float | None:
        if self.started is None or self.step <= self.start_step:
            return None
        end = self.last_time if self.final else (now or time.time())
        elapsed = max(1e-6, (self.last_time or end) - self.started)
        return (self.step - self.start_step) / elapsed

    def eta_seconds(self, now: float | None = None) -> float | None:
        rate = self.steps_per_second(now)
        if not rate or not self.max_steps or self.final:
            return None
        return max(0.0, (self.max_steps - self.step) / rate)

    def tokens_per_second(self) -> float | None:
        if self.tokens_seen is None or self.start_tokens is None or self.started is None:
            return None
        first_time = self.first_token_time
        if first_time is None or self.last_time is None or self.last_time <= first_time:
            return None
        return (self.tokens_seen - self.start_tokens) / (self.last_time - first_time)

    def last_loss(self) -> float | None:
        return self.loss[-1][1] if self.loss else None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
