"""The shipped demo: does tuning the default model teach it the date_format skill?

Trains SmolLM2-135M-Instruct on the shipped date_format set with the default LoRA settings through
`workbench train examples/skill.yaml` (the command a user runs), then scores the base and the
tuned model on the held-out test split and the general-text forgetting check:

    python scripts/demo_skill.py                 # train + evaluate (CPU: minutes)
    python scripts/demo_skill.py --skip-train    # evaluate an existing saves/skill run

Prints the exact match before and after, the forgetting %, and the training wall time, and
exits non-zero when the goal (EM >= 0.8, forgetting < 15%) is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_EM = 0.8
GOAL_FORGETTING = 15.0


def train(config: Path, run_dir: Path) -> float:
    """Run `workbench train` in a fresh process; return its wall time in seconds."""
    if run_dir.exists() and any(run_dir.iterdir()):
        raise SystemExit(f"{run_dir} already holds a run: remove it, or pass --skip-train")
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "train", str(config), f"--set=output_dir={run_dir}"], cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"training failed (exit {done.returncode}); see {run_dir / 'train.log'}")
    return time.time() - started


def training_seconds(run_dir: Path) -> float | None:
    """Time from the first training step's start to the end event, from events.jsonl."""
    from workbench.events import read_all

    events = read_all(run_dir)
    start = next((e["time"] for e in events if e.get("type") == "phase" and e.get("phase") == "training"), None)
    end = next((e["time"] for e in reversed(events) if e.get("type") == "end"), None)
    return end - start if start and end else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "examples" / "skill.yaml"))
    parser.add_argument("--run-dir", default=str(ROOT / "saves" / "skill"))
    parser.add_argument("--skip-train", action="store_true", help="evaluate an existing run")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N test rows")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_dir = Path(args.run_dir).resolve()

    wall = None if args.skip_train else train(Path(args.config), run_dir)
    from workbench.evaluate import Evaluator, before_after

    def progress(done, total, what):
        print(f"\r  {what}: {done}/{total}", end="" if done < total else "\n", flush=True)

    print(f"evaluating base and tuned on the date_format test split ({run_dir.name})")
    started = time.time()
    report = before_after(
        run_dir.name, None, "test", Evaluator(root=run_dir.parent, batch_size=16), progress, args.limit
    )
    eval_seconds = time.time() - started
    before, after = report["base_metrics"]["exact_match"], report["tuned_metrics"]["exact_match"]
    forgot = report["forgetting"]["change_percent"]
    inner = training_seconds(run_dir)
    summary = {
        "exact_match_before": round(before, 3),
        "exact_match_after": round(after, 3),
        "rows": len(report["rows"]),
        "improved": report["improved"],
        "worse": report["worse"],
        "forgetting_percent": round(forgot, 2),
        "train_wall_seconds": round(wall, 1) if wall else None,
        "train_loop_seconds": round(inner, 1) if inner else None,
        "eval_seconds": round(eval_seconds, 1),
    }
    print(json.dumps(summary, indent=2))
    print(
        f"exact match {before:.2f} -> {after:.2f}; forgetting {forgot:+.1f}%; "
        f"training {summary['train_wall_seconds'] or summary['train_loop_seconds']} s"
    )
    ok = after >= GOAL_EM and forgot < GOAL_FORGETTING
    print("goal met" if ok else f"goal missed (needs EM >= {GOAL_EM} and forgetting < {GOAL_FORGETTING}%)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
