"""Every hyperparameter the issue names is one declared field with a range and help in both
languages; bad values and impossible stage/method/option combinations are refused before
anything loads, with a message naming the keys."""

import pytest

from workbench.config import FIELDS, ConfigError, field_base_type, from_dict

HYPERPARAMETERS = {
    "learning rate": "learning_rate",
    "epochs": "num_train_epochs",
    "max steps": "max_steps",
    "batch size": "per_device_train_batch_size",
    "gradient accumulation": "gradient_accumulation_steps",
    "cutoff length": "cutoff_len",
    "scheduler": "lr_scheduler_type",
    "warmup": "warmup_steps",
    "weight decay": "weight_decay",
    "dropout": "dropout",
    "LoRA dropout": "lora_dropout",
    "max gradient norm": "max_grad_norm",
    "seed": "seed",
    "optimizer": "optim",
    "NEFTune noise": "neftune_noise_alpha",
    "packing": "packing",
    "activation checkpointing": "activation_checkpointing",
    "validate every N": "eval_steps",
    "save every N": "save_steps",
    "checkpoints to keep": "save_total_limit",
}


@pytest.mark.parametrize("what,name", list(HYPERPARAMETERS.items()))
def test_hyperparameter_is_declared_with_range_and_bilingual_help(what, name):
    meta = FIELDS[name].metadata
    assert meta["help"]["en"] and meta["help"]["zh"] and meta["label"]["zh"], what
    typ, _ = field_base_type(name)
    if typ in (int, float):
        assert meta["min"] is not None and meta["max"] is not None, f"{name} has no range"
    elif typ is str:
        assert meta["choices"], f"{name} has no allowed values"


def out_of_range_value(name):
    meta = FIELDS[name].metadata
    typ, _ = field_base_type(name)
    if typ is bool:
        return "maybe"
    if meta["choices"]:
        return "no-such-choice"
    return meta["max"] * 10 + 1 if meta["max"] is not None else meta["min"] - 1


@pytest.mark.parametrize("name", sorted(set(HYPERPARAMETERS.values())))
def test_out_of_range_hyperparameter_is_refused_naming_it(name):
    with pytest.raises(ConfigError) as err:
        from_dict({name: out_of_range_value(name)})
    assert f"'{name}'" in str(err.value)


@pytest.mark.parametrize(
    "keys,named",
    [
        ({"pissa_init": True, "quantization_bit": 4}, ["pissa_init", "quantization_bit"]),
        ({"finetuning_type": "prompt_tuning", "stage": "cls"}, ["cls"]),
        ({"finetuning_type": "ia3", "use_rslora": True}, ["use_rslora"]),
        ({"finetuning_type": "full", "loraplus_lr_ratio": 16}, ["loraplus_lr_ratio"]),
        ({"finetuning_type": "full", "use_dora": True}, ["use_dora"]),
        ({"finetuning_type": "prefix_tuning", "layerwise_lr_decay": 0.8}, ["layerwise_lr_decay"]),
        ({"finetuning_type": "freeze", "quantization_bit": 8}, ["quantization_bit"]),
        ({"quantization_bit": 8, "quantization_type": "fp4"}, ["quantization_type"]),
        ({"stage": "cls", "finetuning_type": "head", "quantization_bit": 4}, ["quantization_bit"]),
        ({"stage": "cls", "finetuning_type": "head", "packing": True}, ["packing"]),
        ({"finetuning_type": "head"}, ["head"]),
        ({"eval_steps": 10}, ["eval_steps", "val_size"]),
    ],
)
def test_impossible_combinations_are_refused_naming_the_keys(keys, named):
    with pytest.raises(ConfigError) as err:
        from_dict(keys)
    for key in named:
        assert key in str(err.value)


@pytest.mark.parametrize(
    "keys",
    [
        {"use_dora": True, "quantization_bit": 4},  # peft has DoRA for bitsandbytes layers
        {"use_rslora": True, "pissa_init": True, "loraplus_lr_ratio": 16},
        {"finetuning_type": "full", "layerwise_lr_decay": 0.9, "dropout": 0.1},
        {"stage": "cls", "finetuning_type": "lora"},
        {"eval_steps": 10, "val_size": 0.1},
    ],
)
def test_valid_combinations_pass(keys):
    from_dict(keys)


def test_dropout_reaches_the_model(tiny_model_dir):
    from workbench import methods, models

    cfg = from_dict({"model_name_or_path": str(tiny_model_dir), "finetuning_type": "full", "dropout": 0.25})
    model = methods.apply_method(models.load_causal_lm(str(tiny_model_dir), "fp32"), cfg)
    rates = {m.attention_dropout for m in model.modules() if hasattr(m, "attention_dropout")}
    assert rates == {0.25} and model.config.attention_dropout == 0.25


def test_workbench_methods_lists_every_method_option_and_stage(capsys):
    from workbench.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in FIELDS["finetuning_type"].metadata["choices"] + FIELDS["stage"].metadata["choices"]:
        assert any(line.split()[:1] == [name] and len(line.split()) > 2 for line in lines), name
    for option in (
        "use_rslora",
        "use_dora",
        "pissa_init",
        "loraplus_lr_ratio",
        "quantization_bit",
        "quantization_type",
        "double_quantization",
        "freeze_trainable_layers",
        "freeze_trainable_modules",
        "layerwise_lr_decay",
        "num_virtual_tokens",
        "lora_rank",
    ):
        assert any(line.split()[:1] == [option] for line in lines), option
    assert main(["methods", "--lang", "zh"]) == 0
    assert "低秩适配器" in capsys.readouterr().out


def test_classification_labels_are_ordered_and_a_single_class_is_refused():
    from workbench.classify import ClassifyError, label_names

    assert label_names([{"label": "10"}, {"label": "2"}, {"label": "2"}]) == ["2", "10"]
    assert label_names([{"label": "pos"}, {"label": "neg"}]) == ["neg", "pos"]
    with pytest.raises(ClassifyError, match="at least two different labels"):
        label_names([{"label": "pos"}, {"label": "pos"}])
