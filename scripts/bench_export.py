"""Measure every export kind of a short LoRA run of the default model: wall time, peak memory of
the export process, size on disk, and its parity report.

    python scripts/bench_export.py [--run RUN_DIR] [--steps 10] [--only merged-bf16 gguf-q8_0 ...]

Without --run, a LoRA run of the default model (SmolLM2-135M-Instruct) is trained first for a
few steps, with 5 rows of the identity set held out, so parity replays held-out prompts. Each
export runs as `workbench export` in a fresh process; its peak resident set size (ru_maxrss from
wait4) is its peak memory. Prints a Markdown table (for docs/export.md) and JSON lines."""

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

EXPORTS = {
    "merged-fp32": ["--merge", "--dtype", "fp32"],
    "merged-bf16": ["--merge", "--dtype", "bf16"],
    "merged-fp16": ["--merge", "--dtype", "fp16"],
    "adapter": ["--adapter"],
    "bnb-8bit": ["--quantize", "8bit"],
    "bnb-4bit": ["--quantize", "4bit"],
    "gguf-f16": ["--gguf", "f16"],
    "gguf-q8_0": ["--gguf", "q8_0"],
    "gguf-q4_0": ["--gguf", "q4_0"],
}


def train(folder: Path, steps: int) -> Path:
    from workbench.config import from_dict
    from workbench.train import run

    run_dir = folder / "bench-lora"
    cfg = from_dict(
        {
            "dataset": "identity",
            "dataset_dir": str(ROOT / "data"),
            "val_size": 5,
            "max_steps": steps,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-3,
            "cutoff_len": 128,
            "logging_steps": 1,
            "save_steps": 1000,
        }
    )
    run(cfg, run_dir, echo=False)
    return run_dir


def measure(run_dir: Path, name: str, argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "workbench", "export", "--run", str(run_dir), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    folder = run_dir / "exports" / name
    report = json.loads((folder / "parity.json").read_text()) if (folder / "parity.json").is_file() else {}
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".gguf"))
    return {
        "export": name,
        "rc": child.returncode,
        "seconds": round(seconds, 1),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "weights_mb": round(size / 2**20, 1),
        "first_tokens": f"{report.get('first_tokens_same')}/{report.get('prompts')}" if report else "",
        "identical": report.get("identical_answers"),
        "agree": report.get("token_agreement"),
        "max_diff": report.get("max_diff"),
        "diff_measure": report.get("diff_measure"),
        "status": report.get("status"),
        "prompts_from": report.get("prompts_from"),
        "tail": out[-600:] if child.returncode else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="an existing run folder (default: train one)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=None, choices=list(EXPORTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        run_dir = Path(args.run) if args.run else train(Path(tmp), args.steps)
        rows = [measure(run_dir, name, argv) for name, argv in EXPORTS.items() if not args.only or name in args.only]
    print(
        "| export | time (s) | peak memory (MB) | weights (MB) | first tokens same | identical answers "
        "| tokens agreeing | largest difference | parity |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        diff = "—" if r["max_diff"] is None else f"{r['max_diff']:.3g} ({r['diff_measure']})"
        agree = "" if r["agree"] is None else f"{r['agree']:.0%}"
        print(
            f"| {r['export']} | {r['seconds']} | {r['peak_mb']:,} | {r['weights_mb']:,} | {r['first_tokens']} "
            f"| {r['identical']}/5 | {agree} | {diff} | {r['status']} |"
        )
    for r in rows:
        print(json.dumps(r))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
