"""The progress file of `workbench export --job-file PATH`: one small JSON object, replaced
atomically at every step, for a caller that watches a command-line export. The UI does not use
it: its exports are jobs of the one controller (workbench/tasks.py, workbench/jobs.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def write_job(path: Path, **state) -> None:
    """Atomic: a reader sees the old state or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**state, "time": time.time()}), encoding="utf-8")
    os.replace(tmp, path)
