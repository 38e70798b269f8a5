"""Stage `cls`: sequence classification on text + label rows.

The model is the base with a classification head (AutoModelForSequenceClassification) sized
from the labels found in the training rows. The label names travel with the result: in the
model config (id2label) and in labels.json next to every checkpoint and the final result,
since a LoRA adapter folder carries no model config.
"""

from __future__ import annotations

import json
from pathlib import Path

LABELS_FILE = "labels.json"


class ClassifyError(ValueError):
    pass


def label_names(examples: list[dict]) -> list[str]:
    """The classes in a stable order: numerically when every label is a number, else by name."""
    names = {str(e["label"]) for e in examples}
    if len(names) < 2:
        raise ClassifyError(
            f"stage 'cls' needs at least two different labels in the training rows, found {sorted(names) or 'none'}"
        )
    if all(_is_int(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def write_labels(folder, names: list[str]) -> None:
    from .config import atomic_write_text

    atomic_write_text(Path(folder) / LABELS_FILE, json.dumps({"labels": names}, ensure_ascii=False, indent=2) + "\n")


def read_labels(folder) -> list[str]:
    return json.loads((Path(folder) / LABELS_FILE).read_text(encoding="utf-8"))["labels"]


def load_model(cfg, tokenizer, train_examples: list[dict], run_dir):
    """The base model with a fresh classification head of one output per label."""
    from transformers import AutoModelForSequenceClassification

    from . import models

    names = label_names(train_examples)
    write_labels(run_dir, names)
    return models.load_causal_lm(
        cfg.model_name_or_path,
        cfg.compute_type,
        cfg.quantization_bit,
        cfg.quantization_type,
        cfg.double_quantization,
        model_class=AutoModelForSequenceClassification,
        training=True,
        trust_remote_code=cfg.trust_remote_code,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        # the head reads the last non-pad token: the model must know the pad id
        pad_token_id=tokenizer.pad_token_id,
    )


def encode(examples: list[dict], tokenizer, label2id: dict[str, int], cutoff_len: int, split: str):
    """A datasets.Dataset of input_ids/attention_mask/labels; unknown labels are an error."""
    from datasets import Dataset

    unknown = sorted({str(e["label"]) for e in examples} - set(label2id))
    if unknown:
        raise ClassifyError(
            f"the {split} rows have labels the training rows lack: {', '.join(unknown)} (known: {', '.join(label2id)})"
        )
    texts = [e["text"] for e in examples]
    encoded = tokenizer(texts, truncation=True, max_length=cutoff_len)
    return Dataset.from_dict(
        {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": [label2id[str(e["label"])] for e in examples],
        }
    )


def accuracy(eval_pred) -> dict:
    import numpy as np

    logits, labels = eval_pred
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def build_trainer(cfg, model, tokenizer, train_examples, eval_examples, args: dict, callbacks):
    """A transformers Trainer with cross-entropy over the labels and accuracy on validation."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    label2id = {str(k): int(v) for k, v in base.config.label2id.items()}
    names = [n for n, _ in sorted(label2id.items(), key=lambda kv: kv[1])]
    train_ds = encode(train_examples, tokenizer, label2id, cfg.cutoff_len, "training")
    eval_ds = encode(eval_examples, tokenizer, label2id, cfg.cutoff_len, "validation") if eval_examples else None

    class ClassifyTrainer(Trainer):
        def _save(self, output_dir=None, state_dict=None):
            super()._save(output_dir, state_dict)
            write_labels(output_dir or self.args.output_dir, names)

    return ClassifyTrainer(
        model=model,
        args=TrainingArguments(**args),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy if eval_ds is not None else None,
        callbacks=callbacks,
    )
