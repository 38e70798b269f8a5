"""RunConfig: one declaration per knob, names users know, unknown keys and bad values refused."""

import dataclasses

import pytest

from workbench.config import (
    FIELDS,
    ConfigError,
    RunConfig,
    from_dict,
    load_config,
    parse_overrides,
    save_config,
    to_yaml,
)

TRAINING_ARGUMENT_NAMES = [
    "output_dir",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "logging_steps",
    "save_steps",
    "resume_from_checkpoint",
    "seed",
    "weight_decay",
    "max_grad_norm",
    "lr_scheduler_type",
    "warmup_steps",
    "optim",
    "save_total_limit",
    "eval_steps",
    "neftune_noise_alpha",
]
LLAMAFACTORY_NAMES = [
    "model_name_or_path",
    "dataset",
    "dataset_dir",
    "template",
    "stage",
    "finetuning_type",
    "quantization_bit",
    "cutoff_len",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_target",
    "val_size",
]


def test_names_users_already_know_are_fields():
    from transformers import TrainingArguments

    hf_names = {f.name for f in dataclasses.fields(TrainingArguments)}
    for name in TRAINING_ARGUMENT_NAMES:
        assert name in FIELDS and name in hf_names, name
    for name in LLAMAFACTORY_NAMES:
        assert name in FIELDS, name


def test_every_field_declares_group_labels_and_help_in_both_languages():
    for name, fld in FIELDS.items():
        meta = fld.metadata
        for lang in ("en", "zh"):
            assert meta["label"][lang].strip(), (name, lang)
            assert meta["help"][lang].strip(), (name, lang)
        if meta["choices"] is not None:
            assert fld.default in meta["choices"], name


def test_unknown_key_is_refused_and_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lerning_rate: 0.1\nmax_steps: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "unknown key 'lerning_rate'" in str(err.value)
    assert "did you mean 'learning_rate'" in str(err.value)
    assert "run.yaml" in str(err.value)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"learning_rate": -1}, "'learning_rate' is -1"),
        ({"lora_rank": 0}, "'lora_rank' is 0"),
        ({"stage": "ppo2"}, "'stage' is 'ppo2'; allowed"),
        ({"quantization_bit": 3}, "'quantization_bit' is 3"),
        ({"max_steps": "ten"}, "'max_steps' must be a whole number"),
        ({"activation_checkpointing": "maybe"}, "'activation_checkpointing' must be true or false"),
        ({"per_device_train_batch_size": 2.5}, "'per_device_train_batch_size' must be a whole number"),
        ({"finetuning_type": "full", "quantization_bit": 4}, "needs finetuning_type lora"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(data, needle):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert needle in str(err.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as err:
        from_dict({"learning_rate": -1, "bogus": 1, "lora_rank": 0})
    assert len(err.value.problems) == 3


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("max_steps: 5\n")
    cfg = load_config(path, ["learning_rate=1e-3", "use_dora=true", "quantization_bit=4", "lora_alpha=none"])
    assert cfg.learning_rate == 1e-3 and cfg.use_dora is True and cfg.quantization_bit == 4
    assert cfg.lora_alpha is None and cfg.max_steps == 5
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(path, ["nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["learning_rate"])


def test_yaml_round_trip_is_exact(tmp_path):
    cfg = from_dict({"dataset": ["identity", "other"], "lora_rank": 16, "use_rslora": True, "packing": False})
    assert cfg.dataset == "identity,other"
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert "lora_rank: 16" in to_yaml(cfg) and "seed" not in to_yaml(cfg)  # only non-defaults


def test_bad_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("max_steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_defaults_are_valid():
    assert from_dict({}) == RunConfig()


def test_kto_batch_of_one_row_runs_as_pairs_with_the_same_rows_per_step():
    # LLaMA-Factory's KTO example: 1 row x 8 accumulated; trl's KTO needs two rows in a batch
    from workbench.config import ConfigError, from_dict

    notes = []
    cfg = from_dict({"stage": "kto", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8}, notes=notes)
    assert (cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps) == (2, 4)
    assert any("runs as 2 x 4" in note for note in notes)
    with pytest.raises(ConfigError, match="per_device_train_batch_size"):
        from_dict({"stage": "kto", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1})
