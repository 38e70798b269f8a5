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
        event = {
            "type": type,
            "step": fields.pop("step", self.step),
            "max_steps": fields.pop("max_steps", self.max_steps),
            "time": time.time(),
            **fields,
        }
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
        self.skipped = 0  # lines that were not events
        self._partial = b""

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:  # not there yet, or a folder in its place
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        events = []
        for line in lines:
            event = parse_event(line)
            if event is None:
                if line.strip():
                    self.skipped += 1
                continue
            events.append(event)
        return events

    def truncated(self) -> bool:
        """The file is now shorter than what was read (replaced or cut): read it again from the start."""
        try:
            return self.path.stat().st_size < self.offset
        except OSError:
            return False


def parse_event(line: bytes) -> dict | None:
    """One line as an event, or None when it is not one: not JSON (a crash mid-write, a hand edit),
    not an object, or without a string type, a whole-number step and a numeric time."""
    try:
        event = json.loads(line)
    except ValueError:  # also invalid UTF-8
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    step, stamp = event.get("step"), event.get("time")
    if (
        not isinstance(step, int)
        or isinstance(step, bool)
        or not isinstance(stamp, (int, float))
        or isinstance(stamp, bool)
    ):
        return None
    return event


def read_all(run_dir: str | os.PathLike) -> list[dict]:
    return EventReader(run_dir).read_new()
