"""Preference and reward stages: dpo (with its loss variants, ORPO and SimPO), kto, and rm.

Data arrives from workbench.data already rendered through the chat template: `prompt` is the
conversation up to the assistant header, `chosen`/`rejected`/`completion` the answer text as the
template closes it. The trl trainers tokenize that text themselves (dpo, kto, orpo, simpo); the
reward model's pairs are tokenized here, so that training and `score()` see the same tokens.

The reference model of dpo and kto:
- use_ref_model true, LoRA-family methods: the base with the adapter switched off (no second
  copy of the model). With PiSSA initialisation the base weights are changed, so the frozen copy
  of the initial adapter that trl keeps is used instead. Prompt/prefix tuning: the base without
  the soft prompt.
- use_ref_model true, full/freeze/bitfit: a second, frozen copy of the base model.
- use_ref_model false: the reference log-probabilities are computed once before training, and no
  reference model is kept during training (the loss is still the chosen loss, against the start).
- pref_loss orpo or simpo: these losses need no reference at all; use_ref_model is not used.
"""

from __future__ import annotations

from pathlib import Path

from .config import DPO_LOSSES, KTO_LOSSES, REFERENCE_FREE_LOSSES


class PreferenceError(ValueError):
    pass


def _keep_float_adapters(trainer, args: dict):
    """For a 4/8-bit base, trl turns the trainable weights into bf16 (the QLoRA paper's choice).
    Unless the run computes in bf16 that breaks the reward head (float inputs, bf16 weights) and
    is ~100x slower on CPUs without bf16, so put them back in fp32 (the optimizer does not exist
    yet)."""
    import torch

    if not args.get("bf16"):
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype == torch.bfloat16:
                param.data = param.data.float()
    return trainer


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def _ends_with_eos(text: str, eos: str | None) -> str:
    """trl appends EOS to an answer that does not end with it. Chat templates close a reply with
    an end token and a newline (ChatML: '<|im_end|>\\n'): drop that newline so the end token is
    not doubled."""
    if eos and text.rstrip().endswith(eos):
        return text.rstrip()
    return text


def _text_rows(ds, tokenizer, answer_keys):
    eos = tokenizer.eos_token

    def fix(example):
        return {k: _ends_with_eos(example[k], eos) for k in answer_keys}

    return ds.map(fix) if ds is not None else None


# ---- dpo -----------------------------------------------------------------------------------
def dpo_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks):
    if cfg.pref_loss == "orpo":
        return _orpo_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks)
    if cfg.pref_loss == "simpo":
        return _simpo_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks)
    from trl import DPOConfig, DPOTrainer

    if cfg.pref_loss not in DPO_LOSSES:
        raise PreferenceError(
            f"pref_loss '{cfg.pref_loss}' is not a DPO loss; "
            f"choose one of {', '.join(DPO_LOSSES + REFERENCE_FREE_LOSSES)}"
        )
    dpo_args = DPOConfig(
        **args,
        beta=cfg.pref_beta,
        loss_type=[cfg.pref_loss],
        label_smoothing=cfg.pref_label_smoothing,
        max_length=cfg.cutoff_len,
        precompute_ref_log_probs=not cfg.use_ref_model,
        dataset_num_proc=None,
    )
    ref_model = _reference_copy(cfg) if cfg.use_ref_model and not is_peft(model) else None
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=dpo_args,
        train_dataset=_text_rows(train_ds, tokenizer, ("chosen", "rejected")),
        eval_dataset=_text_rows(eval_ds, tokenizer, ("chosen", "rejected")),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    _settle_reference_adapter(cfg, trainer)
    return _keep_float_adapters(trainer, args)


def _reference_copy(cfg):
    """A frozen copy of the base model, loaded the way the policy was."""
    from . import models

    ref = models.load_causal_lm(cfg.model_name_or_path, cfg.compute_type, trust_remote_code=cfg.trust_remote_code)
    ref.requires_grad_(False)
    return ref.eval()


def _settle_reference_adapter(cfg, trainer) -> None:
    """trl keeps a frozen copy of the starting adapter (named 'ref') as the reference. A fresh
    LoRA adapter starts as a no-op, so switching it off gives the same reference without a copy;
    PiSSA changes the base weights, so there the copy is needed until training ends."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not (is_peft(model) and "ref" in model.peft_config):
        return
    if cfg.pissa_init:
        trainer.add_callback(_drop_reference_callback())
    else:
        model.delete_adapter("ref")


def _drop_reference_callback():
    """A callback that removes the reference adapter before the result is saved (it is not part
    of the result)."""
    from transformers import TrainerCallback

    class DropReference(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            if is_peft(model) and "ref" in model.peft_config:
                model.delete_adapter("ref")

    return DropReference()


def _legacy_args(args: dict) -> dict:
    # trl's older ORPO/CPO trainers feed `chosen_input_ids`; the Trainer cannot count tokens seen
    return {**args, "include_num_input_tokens_seen": "no"}


def _orpo_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = _legacy_args(args)
    orpo_args = ORPOConfig(
        **args,
        beta=cfg.pref_beta,
        max_length=cfg.cutoff_len,
        max_completion_length=cfg.cutoff_len,
        dataset_num_proc=None,
    )
    return ORPOTrainer(
        model=model,
        args=orpo_args,
        train_dataset=_text_rows(train_ds, tokenizer, ("chosen", "rejected")),
        eval_dataset=_text_rows(eval_ds, tokenizer, ("chosen", "rejected")),
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def _simpo_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    args = _legacy_args(args)
    # SimPO = CPO's length-normalised margin loss without its NLL term (cpo_alpha 0)
    simpo_args = CPOConfig(
        **args,
        beta=cfg.pref_beta,
        loss_type="simpo",
        cpo_alpha=0.0,
        max_length=cfg.cutoff_len,
        max_completion_length=cfg.cutoff_len,
        dataset_num_proc=None,
    )
    return CPOTrainer(
        model=model,
        args=simpo_args,
        train_dataset=_text_rows(train_ds, tokenizer, ("chosen", "rejected")),
        eval_dataset=_text_rows(eval_ds, tokenizer, ("chosen", "rejected")),
        processing_class=tokenizer,
        callbacks=callbacks,
    )


# ---- kto -----------------------------------------------------------------------------------
def kto_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks):
    from trl import KTOConfig, KTOTrainer

    if cfg.pref_loss not in KTO_LOSSES:
        raise PreferenceError(f"stage kto takes pref_loss {' or '.join(KTO_LOSSES)}, not '{cfg.pref_loss}'")
    kto_args = KTOConfig(
        **args,
        beta=cfg.pref_beta,
        loss_type=KTO_LOSSES[cfg.pref_loss],
        max_length=cfg.cutoff_len,
        precompute_ref_log_probs=not cfg.use_ref_model,
        dataset_num_proc=None,
    )
    ref_model = _reference_copy(cfg) if cfg.use_ref_model and not is_peft(model) else None
    trainer = KTOTrainer(
        model=model,
        ref_model=ref_model,
        args=kto_args,
        train_dataset=_text_rows(train_ds, tokenizer, ("completion",)),
        eval_dataset=_text_rows(eval_ds, tokenizer, ("completion",)),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    _settle_reference_adapter(cfg, trainer)
    return _keep_float_adapters(trainer, args)


# ---- rm ------------------------------------------------------------------------------------
def reward_input_ids(tokenizer, prompt: str, answer: str, cutoff_len: int) -> list[int]:
    """The tokens the reward model reads for one (rendered prompt, rendered answer) pair."""
    ids = tokenizer(prompt + _ends_with_eos(answer, tokenizer.eos_token), add_special_tokens=False)["input_ids"]
    return ids[:cutoff_len]


def split_budget(prompt_len: int, answer_len: int, cutoff_len: int) -> tuple[int, int]:
    """(prompt tokens, answer tokens) kept when both do not fit: a short side keeps all of its
    tokens, otherwise each keeps its share of the cutoff, so the answers are never cut away
    entirely by a long prompt."""
    if prompt_len + answer_len <= cutoff_len:
        return prompt_len, answer_len
    if answer_len * 2 < cutoff_len:
        answer_max = cutoff_len
    elif prompt_len * 2 < cutoff_len:
        answer_max = cutoff_len - prompt_len
    else:
        answer_max = int(cutoff_len * answer_len / (prompt_len + answer_len))
    answer_keep = min(answer_max, answer_len)
    return min(cutoff_len - answer_keep, prompt_len), answer_keep


def pair_input_ids(tokenizer, prompt: str, chosen: str, rejected: str, cutoff_len: int) -> tuple[list[int], list[int]]:
    """Token ids of (prompt + chosen, prompt + rejected), the prompt and both answers cut in
    proportion so that the two sequences still differ where the answers do."""

    def encode(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt_ids = encode(prompt)
    chosen_ids = encode(_ends_with_eos(chosen, tokenizer.eos_token))
    rejected_ids = encode(_ends_with_eos(rejected, tokenizer.eos_token))
    keep_prompt, keep_answer = split_budget(len(prompt_ids), max(len(chosen_ids), len(rejected_ids)), cutoff_len)
    head = prompt_ids[:keep_prompt]
    return head + chosen_ids[:keep_answer], head + rejected_ids[:keep_answer]


def _pair_ids(ds, tokenizer, cutoff_len):
    if ds is None:
        return None

    def encode(example):
        chosen, rejected = pair_input_ids(
            tokenizer, example["prompt"], example["chosen"], example["rejected"], cutoff_len
        )
        return {"chosen_ids": chosen, "rejected_ids": rejected}

    return ds.map(encode, remove_columns=ds.column_names)


def rm_trainer(cfg, model, tokenizer, train_ds, eval_ds, args, callbacks):
    from trl import RewardConfig, RewardTrainer

    # a sequence-classification model finds each sequence's last real token through pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    rm_args = RewardConfig(**args, max_length=cfg.cutoff_len, dataset_num_proc=None)
    trainer = RewardTrainer(
        model=model,
        args=rm_args,
        train_dataset=_pair_ids(train_ds, tokenizer, cfg.cutoff_len),
        eval_dataset=_pair_ids(eval_ds, tokenizer, cfg.cutoff_len),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    return _keep_float_adapters(trainer, args)


def reward_model_kwargs() -> dict:
    """How train.py loads the model of stage rm: a scalar sequence-classification head."""
    from transformers import AutoModelForSequenceClassification

    return {"model_class": AutoModelForSequenceClassification, "num_labels": 1}


# ---- scoring with a trained reward model ---------------------------------------------------
def find_run(spec: str | Path) -> Path:
    """A run given as a folder, or as a run id under the saves folder."""
    from .runs import locate

    root, run_id = locate(str(spec))
    return Path(root) / run_id


class RewardModel:
    """A trained reward model (run folder) loaded once, to score many (prompt, response) pairs."""

    def __init__(self, run_dir: str | Path, device: str | None = None):
        import torch

        from . import models
        from .config import load_config
        from .data import chat_template_for
        from .runs import CONFIG_FILE, FINAL_DIR

        run_dir = find_run(run_dir)
        final = run_dir / FINAL_DIR
        if not (run_dir / CONFIG_FILE).is_file() or not final.is_dir():
            raise PreferenceError(f"{run_dir} is not a finished run (no {CONFIG_FILE} and {FINAL_DIR}/)")
        self.cfg = load_config(run_dir / CONFIG_FILE)
        if self.cfg.stage != "rm":
            raise PreferenceError(f"{run_dir} trained stage '{self.cfg.stage}', not a reward model (stage rm)")
        self.tokenizer = models.load_tokenizer(str(final), self.cfg.trust_remote_code)
        self.template, _ = chat_template_for(self.tokenizer, self.cfg.template, self.cfg.enable_thinking)
        kwargs = reward_model_kwargs()
        if (final / "adapter_config.json").is_file():
            from peft import PeftModel

            base = models.load_causal_lm(
                self.cfg.model_name_or_path,
                self.cfg.compute_type,
                trust_remote_code=self.cfg.trust_remote_code,
                device=device,
                **kwargs,
            )
            model = PeftModel.from_pretrained(base, str(final))
        else:
            model = models.load_causal_lm(
                str(final), self.cfg.compute_type, device=device, trust_remote_code=self.cfg.trust_remote_code, **kwargs
            )
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self._torch = torch

    def score(self, prompt: str | list[dict], response: str) -> float:
        from .data.templates import prompt_and_answer

        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        prompt_text, answer = prompt_and_answer(self.tokenizer, messages, response, self.template)
        return self.score_rendered(prompt_text, answer)

    def score_rendered(self, prompt_text: str, answer: str) -> float:
        """The score of an answer to a prompt already rendered through the chat template."""
        ids = reward_input_ids(self.tokenizer, prompt_text, answer, self.cfg.cutoff_len)
        with self._torch.no_grad():
            logits = self.model(input_ids=self._torch.tensor([ids], device=self.device)).logits
        return float(logits[0, 0])


def score(run_dir: str | Path, prompt: str | list[dict], response: str) -> float:
    """The reward a trained reward model (a stage-rm run folder) gives `response` to `prompt`."""
    return RewardModel(run_dir).score(prompt, response)
