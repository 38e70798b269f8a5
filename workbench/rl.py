"""Online stages grpo and rloo through trl's GRPOTrainer and RLOOTrainer.

Each step samples `num_generations` answers to each prompt, scores them with the rewards of
workbench.rewards (rules, an rm run, a weighted sum) and moves the policy towards the answers
that scored above their group's mean, with a KL penalty (`beta`) against the reference. For
LoRA the reference is the base with the adapter switched off (trl does this for a peft model:
no second copy); for full/freeze trl loads a frozen copy of the base.

Besides trl's metrics (reward, reward_std, kl, completions/mean_length: they reach the live
chart through events.jsonl), the run keeps a sample of completions with their rewards per
logging step in completions.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

from .rewards import RewardSpec, samples_path, trl_reward_funcs

SAMPLES_PER_LOG = 8


def rl_dataset(examples: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": e["prompt"], "reference": e.get("reference") or ""} for e in examples])


def rl_trainer(cfg, model, tokenizer, train_examples: list[dict], args: dict, callbacks: list):
    """The trl trainer of stage grpo or rloo, with rewards from the config."""
    spec = RewardSpec.from_config(cfg)
    # trl counts input tokens itself; the Trainer's counter looks for input_ids it never sees
    args = {**args, "include_num_input_tokens_seen": "no", "eval_strategy": "no", "eval_steps": None}
    common = dict(
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        beta=cfg.beta,
        temperature=cfg.temperature,
        reward_weights=spec.weight_list(),
        log_completions=False,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.stage == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    config = Config(**args, **common)
    trainer = Trainer(
        model=model,
        reward_funcs=trl_reward_funcs(spec, tokenizer),
        args=config,
        train_dataset=rl_dataset(train_examples),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.add_callback(CompletionSamples(trainer, samples_path(args["output_dir"]), spec))
    return trainer


def _samples_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class CompletionSamples(_samples_callback_base()):
    """At each log, appends one line to completions.jsonl: the step and a few of the latest
    (prompt, completion, rewards) from the trainer's own buffer of the last generation."""

    def __init__(self, trainer, path: Path, spec: RewardSpec):
        self.trainer = trainer
        self.path = Path(path)
        self.spec = spec

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        buffer = getattr(self.trainer, "_logs", None)
        if not buffer or not buffer.get("completion"):
            return
        prompts, completions = list(buffer["prompt"]), list(buffer["completion"])
        rewards = {name: list(values) for name, values in buffer["rewards"].items()}
        # trl keeps these only to print them (log_completions, off here): empty them so that the
        # next log shows only what was generated after this one
        for key in ("prompt", "completion", "advantages"):
            if hasattr(buffer.get(key), "clear"):
                buffer[key].clear()
        for values in buffer["rewards"].values():
            values.clear()
        weights = dict(zip(self.spec.names, self.spec.weight_list()))
        n = len(completions)
        samples = []
        for i in range(max(0, n - SAMPLES_PER_LOG), n):
            parts = {name: values[i] for name, values in rewards.items() if i < len(values)}
            total = sum(weights.get(name, 1.0) * v for name, v in parts.items())
            samples.append(
                {"prompt": _text(prompts[i]), "completion": _text(completions[i]), "rewards": parts, "reward": total}
            )
        line = json.dumps({"step": state.global_step, "samples": samples}, ensure_ascii=False)
        # one write of one whole line; a reader skips a torn last line
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(m.get("content", "") for m in value if isinstance(m, dict))
    return str(value)
