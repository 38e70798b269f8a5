"""events.jsonl: one JSON object a line, appended by the trainer, read incrementally by viewers.

Every event has `type`, `step`, `max_steps` and `time` (unix seconds), plus its own metrics.
Types: phase (loading_model, preparing_data, training, saving), data, start, step, log, eval,
save, stopped, end, error.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

EVENTS_FILE = "events.jsonl"


class EventWriter:
    """Appends events; each line is written with a single write() and flushed, so a reader
    never sees half of a line that a later write completes."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True):
        self.path = Path(run_dir) / EVENTS_FILE
        self.enabled = enabled
        self.step = 0
        self.max_steps = 0
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type: str, **fields) -> dict:
        event = {"type": type, "step": fields.pop("step", self.step),
                 "max_steps": fields.pop("max_steps", self.max_steps), "time": time.time(), **fields}
        if self.enabled:
            line = json.dumps(event, ensure_ascii=False, default=_jsonable) + "\n"
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
        return event


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class EventReader:
    """Reads only the bytes appended since the last call; a partial last line waits."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / EVENTS_FILE
        self.offset = 0
        self._partial = b""

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a damaged line (e.g. a crash mid-write on an old file) is skipped
        return events


def read_all(run_dir: str | os.PathLike) -> list[dict]:
    return EventReader(run_dir).read_new()
