"""A few real steps on the embedded default model (SmolLM2-135M-Instruct): the loss falls, the
adapter reloads in plain peft, and generation works and has changed."""

import json

import pytest
import torch

from workbench.data.registry import SHIPPED_DIR

from conftest import run_cli

pytestmark = pytest.mark.slow


def test_default_model_trains_reloads_and_generates(tmp_path, default_model_dir):
    run_dir = tmp_path / "real"
    config = tmp_path / "real.yaml"
    config.write_text(
        f"dataset: identity\ndataset_dir: {SHIPPED_DIR}\noutput_dir: {run_dir}\n"
        "max_samples: 8\nper_device_train_batch_size: 8\nmax_steps: 8\nlogging_steps: 1\n"
        "learning_rate: 2e-3\nlr_scheduler_type: constant\nsave_steps: 8\n"
    )
    result = run_cli("train", str(config), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert losses[-1] < 0.7 * losses[0], losses
    model_event = next(e for e in events if e["type"] == "model")
    # auto measures this CPU: bf16 where its matrix products clearly beat fp32 (AMX), else fp32
    from workbench.config import DEFAULT_MODEL
    from workbench.models import compute_dtype_for_model

    assert model_event["dtype"] == str(compute_dtype_for_model("auto", DEFAULT_MODEL)).removeprefix("torch.")

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "final")
    base = AutoModelForCausalLM.from_pretrained(default_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Who are you?"}], add_generation_prompt=True, tokenize=False
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        before = base.generate(**inputs, max_new_tokens=24, do_sample=False)
        tuned = PeftModel.from_pretrained(base, run_dir / "final")
        after = tuned.generate(**inputs, max_new_tokens=24, do_sample=False)
    new_text = tokenizer.decode(after[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert new_text.strip()
    assert not torch.equal(before, after)
