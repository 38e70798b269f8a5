"""Stages grpo and rloo on the tiny model: rule rewards, an rm run as reward, the samples kept
per log, and bad input refused before a run starts, naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

PROMPTS = [
    ("What is two plus two?", "4"),
    ("What is three plus four?", "7"),
    ("What is five minus one?", "4"),
    ("What is two times three?", "6"),
    ("What is one plus one?", "2"),
    ("What is nine minus two?", "7"),
    ("What is four plus four?", "8"),
    ("What is six minus six?", "0"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rl-data")
    (folder / "sums.json").write_text(
        json.dumps([{"instruction": q, "input": "", "output": a} for q, a in PROMPTS]), encoding="utf-8"
    )
    (folder / "pairs.json").write_text(
        json.dumps([{"prompt": q, "chosen": a, "rejected": "a fish"} for q, a in PROMPTS]), encoding="utf-8"
    )
    (folder / "docs.json").write_text(json.dumps([{"text": "plain text, no prompt"}] * 4), encoding="utf-8")
    (folder / "dataset_info.json").write_text(
        json.dumps(
            {
                "sums": {"file_name": "sums.json"},
                "pairs": {"file_name": "pairs.json"},
                "docs": {"file_name": "docs.json"},
            }
        ),
        encoding="utf-8",
    )
    return folder


def make_cfg(tiny_model_dir, data_dir, **keys):
    from workbench.config import from_dict

    base = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset": "sums",
        "dataset_dir": str(data_dir),
        "stage": "grpo",
        "max_steps": 2,
        "logging_steps": 1,
        "save_steps": 100,
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 8,
        "learning_rate": 1e-3,
        "cutoff_len": 64,
        "lora_rank": 4,
    }
    return from_dict({**base, **keys})


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage,method", [("grpo", "lora"), ("rloo", "lora"), ("grpo", "full"), ("grpo", "freeze")])
def test_rl_stage_trains_with_rule_rewards_and_logs_the_chart_and_samples(
    tiny_model_dir, data_dir, tmp_path, stage, method
):
    from workbench.progress import RunMonitor
    from workbench.rewards import read_samples
    from workbench.train import run

    cfg = make_cfg(
        tiny_model_dir,
        data_dir,
        stage=stage,
        finetuning_type=method,
        reward_funcs="exact_match,length",
        reward_weights="1,0.5",
        reward_max_length=20,
        freeze_trainable_layers=1,
    )
    final = run(cfg, tmp_path / "run", echo=False)
    assert final.is_dir()
    logs = [e for e in events(tmp_path / "run") if e["type"] == "log"]
    assert logs and all("reward" in e and "reward_std" in e for e in logs), logs
    assert all("completions/mean_length" in e for e in logs)
    if stage == "grpo":
        assert all("kl" in e for e in logs)
    mon = RunMonitor(tmp_path / "run")
    mon.update()
    assert {"reward", "reward_std", "kl", "completion_length"} <= set(mon.rl)
    samples = read_samples(tmp_path / "run")
    assert samples and samples[-1]["step"] == 2
    if stage == "grpo" and method == "lora":  # what the Train tab's RL panel draws and lists
        from workbench.ui.rl_view import rl_frame, samples_frame

        assert set(rl_frame(mon)["series"]) == {"reward", "reward_std", "kl", "completion_length"}
        table = samples_frame(samples, "en")
        assert list(table.columns) == ["step", "reward", "each reward", "prompt", "answer"]
        assert len(table) == 2 * len(samples[-1]["samples"]) and table.iloc[0]["step"] == 2
    sample = samples[-1]["samples"][0]
    assert set(sample["rewards"]) == {"exact_match", "length"}
    assert sample["reward"] == pytest.approx(sample["rewards"]["exact_match"] + 0.5 * sample["rewards"]["length"])
    assert "two" in " ".join(s["prompt"] for s in samples[-1]["samples"]) or sample["prompt"]


def test_lora_grpo_keeps_one_copy_and_saves_a_plain_adapter(tiny_model_dir, data_dir, tmp_path):
    import torch

    from workbench import data, methods, models, stages
    from workbench.train import run

    cfg = make_cfg(tiny_model_dir, data_dir, max_steps=1, beta=0.1)
    # the reference is the base with the adapter off: trl keeps no second model
    tokenizer = models.load_tokenizer(cfg.model_name_or_path)
    examples, _ = data.tokenize_rows(tokenizer, data.load_splits(cfg).train, cfg)
    model = methods.apply_method(models.load_causal_lm(cfg.model_name_or_path, "fp32"), cfg)
    trainer = stages.build_trainer(cfg, model, tokenizer, examples, [], str(tmp_path / "t"), torch.float32, [])
    assert trainer.ref_model is None and trainer.beta == 0.1
    assert examples[0]["prompt"].rstrip().endswith("assistant") and examples[0]["reference"] == "4"

    final = run(cfg, tmp_path / "run", echo=False)
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()


@pytest.fixture(scope="module")
def rm_run(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    from workbench.train import run

    saves = tmp_path_factory.mktemp("saves-rl")
    run(make_cfg(tiny_model_dir, data_dir, stage="rm", dataset="pairs", max_steps=2), saves / "rm", echo=False)
    return saves / "rm"


def test_grpo_with_a_reward_model_run_and_a_rule(tiny_model_dir, data_dir, rm_run, tmp_path, monkeypatch):
    from workbench.rewards import read_samples
    from workbench.train import run

    monkeypatch.setenv("WORKBENCH_SAVES", str(rm_run.parent))
    cfg = make_cfg(tiny_model_dir, data_dir, reward_model="rm", reward_funcs="numeric_match", reward_weights="1,2")
    run(cfg, tmp_path / "run", echo=False)
    sample = read_samples(tmp_path / "run")[-1]["samples"][0]
    assert set(sample["rewards"]) == {"numeric_match", "reward_model"}
    assert sample["reward"] == pytest.approx(sample["rewards"]["numeric_match"] + 2 * sample["rewards"]["reward_model"])


# ---- rules ------------------------------------------------------------------------------------
def test_rule_rewards():
    from workbench import reward_rules as r
    from workbench.rewards import RewardSpec

    assert r.exact_match(" 2021-03-05\n", "2021-03-05") == 1 and r.exact_match("2021-3-5", "2021-03-05") == 0
    assert r.numeric_match("The answer is 1,234.", "1234") == 1
    assert r.numeric_match("about 3,5 litres", "3.5") == 1 and r.numeric_match("seven", "7") == 0
    assert r.json_valid('```json\n{"a": 1}\n```') == 1 and r.json_valid("{a: 1}") == 0
    schema = {"type": "object", "required": ["name"], "properties": {"age": {"type": "integer"}}}
    assert r.json_valid('{"name": "x", "age": 3}', schema) == 1
    assert r.json_valid('{"name": "x", "age": "3"}', schema) == 0 and r.json_valid('{"age": 3}', schema) == 0
    assert r.length_window("hello", 1, 5) == 1 and r.length_window("hello!", 1, 5) == 0
    spec = RewardSpec(["regex"], regex=r"^\d{4}-\d{2}-\d{2}$")
    assert spec.rule("regex")("2021-03-05", None) == 1 and spec.rule("regex")("5 March", None) == 0


# ---- bad input: refused before a run folder exists, naming the key -----------------------------
@pytest.mark.parametrize(
    "keys,needle",
    [
        ({"reward_funcs": "regex", "reward_regex": "([a-z"}, "'reward_regex'"),
        ({"reward_funcs": "exact_match,bleu"}, "'reward_funcs'"),
        ({"reward_funcs": "", "reward_model": None}, "'reward_funcs'"),
        ({"reward_weights": "1,2"}, "'reward_weights'"),
        ({"reward_funcs": "json", "reward_json_schema": "{not json"}, "'reward_json_schema'"),
        ({"num_generations": 3}, "'num_generations'"),
        ({"finetuning_type": "prompt_tuning"}, "finetuning_type"),
    ],
)
def test_bad_rl_settings_are_refused_naming_the_key(tiny_model_dir, data_dir, keys, needle):
    from workbench.config import ConfigError

    with pytest.raises(ConfigError) as err:
        make_cfg(tiny_model_dir, data_dir, **keys)
    assert needle in str(err.value)


def test_reward_model_that_is_not_an_rm_run_and_dataset_without_prompts_are_refused(
    tiny_model_dir, data_dir, rm_run, tmp_path, monkeypatch
):
    from workbench.config import save_config
    from workbench.rewards import precheck

    saves = rm_run.parent
    monkeypatch.setenv("WORKBENCH_SAVES", str(saves))
    sft = saves / "an-sft-run"
    sft.mkdir(exist_ok=True)
    save_config(make_cfg(tiny_model_dir, data_dir, stage="sft"), sft / "config.yaml")
    problems = precheck(make_cfg(tiny_model_dir, data_dir, reward_model="an-sft-run"))
    assert any("'reward_model'" in p and "stage sft" in p for p in problems), problems
    assert any(
        "'reward_model' 'nowhere'" in p for p in precheck(make_cfg(tiny_model_dir, data_dir, reward_model="nowhere"))
    )
    problems = precheck(make_cfg(tiny_model_dir, data_dir, dataset="docs"))
    assert any("'dataset'" in p and "without prompts" in p for p in problems), problems
    assert precheck(make_cfg(tiny_model_dir, data_dir, reward_model="rm")) == []

    # the command refuses it before a run folder is made
    config = tmp_path / "bad.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_model_dir}\ndataset: docs\ndataset_dir: {data_dir}\n"
        f"stage: grpo\nnum_generations: 2\noutput_dir: {tmp_path / 'never'}\n"
    )
    out = run_cli("train", str(config), env={"WORKBENCH_SAVES": str(saves)})
    assert out.returncode == 1 and "'dataset'" in out.stderr, out.stderr
    assert not (tmp_path / "never").exists()


def test_eval_reports_the_mean_reward_of_base_and_tuned(tiny_model_dir, data_dir, tmp_path):
    from workbench.train import run

    saves = tmp_path / "saves"
    run(
        make_cfg(
            tiny_model_dir, data_dir, max_steps=1, test_size=2, reward_funcs="exact_match,length", reward_max_length=5
        ),
        saves / "rl",
        echo=False,
    )
    out = run_cli("eval", "--run", "rl", "--compare", "--saves", str(saves), "--max-new-tokens", "4")
    assert out.returncode == 0, out.stderr
    assert "reward " in out.stdout and "reward/length" in out.stdout, out.stdout
    report = json.loads(next((saves / "rl" / "eval").glob("compare-*.json")).read_text())
    for side in ("base_metrics", "tuned_metrics"):
        metrics = report[side]
        assert metrics["reward"] == pytest.approx(metrics["reward/exact_match"] + metrics["reward/length"])
    # any run, with rules named on the command line; a bad one is refused naming the flag
    out = run_cli(
        "eval",
        "--run",
        "rl",
        "--saves",
        str(saves),
        "--max-new-tokens",
        "4",
        "--reward-funcs",
        "regex",
        "--reward-regex",
        "[0-9]",
    )
    assert out.returncode == 0 and '"reward/regex"' in out.stdout, out.stderr
    out = run_cli("eval", "--run", "rl", "--saves", str(saves), "--reward-model", "rl")
    assert out.returncode == 2 and "--reward-model" in out.stderr, out.stderr
