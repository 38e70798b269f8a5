"""LLaMA-Factory users' configs, templates and adapters work unchanged.

Its example YAMLs come from the shared samples folder (skipped with a reason when absent); only
the model path and the dataset folder are overridden, plus a step count where a test trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from workbench import cli, train
from workbench.config import CHAT_KEYS, ConfigError, from_dict, load_tool_yaml, unknown_key_message

from conftest import SAMPLES, SHIPPED_DIR, run_cli

EXAMPLES = SAMPLES / "examples"
needs_samples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"LLaMA-Factory samples not present at {EXAMPLES}")
TRAINING_EXAMPLES = sorted(EXAMPLES.glob("train_*/*.yaml")) if EXAMPLES.is_dir() else []


def example(name: str, tiny_model_dir, **overrides) -> dict:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    data.update(model_name_or_path=str(tiny_model_dir), dataset_dir=str(SAMPLES), **overrides)
    return data


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    return err.value.problems


# ---- every key has a meaning ------------------------------------------------------------------
@needs_samples
@pytest.mark.parametrize("path", TRAINING_EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_training_examples_validate_with_only_model_and_data_folder_changed(path, tiny_model_dir):
    notes: list[str] = []
    cfg = from_dict(example(str(path.relative_to(EXAMPLES)), tiny_model_dir), str(path), notes)
    assert cfg.trust_remote_code is True and cfg.compute_type == "bf16" and cfg.warmup_steps == 0.1
    assert cfg.dataloader_num_workers == 4 and cfg.ddp_timeout == 180000000
    assert any(n.startswith("plot_loss") for n in notes) and any(n.startswith("overwrite_output_dir") for n in notes)


def test_aliases_set_the_fields_they_mean(tmp_path):
    base = {"dataset": "identity"}
    assert from_dict({**base, "fp16": True}).compute_type == "fp16"
    assert from_dict({**base, "pure_bf16": True}).compute_type == "bf16"
    assert from_dict({**base, "bf16": False}).compute_type == "auto"
    assert from_dict({**base, "gradient_checkpointing": True}).activation_checkpointing is True
    assert from_dict({**base, "disable_gradient_checkpointing": True}).activation_checkpointing is False
    assert from_dict({**base, "dpo_label_smoothing": 0.1}).pref_label_smoothing == 0.1
    assert (
        from_dict({**base, "deepspeed": "examples/deepspeed/ds_z3_config.json"}).distributed_engine == "deepspeed_zero3"
    )
    assert from_dict({**base, "deepspeed": "ds_z0_config.json"}).distributed_engine == "ddp"
    ds = tmp_path / "mine.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert from_dict({**base, "deepspeed": str(ds)}).distributed_engine == "deepspeed_zero2"
    assert from_dict({**base, "quantization_bit": 4, "quantization_method": "bnb"}).quantization_bit == 4
    assert from_dict({**base, "finetuning_type": "freeze", "freeze_trainable_layers": -1}).freeze_trainable_layers == -1
    assert from_dict({**base, "pissa_init": True, "pissa_iter": 16}).pissa_iter == 16
    assert (
        from_dict(
            {
                **base,
                "report_to": "none",
                "run_name": "x",
                "save_only_model": True,
                "eval_strategy": "no",
                "save_strategy": "epoch",
            }
        ).save_strategy
        == "epoch"
    )


def test_an_alias_that_contradicts_its_field_is_refused():
    problems = problems_of({"bf16": True, "compute_type": "fp32"})
    assert any("'bf16' means compute_type: bf16" in p and "fp32" in p for p in problems)
    assert any("warmup_ratio" in p for p in problems_of({"warmup_ratio": 2}))


@pytest.mark.parametrize(
    "keys, feature",
    [
        ({"use_galore": True, "galore_rank": 8}, "GaLore"),
        ({"use_apollo": True}, "APOLLO"),
        ({"use_badam": True}, "BAdam"),
        ({"use_muon": True}, "Muon"),
        ({"finetuning_type": "oft", "oft_block_size": 32}, "OFT"),
        ({"stage": "ppo"}, "PPO"),
        ({"image_max_pixels": 262144}, "multimodal"),
        ({"template": "qwen2_vl"}, "multimodal"),
        ({"ray_num_workers": 4}, "Ray"),
        ({"quantization_method": "hqq"}, "bitsandbytes"),
    ],
)
def test_features_this_project_lacks_are_refused_by_name(keys, feature):
    problems = problems_of(keys)
    named = [p for p in problems if feature in p]
    assert named and all("not supported" in p for p in named), problems
    assert not any("unknown key" in p for p in problems), problems


def test_a_feature_switched_off_is_no_problem():
    assert from_dict({"use_galore": False, "use_unsloth": False, "flash_attn": "auto"}).stage == "sft"


def test_suggestions_only_for_plausible_typos():
    assert "did you mean 'trust_remote_code'" in unknown_key_message("trust_remote_cod")
    assert "did you mean 'learning_rate'" in unknown_key_message("learning_rat")
    assert "did you mean" not in unknown_key_message("pot_lss_curve")
    assert from_dict({"plot_loss": True, "trust_remote_code": True}).trust_remote_code is True


def test_a_special_token_list_is_not_taken_for_a_config():
    problems = problems_of({"<|START_OF_SVG|>": "Marks the beginning", "<|end_of_g|>": "Ends"})
    assert "adding tokens" in problems[0] and "not supported" in problems[0]


def test_a_predict_yaml_predicts_without_training():
    cfg = from_dict({"do_predict": True, "predict_with_generate": True, "eval_dataset": "identity"})
    assert cfg.do_train is False and cfg.do_predict is True
    assert any("nothing to do" in p for p in problems_of({"do_train": False}))


# ---- templates ------------------------------------------------------------------------------
QWEN3_LIKE = (
    "{%- if enable_thinking is defined and enable_thinking is false %}NOTHINK {% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_template_names_use_the_model_template_and_warn_on_another_family(tiny_model_dir):
    from workbench.data.templates import chat_template_for, render, template_warning
    from workbench.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))  # SmolLM2's ChatML template
    own, _ = chat_template_for(tokenizer, "auto")
    for name in ("smollm2", "qwen", "chatml", "qwen3"):
        assert template_warning(tokenizer, name) is None or name == "qwen3"
    assert chat_template_for(tokenizer, "qwen")[0] == own
    warning = template_warning(tokenizer, "llama3")
    assert warning and "llama3" in warning and "another model family" in warning
    empty, _ = chat_template_for(tokenizer, "empty")
    assert render(tokenizer, [{"role": "user", "content": "hi"}], empty) == "hi"


def test_nothink_turns_thinking_off_where_the_template_has_it(tiny_model_dir):
    from workbench.data.templates import chat_template_for, render, template_warning
    from workbench.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.chat_template = QWEN3_LIKE
    messages = [{"role": "user", "content": "hi"}]
    assert "NOTHINK" in render(tokenizer, messages, chat_template_for(tokenizer, "qwen3_nothink")[0])
    assert "NOTHINK" not in render(tokenizer, messages, chat_template_for(tokenizer, "qwen3")[0])
    assert "NOTHINK" in render(tokenizer, messages, chat_template_for(tokenizer, "qwen3", False)[0])
    assert template_warning(tokenizer, "qwen3_nothink") is None


def test_mask_history_and_default_system(tiny_model_dir):
    from workbench.data import with_default_system
    from workbench.data.templates import chat_template_for, conversation_segments
    from workbench.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    template, _ = chat_template_for(tokenizer, "chatml")
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "second"},
    ]

    def trained(mask):
        return "".join(
            s.text for s in conversation_segments(tokenizer, messages, template, mask_history=mask) if s.trainable
        )

    assert "first" in trained(False) and "second" in trained(False)
    assert "first" not in trained(True) and "second" in trained(True)
    assert with_default_system(messages, "Be brief.")[0] == {"role": "system", "content": "Be brief."}
    with_system = [{"role": "system", "content": "own"}] + messages
    assert with_default_system(with_system, "Be brief.") == with_system


# ---- datasets -------------------------------------------------------------------------------
def test_reward_pairs_keep_their_difference_under_a_long_prompt(tiny_model_dir):
    from workbench.models import load_tokenizer
    from workbench.preference import pair_input_ids, split_budget

    assert split_budget(1000, 40, 256) == (216, 40)  # short answers keep every token
    assert split_budget(100, 1000, 256) == (100, 156)  # a short prompt keeps every token
    prompt_keep, answer_keep = split_budget(600, 400, 256)
    assert prompt_keep + answer_keep == 256 and answer_keep == int(256 * 400 / 1000)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    chosen, rejected = pair_input_ids(tokenizer, "long prompt " * 400, "yes, gladly", "no way", 256)
    assert len(chosen) <= 256 and len(rejected) <= 256 and chosen != rejected


def _registry(tmp_path, entries: dict, files: dict | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps(entries))
    for name, rows in (files or {}).items():
        (folder / name).write_text(json.dumps(rows))
    return folder


def test_check_refuses_hub_only_and_media_datasets_before_a_run_folder_exists(tmp_path, saves, write_config):
    data = _registry(
        tmp_path,
        {
            "hubonly": {"hf_hub_url": "someone/dataset"},
            "mm": {
                "file_name": "mm.json",
                "formatting": "sharegpt",
                "columns": {"messages": "messages", "images": "images"},
            },
        },
        {
            "mm.json": [
                {
                    "messages": [{"from": "human", "value": "<image>what is it?"}, {"from": "gpt", "value": "a cat"}],
                    "images": ["cat.jpg"],
                }
            ]
        },
    )
    for name, words in (("hubonly", "lives on a hub"), ("mm", "multimodal")):
        config = write_config(f"{name}.yaml", dataset=name, dataset_dir=str(data))
        result = run_cli("train", str(config), "--check")
        assert result.returncode == 1, result.stdout + result.stderr
        assert words in result.stdout and "check failed" in result.stdout
        assert train.main([str(config)]) == 1  # a real start is refused the same way
    assert not any(saves.iterdir()), "no run folder may be created"


# ---- --check, training, chaining --------------------------------------------------------------
@needs_samples
def test_check_prints_the_resolved_config_parameters_and_memory(tiny_model_dir, saves, tmp_path):
    result = run_cli(
        "train",
        str(EXAMPLES / "train_lora/qwen3_lora_sft.yaml"),
        "--check",
        "--set",
        f"model_name_or_path={tiny_model_dir}",
        "--set",
        f"dataset_dir={SAMPLES}",
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "note: plot_loss" in out and "template: qwen3_nothink" in out
    assert "trainable parameters:" in out and "\nestimated peak memory:" in out
    assert "check passed" in out
    assert not any(saves.iterdir()) and not (tmp_path / "qwen3-4b").exists()


@needs_samples
def test_sft_example_trains_then_dpo_continues_its_adapter(tiny_model_dir, saves, tmp_path):
    common = [
        f"--set=model_name_or_path={tiny_model_dir}",
        f"--set=dataset_dir={SAMPLES}",
        "--set=max_steps=2",
        "--set=max_samples=8",
        "--set=cutoff_len=128",
        "--set=dataloader_num_workers=0",
        "--set=gradient_accumulation_steps=1",
    ]
    sft_dir, dpo_dir = saves / "sft", saves / "dpo"
    assert train.main([str(EXAMPLES / "train_lora/qwen3_lora_sft.yaml"), *common, f"--set=output_dir={sft_dir}"]) == 0
    assert (sft_dir / "final" / "adapter_model.safetensors").is_file()
    assert (
        train.main(
            [
                str(EXAMPLES / "train_lora/qwen3_lora_dpo.yaml"),
                *common,
                f"--set=output_dir={dpo_dir}",
                f"--set=adapter_name_or_path={sft_dir}",
            ]
        )
        == 0
    )
    sft_cfg = json.loads((sft_dir / "final/adapter_config.json").read_text())
    dpo_cfg = json.loads((dpo_dir / "final/adapter_config.json").read_text())
    assert dpo_cfg["r"] == sft_cfg["r"] and sorted(dpo_cfg["target_modules"]) == sorted(sft_cfg["target_modules"])
    saved = yaml.safe_load((dpo_dir / "config.yaml").read_text())
    assert saved["adapter_name_or_path"] == str(sft_dir) and saved["stage"] == "dpo"


def test_continuing_starts_from_the_saved_adapter_weights(trained_lora_run, tiny_model_dir):
    import torch
    from safetensors.torch import load_file

    from workbench import methods, models

    cfg = from_dict(
        {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(trained_lora_run / "checkpoint-4")}
    )
    model = methods.apply_method(models.load_causal_lm(str(tiny_model_dir), "fp32"), cfg)
    saved = load_file(str(trained_lora_run / "checkpoint-4" / "adapter_model.safetensors"))
    name = next(k for k in saved if "lora_B" in k)
    live = dict(model.named_parameters())
    match = [
        p
        for n, p in live.items()
        if "lora_B" in n and n.replace(".default", "").endswith(name.split("base_model.model.")[-1])
    ]
    assert match and torch.equal(match[0].detach(), saved[name]) and match[0].requires_grad
    assert saved[name].abs().sum() > 0  # a new adapter would start with B = 0


def test_continuing_a_finished_run_trains_more(trained_lora_run, tiny_model_dir, saves):
    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(SHIPPED_DIR),
            "max_steps": 2,
            "cutoff_len": 64,
            "adapter_name_or_path": str(trained_lora_run),
        }
    )
    final = train.run(cfg, saves / "more", echo=False)
    assert (final / "adapter_model.safetensors").is_file()
    events = [json.loads(line) for line in (saves / "more/events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "end"


def test_an_adapter_of_another_method_is_refused(trained_lora_run, tiny_model_dir, saves, write_config):
    config = write_config(finetuning_type="ia3", adapter_name_or_path=str(trained_lora_run))
    assert train.main([str(config)]) == 1
    assert not any(saves.iterdir())
    missing = write_config("missing.yaml", adapter_name_or_path=str(saves / "nope"))
    assert train.main([str(missing)]) == 1


def test_tokenized_path_prepares_data_only(write_config, saves, tmp_path):
    out = tmp_path / "tokenized"
    assert train.main([str(write_config(tokenized_path=str(out), max_samples=4))]) == 0
    assert (out / "dataset_dict.json").is_file() and (out / "train").is_dir()
    assert not any(saves.iterdir())


def test_do_predict_writes_generated_predictions(trained_lora_run, tiny_model_dir, tmp_path, saves):
    plain = tmp_path / "adapter"  # a plain PEFT folder, not a run
    shutil.copytree(trained_lora_run / "final", plain)
    config = tmp_path / "predict.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(tiny_model_dir),
                "adapter_name_or_path": str(plain),
                "stage": "sft",
                "do_predict": True,
                "finetuning_type": "lora",
                "eval_dataset": "identity",
                "dataset_dir": str(SHIPPED_DIR),
                "template": "smollm2",
                "cutoff_len": 64,
                "max_samples": 2,
                "per_device_eval_batch_size": 1,
                "predict_with_generate": True,
                "overwrite_cache": True,
                "output_dir": str(saves / "predict"),
            }
        )
    )
    assert train.main([str(config)]) == 0
    rows = [json.loads(line) for line in (saves / "predict/generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and set(rows[0]) == {"prompt", "predict", "label"}
    assert "bleu" in json.loads((saves / "predict/predict_results.json").read_text())


# ---- chat and export YAMLs ------------------------------------------------------------------
def test_chat_and_export_read_llamafactory_yamls_with_a_plain_adapter(
    trained_lora_run, tiny_model_dir, tmp_path, capsys
):
    plain = tmp_path / "adapter"
    shutil.copytree(trained_lora_run / "final", plain)
    chat_yaml = tmp_path / "infer.yaml"
    chat_yaml.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(tiny_model_dir),
                "adapter_name_or_path": str(plain),
                "template": "smollm2",
                "infer_backend": "huggingface",
                "trust_remote_code": True,
                "max_new_tokens": 4,
            }
        )
    )
    assert cli.main(["chat", str(chat_yaml), "--prompt", "hi"]) == 0
    assert "tokens/s" in capsys.readouterr().err
    merge_yaml = tmp_path / "merge.yaml"
    merge_yaml.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(tiny_model_dir),
                "adapter_name_or_path": str(plain),
                "template": "smollm2",
                "trust_remote_code": True,
                "export_dir": str(tmp_path / "merged"),
                "export_size": 5,
                "export_device": "cpu",
                "export_legacy_format": False,
            }
        )
    )
    assert cli.main(["export", str(merge_yaml)]) == 0
    assert (tmp_path / "merged" / "config.json").is_file()


def test_tool_yamls_refuse_unknown_keys_and_missing_features(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"model_name_or_path": "x", "infer_backend": "vllm", "vllm_maxlen": 4096, "tempreature": 0.5})
    )
    with pytest.raises(ConfigError) as err:
        load_tool_yaml(bad, CHAT_KEYS)
    text = str(err.value)
    assert "vLLM inference is not supported" in text and "did you mean 'temperature'" in text


def test_continue_from_offers_finished_adapter_runs_and_checkpoints(trained_lora_run):
    from types import SimpleNamespace

    from workbench.ui.train_tab import continue_choices

    saves = trained_lora_run.parent
    ctx = SimpleNamespace(saves=saves, controller=SimpleNamespace(run_ids=lambda: [trained_lora_run.name]))
    choices = dict(continue_choices(ctx))
    name = trained_lora_run.name
    assert choices[""] == ""  # a new adapter
    assert choices[name] == str((trained_lora_run / "final").resolve())
    assert choices[f"{name}/checkpoint-4"] == str((trained_lora_run / "checkpoint-4").resolve())
    from workbench.methods import check_adapter

    assert check_adapter(from_dict({"adapter_name_or_path": choices[f"{name}/checkpoint-4"]}))["r"] == 4


@needs_samples
def test_entries_without_formatting_show_as_alpaca():
    from workbench.data.inspect import registered_format

    assert registered_format(SAMPLES, ["identity"]) == "alpaca"
    assert registered_format(SAMPLES, ["alpaca_en_demo"]) == "alpaca"
    assert registered_format(SAMPLES, ["glaive_toolcall_en_demo"]) == "sharegpt"


def test_a_reward_model_starts_from_an_sft_adapter(trained_lora_run, tiny_model_dir):
    import torch
    from safetensors.torch import load_file

    from workbench import methods, models
    from workbench.preference import reward_model_kwargs

    cfg = from_dict(
        {"model_name_or_path": str(tiny_model_dir), "stage": "rm", "adapter_name_or_path": str(trained_lora_run)}
    )
    base = models.load_causal_lm(str(tiny_model_dir), "fp32", **reward_model_kwargs())
    model = methods.apply_method(base, cfg)
    saved = load_file(str(trained_lora_run / "final" / "adapter_model.safetensors"))
    live = {n.replace(".default", ""): p for n, p in model.named_parameters()}
    loaded = [k for k in saved if "lora_B" in k and k in live]
    assert loaded and all(torch.equal(live[k].detach(), saved[k]) for k in loaded)
    assert any("score" in n and p.requires_grad for n, p in model.named_parameters())
