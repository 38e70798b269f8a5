"""The model card (README.md) written into every export: what it is, how it was made, how to load it."""

from __future__ import annotations

import json
from pathlib import Path

from ..events import EVENTS_FILE
from .source import RunSource

# config keys worth showing in a card, in this order (the rest are in config.yaml of the run)
HYPERPARAMETERS = (
    "stage",
    "finetuning_type",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "cutoff_len",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_target",
    "use_rslora",
    "use_dora",
    "pissa_init",
    "num_virtual_tokens",
    "quantization_bit",
    "quantization_type",
    "compute_type",
    "seed",
)


LORA_ONLY = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target", "use_rslora", "use_dora", "pissa_init")


def shown_hyperparameters(cfg: dict) -> list[str]:
    """The keys that mean something for this run's method (no LoRA rank on an IA3 run)."""
    method = cfg.get("finetuning_type", "lora")
    keys = []
    for key in HYPERPARAMETERS:
        if cfg.get(key) is None or (key in LORA_ONLY and method != "lora"):
            continue
        if key == "num_virtual_tokens" and method not in ("prompt_tuning", "prefix_tuning"):
            continue
        if key == "quantization_type" and cfg.get("quantization_bit") is None:
            continue
        keys.append(key)
    return keys


def base_model_id(name: str) -> str:
    """The hub id of a known model name (what other tools understand), else the name as given."""
    from ..models import KNOWN_MODELS

    return KNOWN_MODELS[name].hub_id if name in KNOWN_MODELS else name


def final_metrics(run_dir: Path) -> dict:
    """The last value of each metric the run logged (loss, eval_loss, train_loss, ...)."""
    metrics: dict = {}
    path = Path(run_dir) / EVENTS_FILE
    if not path.is_file():
        return metrics
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line still being written
        if event.get("type") not in ("log", "eval", "end"):
            continue
        for key, value in event.items():
            if key in ("type", "time", "step", "max_steps", "epoch", "grad_norm", "learning_rate"):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = value
        metrics["last_step"] = event.get("step", metrics.get("last_step"))
    return metrics


def best_checkpoint_lines(src: RunSource) -> list[str]:
    """Which checkpoint validated best, and whether this export holds it."""
    from ..chat import best_checkpoint, final_is_best

    best = best_checkpoint(src.run_dir)
    if not best:
        return []
    metric = src.config.get("metric_for_best_model") or "eval_loss"
    holds = src.folder.name == best or (src.folder.name == "final" and final_is_best(src.run_dir))
    return [f"Best checkpoint by {metric}: **{best}**" + (" (this export holds its weights)." if holds else "."), ""]


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card(src: RunSource, kind: str, details: str, how_to_load: str) -> str:
    cfg = src.config
    rows = [f"| {key} | {_fmt(cfg[key])} |" for key in shown_hyperparameters(cfg)]
    rows.insert(0, f"| steps trained | {_fmt(final_metrics(src.run_dir).get('last_step', '?'))} |")
    metrics = final_metrics(src.run_dir)
    metric_rows = [f"| {key} | {_fmt(value)} |" for key, value in metrics.items() if key != "last_step"]
    lines = [
        "---",
        f"base_model: {base_model_id(src.base_model)}",
        "library_name: " + ("peft" if kind == "adapter" else "transformers"),
        "tags: [workbench, " + src.method + "]",
        "---",
        f"# {src.run_dir.name} ({kind})",
        "",
        f"Fine-tuned with Workbench from **{src.base_model}** using **{src.method}** "
        f"on the dataset(s) **{cfg.get('dataset', '?')}**.",
        "",
        details,
        "",
        "## How to load",
        "",
        "```python",
        how_to_load.strip(),
        "```",
        "",
        *best_checkpoint_lines(src),
        "## Hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
        *rows,
        "",
        "## Final losses and metrics",
        "",
        *(["| name | value |", "|---|---|", *metric_rows] if metric_rows else ["(none were logged)"]),
        "",
    ]
    return "\n".join(lines)


def load_snippet(kind: str, src: RunSource, extra: str = "") -> str:
    if kind == "adapter":
        return (
            f"from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'base = AutoModelForCausalLM.from_pretrained("{base_model_id(src.base_model)}")\n'
            f'model = PeftModel.from_pretrained(base, "path/to/this/folder")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")'
        )
    if kind == "gguf":
        return (
            f"from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder", gguf_file="{extra}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder", gguf_file="{extra}")\n'
            f"# llama.cpp:  llama-cli -m {extra or 'model.gguf'} -cnv\n"
            f"# Ollama:     ollama create my-model -f Modelfile && ollama run my-model"
        )
    return (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")  # needs bitsandbytes '
        'for a 4/8-bit export\ntokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")'
        if kind == "bnb"
        else "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder", dtype="auto")\n'
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")'
    )


def write_card(folder: Path, src: RunSource, kind: str, details: str, extra: str = "", parity=None) -> None:
    """The card; with a parity report (see parity.py) it gets a section that shows it."""
    from .parity import card_section

    text = model_card(src, kind, details, load_snippet(kind, src, extra))
    (Path(folder) / "README.md").write_text(text + ("\n" + card_section(parity) if parity else ""), encoding="utf-8")
