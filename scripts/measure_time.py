"""Predicted against measured training time on a few configurations.

    python scripts/measure_time.py [--only NAME ...]

For each configuration (the default model on a shipped dataset): forget any speed known for its
kind, calibrate (workbench.timing.calibrate: a few steps on the run's own data), take the
estimate (workbench.timing.estimate_time, what `--check` and the method panel show), then train
the run for real in a fresh process and compare the estimate with the time its steps took (from
the first step's start to the last step's end, as events.jsonl records them). Prints a table and
JSON lines. The machine's load (os.getloadavg) is recorded with every row: a calibration on a
busy machine predicts a busy machine's run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = {
    "lora-bf16-identity": dict(
        finetuning_type="lora", compute_type="auto", dataset="identity", max_steps=16, per_device_train_batch_size=4
    ),
    "lora-fp32-identity": dict(
        finetuning_type="lora", compute_type="fp32", dataset="identity", max_steps=10, per_device_train_batch_size=4
    ),
    "lora-bf16-epoch-b8": dict(
        finetuning_type="lora",
        compute_type="auto",
        dataset="identity",
        num_train_epochs=1,
        per_device_train_batch_size=8,
    ),
    "full-bf16-identity": dict(
        finetuning_type="full",
        compute_type="auto",
        dataset="identity",
        max_steps=10,
        per_device_train_batch_size=4,
        learning_rate=5e-5,
    ),
    "qlora-bf16-identity": dict(
        finetuning_type="lora",
        quantization_bit=4,
        compute_type="auto",
        dataset="identity",
        max_steps=10,
        per_device_train_batch_size=4,
    ),
    "lora-bf16-dates-c256": dict(
        finetuning_type="lora",
        compute_type="auto",
        dataset="date_format",
        max_steps=12,
        per_device_train_batch_size=4,
        cutoff_len=256,
    ),
}


def base_keys(keys: dict, run_dir: str) -> dict:
    from workbench.config import DEFAULT_MODEL

    return {
        "model_name_or_path": DEFAULT_MODEL,
        "dataset_dir": str(ROOT / "workbench" / "data" / "shipped"),
        "cutoff_len": 512,
        "logging_steps": 1,
        "save_steps": 10**6,
        "output_dir": run_dir,
        **keys,
    }


def step_seconds(events_path: Path) -> float | None:
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
    start = next((e["time"] for e in events if e.get("type") == "start"), None)
    steps = [e["time"] for e in events if e.get("type") == "step"]
    return steps[-1] - start if start is not None and steps else None


def measure(name: str, keys: dict) -> dict:
    from workbench import timing
    from workbench.config import from_dict
    from workbench.models import compute_dtype_for_model

    with tempfile.TemporaryDirectory(prefix="measure-time-") as tmp:
        cfg = from_dict(base_keys(keys, str(Path(tmp) / "run")))
        dtype = compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)
        load_before = os.getloadavg()[0]
        t0 = time.time()
        timing.calibrate(cfg)
        calibration_seconds = time.time() - t0
        est = timing.estimate_time(cfg)
        config_path = Path(tmp) / "run.yaml"
        from workbench.config import save_config

        save_config(cfg, config_path)
        proc = subprocess.run(
            [sys.executable, "-m", "workbench.train", str(config_path), "--run-dir", str(Path(tmp) / "run")],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        measured = step_seconds(Path(tmp) / "run" / "events.jsonl")
    return {
        "name": name,
        "keys": keys,
        "dtype": str(dtype).replace("torch.", ""),
        "steps": est.steps,
        "tokens": est.tokens,
        "calibrated_tokens_per_s": est.tokens_per_s,
        "predicted_seconds": est.seconds,
        "measured_seconds": measured,
        "error": (est.seconds - measured) / measured if est.seconds and measured else None,
        "calibration_seconds": calibration_seconds,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    print(f"{'config':<24} {'steps':>5} {'predicted s':>11} {'measured s':>10} {'error':>6} {'load':>9}")
    for name, keys in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        r = measure(name, keys)
        err = f"{100 * r['error']:+.0f}%" if r["error"] is not None else "-"
        print(
            f"{name:<24} {r['steps']:>5} {r['predicted_seconds'] or 0:>11.1f} {r['measured_seconds'] or 0:>10.1f} "
            f"{err:>6} {r['load_avg_before']:>4.1f}/{r['load_avg_after']:>4.1f}",
            flush=True,
        )
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
