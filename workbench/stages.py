"""Stage → the transformers/trl trainer that computes its loss, with arguments from RunConfig."""

from __future__ import annotations

import os

import torch

from .config import RunConfig, resolve_logging_steps, trackers
from .data import packing_enabled
from .distributed import engine_training_args
from .preference import dpo_trainer, kto_trainer, reward_model_kwargs, rm_trainer
from .speed import prepare_sft  # padding-free batches, less wasted work

PREFERENCE_STAGES = {"dpo": dpo_trainer, "kto": kto_trainer, "rm": rm_trainer}


class StageError(ValueError):
    pass


def common_training_args(cfg: RunConfig, output_dir: str, has_eval: bool, dtype) -> dict:
    """TrainingArguments shared by every stage; names map one to one onto RunConfig fields."""
    eval_steps = cfg.eval_steps or cfg.save_steps
    return dict(
        output_dir=output_dir,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        optim=cfg.optim,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        neftune_noise_alpha=cfg.neftune_noise_alpha or None,
        # trl defaults to checkpointing on: the config decides, explicitly
        activation_checkpointing=cfg.activation_checkpointing,
        torch_compile=cfg.torch_compile,
        seed=cfg.seed,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        logging_steps=resolve_logging_steps(cfg),
        logging_first_step=True,
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy=(cfg.eval_strategy or "steps") if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        # Trainer options passed through as written
        dataloader_num_workers=cfg.dataloader_num_workers,
        ddp_timeout=cfg.ddp_timeout,
        save_only_model=cfg.save_only_model,
        run_name=cfg.run_name or None,
        # trl defaults bf16 to True, which is ~100x slower on CPUs without bf16
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        # transformers refuses bf16 on a CPU unless told the run is on the CPU; with it, the
        # Trainer computes under CPU autocast (bf16 products, fp32 weights, optimizer and loss)
        use_cpu=_mixed_precision_on_cpu(dtype),
        report_to=trackers(cfg) or "none",
        **best_model_args(cfg, has_eval),
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=torch.cuda.is_available(),
    ) | {
        # several processes (torchrun): DDP by default, DeepSpeed or FSDP as the config says
        **engine_training_args(cfg, output_dir)
    }


def _mixed_precision_on_cpu(dtype) -> bool:
    from .models import device_type

    return dtype == torch.bfloat16 and device_type() == "cpu"


def best_model_args(cfg: RunConfig, has_eval: bool) -> dict:
    """Track the best checkpoint by a validation metric (and keep it, or stop early, if asked)."""
    if not has_eval:
        return {}
    out = dict(metric_for_best_model=cfg.metric_for_best_model, load_best_model_at_end=cfg.load_best_model_at_end)
    if cfg.greater_is_better is not None:
        out["greater_is_better"] = cfg.greater_is_better
    return out


def early_stopping_callbacks(cfg: RunConfig, has_eval: bool) -> list:
    from transformers import EarlyStoppingCallback

    if not (has_eval and cfg.early_stopping_patience):
        return []
    return [EarlyStoppingCallback(cfg.early_stopping_patience, cfg.early_stopping_threshold)]


def tracking_environment(cfg: RunConfig, run_dir) -> dict[str, str]:
    """Environment that keeps each tracker's files in the run folder and off the network; a
    variable the user set wins (that is how one asks for a server)."""
    from pathlib import Path

    run_dir = Path(run_dir).resolve()
    wanted = {
        "tensorboard": {"TENSORBOARD_LOGGING_DIR": str(run_dir / "tensorboard")},
        "mlflow": {"MLFLOW_TRACKING_URI": (run_dir / "mlruns").as_uri(), "MLFLOW_EXPERIMENT_NAME": run_dir.name},
        "wandb": {
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(run_dir),
            "WANDB_PROJECT": "workbench",
            "WANDB_NAME": run_dir.name,
        },
        "trackio": {"TRACKIO_DIR": str(run_dir / "trackio")},
    }
    env: dict[str, str] = {}
    for name in trackers(cfg):
        env.update({k: v for k, v in wanted.get(name, {}).items() if k not in os.environ})
    return env


def model_load_kwargs(cfg: RunConfig) -> dict:
    """Extra arguments for models.load_causal_lm: which model class the stage trains."""
    if cfg.stage == "rm":
        return reward_model_kwargs()
    return {}


def build_trainer(
    cfg: RunConfig,
    model,
    tokenizer,
    train_examples: list[dict],
    eval_examples: list[dict],
    output_dir: str,
    dtype,
    callbacks: list,
):
    from datasets import Dataset

    train_ds = Dataset.from_list(train_examples)
    eval_ds = Dataset.from_list(eval_examples) if eval_examples else None
    args = common_training_args(cfg, output_dir, eval_ds is not None, dtype)
    callbacks = callbacks + early_stopping_callbacks(cfg, eval_ds is not None)
    if cfg.stage in ("sft", "pt"):
        return _sft_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks)
    if cfg.stage in PREFERENCE_STAGES:
        return PREFERENCE_STAGES[cfg.stage](cfg, model, tokenizer, train_ds, eval_ds, args, callbacks)
    if cfg.stage in ("grpo", "rloo"):
        from .rl import rl_trainer

        # online RL: no validation loss (workbench eval scores the held-out prompts)
        args = common_training_args(cfg, output_dir, False, dtype)
        return rl_trainer(cfg, model, tokenizer, train_examples, args, callbacks)
    if cfg.stage == "cls":
        from . import classify

        return classify.build_trainer(cfg, model, tokenizer, train_examples, eval_examples, args, callbacks)
    raise StageError(f"stage '{cfg.stage}' is not available in this build")


def _sft_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks):
    from trl import SFTConfig, SFTTrainer

    packing = packing_enabled(cfg)
    sft_args = SFTConfig(
        **args,
        max_length=cfg.cutoff_len,
        packing=packing,
        # pretraining concatenates documents and cuts fixed-length blocks; SFT packs whole
        # conversations without cutting them (best-fit decreasing)
        packing_strategy="wrapped" if cfg.stage == "pt" else "bfd",
        dataset_num_proc=None,
    )
    return prepare_sft(
        sft_args,
        model,
        lambda: SFTTrainer(
            model=model,
            args=sft_args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            callbacks=callbacks,
        ),
    )
