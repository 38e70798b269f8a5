"""Before Start: the time a run will take (steps from the data's real token counts, speed
measured on this machine) and the memory of its largest real batch, beside the worst case."""

from __future__ import annotations

import json

import pytest

from workbench import memory, timing
from workbench.config import from_dict
from workbench.data.registry import SHIPPED_DIR

from conftest import run_cli


def _cfg(model_dir, **keys):
    return from_dict(
        {
            "model_name_or_path": str(model_dir),
            "dataset": "identity",
            "dataset_dir": str(SHIPPED_DIR),
            "cutoff_len": 128,
            **keys,
        }
    )


def test_steps_and_tokens_follow_the_data(tiny_model_dir):
    lengths = [10, 20, 30, 40, 50, 200]  # 200 is cut at the cutoff (128)
    cfg = _cfg(tiny_model_dir, per_device_train_batch_size=4, num_train_epochs=3, max_steps=-1)
    assert timing.planned_steps(cfg, lengths) == (6, 3 * (150 + 128))  # ceil(6/4)=2 steps an epoch
    cfg.gradient_accumulation_steps = 2
    assert timing.planned_steps(cfg, lengths)[0] == 3
    cfg.max_steps = 10  # max_steps wins; tokens in proportion
    assert timing.planned_steps(cfg, lengths) == (10, round(278 * 10 / 1))
    packed = _cfg(tiny_model_dir, packing=True, per_device_train_batch_size=1, num_train_epochs=1, max_steps=-1)
    assert timing.planned_steps(packed, lengths)[0] == 3  # 278 tokens in rows of 128


def test_the_estimate_says_duration_steps_and_seconds_per_step(tiny_model_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(tiny_model_dir, per_device_train_batch_size=4, num_train_epochs=2, max_steps=-1, compute_type="fp32")
    lengths = [100] * 40  # 10 steps an epoch, 20 steps, 8,000 tokens
    unknown = timing.estimate_time(cfg, lengths)
    assert unknown.seconds is None and "unknown (20 steps" in unknown.line()
    key = timing.speed_key(cfg, __import__("torch").float32)
    timing.record_speed(key, 400.0, "run")
    est = timing.estimate_time(cfg, lengths)
    assert est.seconds_per_step == pytest.approx(1.0)  # 400 tokens a step at 400 tokens/s
    assert est.line() == "about 21 s (20 steps, ~1.0 s/step)"
    # another dtype or method is another machine speed: not reused
    other = _cfg(tiny_model_dir, finetuning_type="full", compute_type="fp32")
    assert timing.estimate_time(other, lengths).tokens_per_s is None
    # a damaged speeds file is only a missing speed
    (tmp_path / "cache" / timing.SPEED_FILE).write_text("{oops")
    assert timing.estimate_time(cfg, lengths).tokens_per_s is None


def test_speed_comes_from_the_steps_after_the_first():
    events = [
        {"type": "start", "time": 0.0},
        {"type": "step", "step": 1, "time": 5.0, "tokens_seen": 100},  # warm-up step
        {"type": "step", "step": 2, "time": 6.0, "tokens_seen": 300},
        {"type": "log", "step": 2, "time": 6.1, "loss": 1.0},
        {"type": "step", "step": 3, "time": 7.0, "tokens_seen": 500},
    ]
    assert timing.speed_from_events(events) == pytest.approx(200.0)
    assert timing.speed_from_events(events[:2]) is None


def test_a_finished_run_records_its_speed_for_the_next_estimate(write_config, tmp_path, monkeypatch):
    import torch

    from workbench import train
    from workbench.config import load_config

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    cfg = load_config(write_config(max_steps=3, max_samples=8, compute_type="fp32"))
    key = timing.speed_key(cfg, torch.float32)
    assert timing.known_speed(key) is None
    train.run(cfg, tmp_path / "run", echo=False)
    assert timing.known_speed(key) > 0
    est = timing.estimate_time(cfg)
    assert est.seconds and est.steps == 3


def test_activations_use_the_largest_real_batch_not_batch_times_cutoff(default_model_dir):
    cfg = _cfg(default_model_dir, cutoff_len=1024, per_device_train_batch_size=4, compute_type="fp32")
    short = [20] * 30 + [25]
    est = memory.estimate(cfg, device="cpu", lengths=short)
    # padding-free (our SFT path): the batch of the four longest examples
    assert est.from_data and est.batch_tokens == 25 + 3 * 20 and est.worst_batch_tokens == 4096
    assert est.activations < est.worst_activations / 20
    assert est.worst_needed > est.needed
    assert est.worst_activations == memory.estimate(cfg, device="cpu").activations
    # padded batches (DPO, not our SFT path): batch x longest, each pair two sequences
    dpo = _cfg(default_model_dir, stage="dpo", cutoff_len=1024, per_device_train_batch_size=4, compute_type="fp32")
    assert memory.largest_batch_tokens(dpo, short) == 4 * 25 * 2
    # packing fills rows up to the cutoff
    packed = _cfg(default_model_dir, packing=True, cutoff_len=64, per_device_train_batch_size=4)
    assert memory.largest_batch_tokens(packed, short) == 4 * 64
    # lengths past the cutoff are cut
    assert memory.largest_batch_tokens(cfg, [5000] * 8) == 4 * 1024


def test_panel_shows_real_batch_worst_case_dtype_and_time(default_model_dir, monkeypatch, tmp_path):
    from workbench.ui.method_panel import render

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(memory, "device_memory", lambda device: (16 * 1024**3, 12 * 1024**3))
    cfg = _cfg(default_model_dir, cutoff_len=1024, compute_type="fp32")
    est = memory.estimate(cfg, device="cpu", lengths=[20] * 10)
    lengths = [20] * 10
    timing.record_speed(timing.speed_key(cfg, __import__("torch").float32), 40.0, "run")
    page = render(est, cfg, "en", timing.estimate_time(cfg, lengths))
    assert "Activations (largest batch of this data: 80 tokens)" in page
    assert "Worst case, every sequence at the cutoff (batch 4 × 1024 tokens)" in page
    assert "Compute type float32 (set by compute_type)" in page
    assert "Estimated time: about 17 s (9 steps, ~1.7 s/step) at 40 real tokens/s" in page
    zh = render(est, cfg, "zh", timing.estimate_time(cfg, lengths))
    assert "预计耗时" in zh and "最坏情况" in zh


def test_panel_says_what_auto_measured(default_model_dir, monkeypatch):
    from workbench import models
    from workbench.ui.method_panel import dtype_text

    cfg = _cfg(default_model_dir, compute_type="auto")
    monkeypatch.setattr(models, "device_type", lambda: "cpu")
    monkeypatch.setattr(
        models, "cpu_bf16_choice", lambda shape=None, measure=None: models.Bf16Choice(True, 350.0, 1950.0, shape)
    )
    assert dtype_text(cfg, "en").startswith("Compute type bfloat16 (auto): bf16 matrix products measured 5.6×")
    monkeypatch.setattr(
        models, "cpu_bf16_choice", lambda shape=None, measure=None: models.Bf16Choice(False, 130.0, 1.0, shape)
    )
    assert dtype_text(cfg, "en").startswith("Compute type float32 (auto)")


def test_check_prints_dtype_memory_and_time_lines(write_config, tmp_path):
    config = write_config(compute_type="fp32")
    result = run_cli("train", str(config), "--check", env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    memory_line = next(line for line in lines if line.startswith("estimated peak memory: "))
    assert "largest batch of this data" in memory_line and "worst case at batch x cutoff" in memory_line
    time_line = next(line for line in lines if line.startswith("estimated time: "))
    assert "steps" in time_line and "--calibrate" in time_line
    assert not (tmp_path / "saves").exists()
    # with --calibrate it trains a few steps in a scratch folder and knows the speed
    result = run_cli("train", str(config), "--check", "--calibrate", env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-2000:]
    time_line = next(line for line in result.stdout.splitlines() if line.startswith("estimated time: "))
    assert time_line.startswith("estimated time: about ") and "s/step" in time_line
    speeds = json.loads((tmp_path / "cache" / timing.SPEED_FILE).read_text())
    assert len(speeds) == 1


def test_check_names_a_missing_dataset(write_config, tmp_path):
    config = write_config(dataset="no_such_set")
    result = run_cli("train", str(config), "--check", env={"WORKBENCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 1
    assert "no_such_set" in result.stdout + result.stderr
