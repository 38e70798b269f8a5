"""bf16 on a CPU: mixed precision (bf16 products under autocast, fp32 master weights, optimizer
states, loss and gradient norms) for LoRA, full fine-tuning and QLoRA, and how `auto` picks
between bf16 and fp32 by measuring the machine."""

from __future__ import annotations

import json

import pytest
import torch

from workbench import models
from workbench.config import from_dict


def _train(tiny_model_dir, tmp_path, compute_type, **keys):
    from workbench import train

    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(_data_dir()),
            "max_samples": 8,
            "max_steps": 8,
            "logging_steps": 1,
            "save_steps": 100,
            "per_device_train_batch_size": 4,
            "learning_rate": 2e-2,
            "cutoff_len": 128,
            "lr_scheduler_type": "constant",
            "compute_type": compute_type,
            **keys,
        }
    )
    run_dir = tmp_path / f"run-{compute_type}-{keys.get('finetuning_type', 'lora')}-{keys.get('quantization_bit')}"
    final = train.run(cfg, run_dir, echo=False)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return final, events


def _data_dir():
    from workbench.data.registry import SHIPPED_DIR

    return SHIPPED_DIR


@pytest.mark.parametrize(
    "keys",
    [{"finetuning_type": "lora"}, {"finetuning_type": "full"}, {"finetuning_type": "lora", "quantization_bit": 4}],
    ids=["lora", "full", "qlora"],
)
def test_bf16_trains_on_cpu_with_fp32_master_weights(tiny_model_dir, tmp_path, keys):
    final, events = _train(tiny_model_dir, tmp_path, "bf16", **keys)
    model_event = next(e for e in events if e["type"] == "model")
    assert model_event["dtype"] == "bfloat16" and model_event["device"] == "cpu"
    logs = [e for e in events if e["type"] == "log" and "loss" in e]
    assert len(logs) == 8 and events[-1]["type"] == "end"
    losses = [e["loss"] for e in logs]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-2:]) < sum(losses[:2]), losses  # it learns
    assert all(torch.isfinite(torch.tensor(e["grad_norm"])) for e in logs if "grad_norm" in e)
    # the saved trainable weights are the fp32 master copies
    from safetensors.torch import load_file

    saved = final / ("adapter_model.safetensors" if keys["finetuning_type"] == "lora" else "model.safetensors")
    dtypes = {t.dtype for t in load_file(saved).values()}
    assert dtypes == {torch.float32}, dtypes


def test_bf16_learns_what_fp32_learns(tiny_model_dir, tmp_path):
    """Same data, same steps: per-step losses of bf16 stay close to fp32's."""
    _, fp32 = _train(tiny_model_dir, tmp_path, "fp32")
    _, bf16 = _train(tiny_model_dir, tmp_path, "bf16")
    a = [e["loss"] for e in fp32 if e["type"] == "log" and "loss" in e]
    b = [e["loss"] for e in bf16 if e["type"] == "log" and "loss" in e]
    assert len(a) == len(b) == 8
    assert max(abs(x - y) / x for x, y in zip(a, b)) < 0.03, (a, b)


# ---- auto: measured, not assumed ----------------------------------------------------------
def _fake_measure(fp32: float, bf16: float):
    calls = []

    def measure(dtype, shape):
        calls.append((dtype, shape))
        return {"fp32": fp32, "bf16": bf16}[dtype]

    return measure, calls


@pytest.mark.parametrize(
    "bf16_speed, expected",
    [(1900.0, True), (400.0, False), (1.0, False)],
    ids=["amx", "no-clear-margin", "no-bf16-units"],
)
def test_auto_picks_bf16_only_when_measured_clearly_faster(bf16_speed, expected):
    measure, calls = _fake_measure(350.0, bf16_speed)
    choice = models.cpu_bf16_choice((576, 1536), measure=measure)
    assert choice.use_bf16 is expected
    assert {c[0] for c in calls} == {"fp32", "bf16"} and all(c[1] == (576, 1536) for c in calls)
    reason = choice.reason()
    assert reason.startswith("bf16" if expected else "fp32") and "576x1536" in reason


def test_auto_measures_once_per_machine_and_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    probes = []

    def probe(shape, rounds=4):
        probes.append(shape)
        return 300.0, 1800.0

    monkeypatch.setattr(models, "_probe_both", probe)
    assert models.pick_compute_dtype("auto", "cpu", (64, 128)) == torch.bfloat16
    assert models.pick_compute_dtype("auto", "cpu", (64, 128)) == torch.bfloat16
    assert probes == [(64, 128)]  # the second answer came from the cache file
    assert models.cpu_bf16_choice((64, 128)).cached
    monkeypatch.setattr(models, "_probe_both", lambda shape, rounds=4: (300.0, 200.0))
    assert models.pick_compute_dtype("auto", "cpu", (32, 64)) == torch.float32
    # explicit choices are never measured
    assert models.pick_compute_dtype("fp32", "cpu") == torch.float32
    assert models.pick_compute_dtype("bf16", "cpu") == torch.bfloat16
    # a damaged cache file is measured again, not fatal
    models.hardware_cache_file().write_text("{not json")
    assert models.pick_compute_dtype("auto", "cpu", (64, 128)) == torch.float32


def test_bf16_weights_load_fp32_for_training_on_cpu():
    assert models.weights_dtype(torch.bfloat16, "cpu", training=True) == torch.float32
    assert models.weights_dtype(torch.bfloat16, "cpu", training=False) == torch.bfloat16
    assert models.weights_dtype(torch.bfloat16, "cuda", training=True) == torch.bfloat16
    assert models.weights_dtype(torch.float32, "cpu", training=True) == torch.float32
