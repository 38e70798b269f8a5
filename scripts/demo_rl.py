"""Demos of the online RL stage (grpo) on the default model.

Part `skill` (default): a short SFT run teaches the date_format skill partly; its adapter is
merged into a model folder, and `workbench train` with stage grpo and the exact_match rule
reward (LoRA on that model) trains on the same prompts. Both are scored on the 60 held-out test
rows (`before_after`: the SFT model as "base", SFT+GRPO as tuned): does exact match rise?

Part `ratings`: ratings are collected through the core function the Chat tab calls
(workbench.ratings.rate, "A is better"), a reward model (stage rm) is trained on them, and
grpo uses that rm run as its reward; `workbench eval`'s mean reward of base and tuned says
whether the policy learned what the raters liked.

    python scripts/demo_rl.py [--part skill|ratings] [--work /tmp/demo-rl] [--grpo-steps N]
                              [--grpo-batch N] [--beta B] [--sft-merged FOLDER] [--limit N]

On a CPU shared with other work, OMP_NUM_THREADS=1 avoids thread oversubscription (measured
here: a LoRA SFT step fell from ~130 s to ~6.5 s with load average ~18 on 2 cores).

Prints a JSON summary with the figures and the wall times.
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

SFT = {
    "model_name_or_path": "SmolLM2-135M-Instruct",
    "dataset": "date_format",
    "stage": "sft",
    "finetuning_type": "lora",
    "max_steps": 30,
    "cutoff_len": 96,
    "logging_steps": 5,
    "save_steps": 1000,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 4,
}
GRPO = {
    "dataset": "date_format",
    "stage": "grpo",
    "finetuning_type": "lora",
    "max_steps": 40,
    "per_device_train_batch_size": 16,
    "num_generations": 4,
    "max_completion_length": 16,
    "temperature": 1.0,
    "beta": 0.02,
    "learning_rate": 3e-4,
    "reward_funcs": "exact_match",
    "cutoff_len": 96,
    "logging_steps": 2,
    "save_steps": 1000,
}


def train(keys: dict, run_dir: Path, dataset_dir: Path | None = None) -> float:
    """`workbench train` in a fresh process, as a user runs it; returns the wall seconds."""
    import yaml

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    config = run_dir.parent / f"{run_dir.name}.yaml"
    keys = {**keys, "output_dir": str(run_dir)}
    if dataset_dir:
        keys["dataset_dir"] = str(dataset_dir)
    config.write_text(yaml.safe_dump(keys, allow_unicode=True), encoding="utf-8")
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "train", str(config)],
        cwd=ROOT,
        env={**os.environ, "WORKBENCH_SAVES": str(run_dir.parent)},
    )
    if done.returncode != 0:
        raise SystemExit(f"training failed (exit {done.returncode}); see {run_dir / 'train.log'}")
    return time.time() - started


def merge(run_dir: Path, target: Path) -> Path:
    """The SFT adapter merged into a plain model folder: the starting point of grpo."""
    from peft import PeftModel

    from workbench import models
    from workbench.config import load_config

    cfg = load_config(run_dir / "config.yaml")
    base = models.load_causal_lm(cfg.model_name_or_path, "fp32")
    merged = PeftModel.from_pretrained(base, str(run_dir / "final")).merge_and_unload()
    merged.save_pretrained(target)
    models.load_tokenizer(str(run_dir / "final")).save_pretrained(target)
    return target


def _reward(report: dict, side: str) -> float | None:
    value = report[f"{side}_metrics"].get("reward")
    return None if value is None else round(value, 3)


def evaluate(run_dir: Path, limit: int | None = None) -> tuple[dict, float]:
    from workbench.evaluate import Evaluator, before_after

    started = time.time()
    report = before_after(run_dir.name, None, "test", Evaluator(root=run_dir.parent, batch_size=16), None, limit)
    return report, time.time() - started


def part_skill(work: Path, limit: int | None, sft_merged: str | None = None) -> dict:
    sft_dir, grpo_dir = work / "sft", work / "grpo"
    sft_wall = 0.0
    if sft_merged:  # reuse the merged model of an earlier SFT run of this script
        merged = Path(sft_merged)
    else:
        sft_wall = train(SFT, sft_dir)
        merged = merge(sft_dir, work / "sft-merged")
    grpo_wall = train({**GRPO, "model_name_or_path": str(merged)}, grpo_dir)
    report, eval_seconds = evaluate(grpo_dir, limit)
    return {
        "part": "skill",
        "rows": len(report["rows"]),
        "exact_match_sft": round(report["base_metrics"]["exact_match"], 3),
        "exact_match_sft_grpo": round(report["tuned_metrics"]["exact_match"], 3),
        "improved": report["improved"],
        "worse": report["worse"],
        "mean_reward_sft": _reward(report, "base"),
        "mean_reward_sft_grpo": _reward(report, "tuned"),
        "forgetting_percent": round(report["forgetting"]["change_percent"], 2),
        "sft_steps": SFT["max_steps"],
        "grpo_steps": GRPO["max_steps"],
        "sft_wall_seconds": round(sft_wall, 1),
        "grpo_wall_seconds": round(grpo_wall, 1),
        "eval_seconds": round(eval_seconds, 1),
    }


# what the raters of part `ratings` like: short answers that give the ISO date alone
def preferred(prediction_a: str, prediction_b: str) -> str:
    def good(text: str) -> int:
        return int(len(text.strip()) <= 12) + int(text.strip()[:1].isdigit())

    return "a" if good(prediction_a) >= good(prediction_b) else "b"


def part_ratings(work: Path, limit: int | None) -> dict:
    from workbench.data import load_rows
    from workbench.ratings import rate

    dataset_dir = work / "data"
    dataset_dir.mkdir(parents=True, exist_ok=True)  # the shipped datasets are read beside it
    rows, _ = load_rows(dataset_dir, ["date_format"])
    settings = {"temperature": 0.0, "max_new_tokens": 16}
    count = 0
    for row in rows[:48]:
        prompt = row["messages"][0]["content"]
        good, bad = row["messages"][-1]["content"], f"Sure! The date {prompt.splitlines()[-1]} is a nice day."
        a, b = (good, bad) if count % 2 else (bad, good)
        verdict = preferred(a, b)
        count = rate(
            dataset_dir,
            "date_ratings",
            "preference",
            verdict,
            prompt=prompt,
            history=[],
            answers=(a, b),
            models=("base", "base"),
            settings=settings,
        )["ratings"]
    rm_wall = train(
        {
            "model_name_or_path": "SmolLM2-135M-Instruct",
            "dataset": "date_ratings",
            "stage": "rm",
            "finetuning_type": "lora",
            "max_steps": 16,
            "cutoff_len": 96,
            "learning_rate": 1e-3,
            "per_device_train_batch_size": 4,
            "logging_steps": 4,
            "save_steps": 1000,
        },
        work / "rm",
        dataset_dir,
    )
    grpo_wall = train(
        {
            **GRPO,
            "model_name_or_path": "SmolLM2-135M-Instruct",
            "reward_funcs": "",
            "reward_model": "rm",
            "max_completion_length": 24,
        },
        work / "grpo-rm",
        dataset_dir,
    )
    report, eval_seconds = evaluate(work / "grpo-rm", limit)
    return {
        "part": "ratings",
        "ratings": count,
        "rows": len(report["rows"]),
        "mean_reward_base": _reward(report, "base"),
        "mean_reward_tuned": _reward(report, "tuned"),
        "exact_match_base": round(report["base_metrics"]["exact_match"], 3),
        "exact_match_tuned": round(report["tuned_metrics"]["exact_match"], 3),
        "rm_wall_seconds": round(rm_wall, 1),
        "grpo_wall_seconds": round(grpo_wall, 1),
        "eval_seconds": round(eval_seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="skill", choices=["skill", "ratings"])
    parser.add_argument("--work", default="/tmp/demo-rl", help="a fresh folder for the runs")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N test rows")
    parser.add_argument("--grpo-steps", type=int, default=GRPO["max_steps"])
    parser.add_argument(
        "--grpo-batch",
        type=int,
        default=GRPO["per_device_train_batch_size"],
        help="answers per grpo step (num_generations 4 each prompt)",
    )
    parser.add_argument("--beta", type=float, default=GRPO["beta"])
    parser.add_argument(
        "--sft-merged",
        default=None,
        help="part skill: start grpo from this merged "
        "SFT model folder (from an earlier run of this script) instead of training one",
    )
    args = parser.parse_args()
    GRPO.update(max_steps=args.grpo_steps, per_device_train_batch_size=args.grpo_batch, beta=args.beta)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(args.work).resolve() / args.part
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} already holds runs: remove it or pass another --work")
    load = os.getloadavg()
    started = time.time()
    summary = part_skill(work, args.limit, args.sft_merged) if args.part == "skill" else part_ratings(work, args.limit)
    summary["grpo"] = {
        k: GRPO[k]
        for k in (
            "max_steps",
            "per_device_train_batch_size",
            "num_generations",
            "beta",
            "learning_rate",
            "max_completion_length",
        )
    }
    summary.update(
        total_wall_seconds=round(time.time() - started, 1),
        load_average_at_start=[round(x, 2) for x in load],
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
