"""`workbench train CONFIG.yaml`: trains in a fresh process, writes the events contract, leaves an
adapter that plain peft reloads, and fails with a readable message and non-zero exit."""

import json

import torch

from conftest import run_cli


def read_events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_train_lora_loss_falls_and_adapter_reloads_in_plain_peft(write_config, tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    config = write_config(
        output_dir=str(run_dir),
        max_samples=8,
        max_steps=30,
        logging_steps=1,
        save_steps=10,
        per_device_train_batch_size=8,
        learning_rate=5e-2,
        lr_scheduler_type="constant",
    )
    result = run_cli("train", str(config), "--set", "lora_rank=4")
    assert result.returncode == 0, result.stderr[-3000:]

    events = read_events(run_dir)
    for event in events:
        assert {"type", "step", "max_steps", "time"} <= set(event)
    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert len(losses) == 30
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    assert events[-1]["type"] == "end"
    assert {e["checkpoint"] for e in events if e["type"] == "save"} == {
        "checkpoint-10",
        "checkpoint-20",
        "checkpoint-30",
    }

    final = run_dir / "final"
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    config_text = (run_dir / "config.yaml").read_text()
    assert "lora_rank: 4" in config_text  # the override is recorded with the run

    # plain peft, no workbench code: the adapter changes the base's outputs
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[1, 100, 200, 300, 2]])
    with torch.no_grad():
        base_logits = base(ids).logits
        tuned = PeftModel.from_pretrained(base, final)
        tuned_logits = tuned(ids).logits
    assert not torch.allclose(base_logits, tuned_logits)


def test_unknown_key_exits_non_zero_naming_it(write_config):
    config = write_config(lerning_rate=0.1)
    result = run_cli("train", str(config))
    assert result.returncode == 2
    assert "unknown key 'lerning_rate'" in result.stderr


def test_missing_dataset_exits_non_zero_with_the_reason(write_config, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(dataset="no_such_set", output_dir=str(run_dir))
    result = run_cli("train", str(config))
    assert result.returncode == 1
    assert "dataset 'no_such_set' is not registered" in result.stderr
    assert not run_dir.exists()  # refused by the pre-run check: no failed run left behind


def test_rerunning_a_runs_config_never_overwrites_it(write_config, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(output_dir=str(run_dir), max_steps=2, save_steps=2)
    assert run_cli("train", str(config)).returncode == 0
    first = (run_dir / "events.jsonl").read_text()
    again = run_cli("train", str(run_dir / "config.yaml"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run_dir / "events.jsonl").read_text() == first
    assert (tmp_path / "run-r2" / "final" / "adapter_config.json").is_file()
