"""Comparing runs: overlaid loss curves, a metrics table, a config diff, and a sample gallery
(fixed prompts answered by every saved checkpoint of a run). No gradio here."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import atomic_write_text
from .confine import run_folder
from .evaluate import EVAL_DIR, Evaluator, examples_of, load_result, run_config_of, saved_results, split_rows
from .events import read_all
from .runs import FINAL_DIR, checkpoint_step, complete_checkpoints, read_config

GALLERY_FILE = "gallery.json"


def loss_curves(root: Path, runs: list[str]) -> list[dict]:
    """One point per logged loss: run, step, loss, series ('train' or 'validation')."""
    points = []
    for run in runs:
        for event in read_all(run_folder(root, run)):
            if event.get("type") == "log" and isinstance(event.get("loss"), (int, float)):
                points.append({"run": run, "step": event["step"], "loss": float(event["loss"]), "series": "train"})
            elif event.get("type") == "eval" and isinstance(event.get("eval_loss"), (int, float)):
                points.append(
                    {"run": run, "step": event["step"], "loss": float(event["eval_loss"]), "series": "validation"}
                )
    return points


METRIC_COLUMNS = ("exact_match", "bleu", "rouge1", "rouge2", "rougeL", "loss", "perplexity", "accuracy", "f1")


def metrics_table(root: Path, runs: list[str]) -> list[dict]:
    """The saved evaluations of each run's final result (checkpoint evaluations left out)."""
    rows = []
    for run in runs:
        for path in saved_results(run_folder(root, run)):
            if path.parent != Path(root) / run / EVAL_DIR:
                continue
            result = load_result(path)
            rows.append(
                {
                    "run": run,
                    "dataset": result.dataset,
                    "split": result.split,
                    "rows": result.rows,
                    **{k: round(result.metrics[k], 4) for k in METRIC_COLUMNS if k in result.metrics},
                }
            )
    return rows


def config_diff(root: Path, runs: list[str]) -> list[dict]:
    """Config keys whose values differ between the runs: {"key": k, run1: v1, run2: v2, ...}."""
    configs = {run: read_config(run_folder(root, run)) for run in runs}
    keys = sorted({k for c in configs.values() for k in c} - {"output_dir"})
    rows = []
    for key in keys:
        values = [configs[run].get(key) for run in runs]
        if len(runs) < 2 or any(v != values[0] for v in values):
            rows.append({"key": key, **{run: "" if v is None else str(v) for run, v in zip(runs, values)}})
    return rows


def checkpoint_specs(root: Path, run: str) -> list[str]:
    """Every complete checkpoint of a run, oldest first, then its final result."""
    run_dir = run_folder(root, run)
    specs = [f"{run}/{c.name}" for c in complete_checkpoints(run_dir)]
    if (run_dir / FINAL_DIR).is_dir():
        specs.append(run)
    return specs


def default_prompts(root: Path, run: str, count: int = 3) -> list[str]:
    """The first prompts of the run's held-out rows (test, else validation, else training)."""
    cfg = run_config_of(run, root)
    for split in ("test", "validation", "train"):
        try:
            rows = split_rows(cfg, split)
        except Exception:  # noqa: BLE001 - an empty split: try the next one
            continue
        return [e.messages[-1]["content"] for e in examples_of(rows[:count])]
    return []


def sample_gallery(
    root: Path,
    run: str,
    prompts: list[str],
    evaluator: Evaluator | None = None,
    progress=None,
    max_new_tokens: int = 48,
) -> dict:
    """Greedy answers to the same prompts from each checkpoint, saved as <run>/eval/gallery.json."""
    evaluator = evaluator or Evaluator(root=root)
    prompts = [p for p in (p.strip() for p in prompts) if p]
    specs = checkpoint_specs(root, run)
    if not specs:
        from .evaluate import EvalError

        raise EvalError(f"run '{run}' has no saved checkpoint or result yet")
    rows = []
    for i, spec in enumerate(specs):
        answers = evaluator.generate(
            spec, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=max_new_tokens
        )
        _, _, checkpoint = spec.partition("/")
        step = str(checkpoint_step(checkpoint)) if checkpoint else FINAL_DIR
        rows += [{"checkpoint": step, "prompt": p, "answer": a} for p, a in zip(prompts, answers)]
        if progress:
            progress(i + 1, len(specs), "gallery")
    gallery = {"run": run, "prompts": prompts, "rows": rows, "created": time.time()}
    atomic_write_text(
        run_folder(root, run) / EVAL_DIR / GALLERY_FILE, json.dumps(gallery, ensure_ascii=False, indent=2) + "\n"
    )
    return gallery
