"""Hardware figures of a training process, appended to its events.jsonl as `hw` events.

The training process samples itself (CPU %, its own and the system's memory, GPU utilisation
and memory when there is a GPU, free disk of the saves folder) on a background thread; viewers
read the samples from the events file like any other event, so no browser polls the machine.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

INTERVAL_SECONDS = 5.0
MB = 1024 * 1024


def sample(process, saves_dir: Path) -> dict:
    """One reading. `process` is a psutil.Process whose cpu_percent was primed."""
    import psutil

    memory = psutil.virtual_memory()
    out = {
        "cpu_percent": round(process.cpu_percent(None) / (psutil.cpu_count() or 1), 1),
        "system_cpu_percent": psutil.cpu_percent(None),
        "process_memory_mb": round(process.memory_info().rss / MB, 1),
        "system_memory_used_mb": round((memory.total - memory.available) / MB, 1),
        "system_memory_percent": memory.percent,
        "disk_free_gb": round(shutil.disk_usage(saves_dir).free / 1024**3, 2),
    }
    out.update(_gpu())
    return out


def _gpu() -> dict:
    import sys

    torch = sys.modules.get("torch")  # the trainer has imported it; never import it here
    if torch is None or not torch.cuda.is_available():
        return {}
    out = {}
    try:
        free, total = torch.cuda.mem_get_info()
        out["gpu_memory_used_mb"] = round((total - free) / MB, 1)
        out["gpu_memory_total_mb"] = round(total / MB, 1)
    except RuntimeError:
        pass
    try:
        out["gpu_util_percent"] = float(torch.cuda.utilization())
    except Exception:  # noqa: BLE001 - needs NVML (pynvml); memory alone is still worth showing
        pass
    return out


class HardwareMonitor:
    """Emits a `hw` event now, then every `interval` seconds until stopped (and once at the stop)."""

    def __init__(self, writer, saves_dir: Path, interval: float | None = None):
        import psutil

        self.writer, self.saves_dir = writer, Path(saves_dir)
        self.interval = INTERVAL_SECONDS if interval is None else interval
        self.process = psutil.Process()
        self.process.cpu_percent(None)  # prime: the first reading of a fresh counter is 0
        psutil.cpu_percent(None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hardware-monitor")

    def _emit(self) -> None:
        try:
            self.writer.emit("hw", **sample(self.process, self.saves_dir))
        except OSError:
            pass  # a figure missed is no reason to disturb training

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()

    def __enter__(self):
        if self.writer.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._emit()
        return False
