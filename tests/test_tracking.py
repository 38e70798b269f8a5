"""report_to: tensorboard logs in the run folder (read back with tensorboard's reader); others offline."""

from __future__ import annotations

import json
import os

import pytest

from workbench.config import ConfigError, from_dict

from conftest import ROOT


def test_tensorboard_logs_are_written_in_the_run_folder_and_read_back(tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from workbench.train import run

    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(ROOT / "data"),
            "max_steps": 4,
            "save_steps": 2,
            "logging_steps": 1,
            "per_device_train_batch_size": 4,
            "cutoff_len": 96,
            "lora_rank": 4,
            "val_size": 8,
            "report_to": "tensorboard",
        }
    )
    run_dir = tmp_path / "tb-run"
    run(cfg, run_dir, echo=False)
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # set for the run only
    logs = run_dir / "tensorboard"
    assert list(logs.glob("events.out.tfevents.*"))
    reader = EventAccumulator(str(logs))
    reader.Reload()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    want_loss = {e["step"]: e["loss"] for e in events if e["type"] == "log" and "loss" in e}
    want_eval = {e["step"]: e["eval_loss"] for e in events if e["type"] == "eval"}
    got_loss = {s.step: s.value for s in reader.Scalars("train/loss")}
    got_eval = {s.step: s.value for s in reader.Scalars("eval/loss")}
    assert got_loss.keys() == want_loss.keys() and got_eval.keys() == want_eval.keys() == {2, 4}
    assert all(got_loss[k] == pytest.approx(want_loss[k], rel=1e-5) for k in want_loss)
    assert all(got_eval[k] == pytest.approx(want_eval[k], rel=1e-5) for k in want_eval)


def test_trackers_stay_offline_and_in_the_run_folder_unless_the_user_says_otherwise(tmp_path, monkeypatch):
    from workbench.stages import common_training_args, tracking_environment

    for key in ("WANDB_MODE", "MLFLOW_TRACKING_URI", "TRACKIO_DIR", "TENSORBOARD_LOGGING_DIR", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    cfg = from_dict({"dataset": "identity", "report_to": "tensorboard"})
    cfg.report_to = "wandb, mlflow,trackio,tensorboard"  # (packages need not be installed here)
    env = tracking_environment(cfg, tmp_path / "r")
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str((tmp_path / "r").resolve())
    assert env["MLFLOW_TRACKING_URI"] == (tmp_path / "r" / "mlruns").resolve().as_uri()
    assert env["TRACKIO_DIR"].startswith(str((tmp_path / "r").resolve()))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")  # asked for a server
    assert "MLFLOW_TRACKING_URI" not in tracking_environment(cfg, tmp_path / "r")
    import torch

    args = common_training_args(cfg, str(tmp_path), False, torch.float32)
    assert args["report_to"] == ["wandb", "mlflow", "trackio", "tensorboard"]
    assert (
        common_training_args(from_dict({"dataset": "identity"}), str(tmp_path), False, torch.float32)["report_to"]
        == "none"
    )


def test_unknown_or_missing_trackers_are_refused_by_name():
    import importlib.util

    with pytest.raises(ConfigError, match="'report_to' 'neptune' is not a tracker"):
        from_dict({"dataset": "identity", "report_to": "tensorboard,neptune"})
    missing = [n for n in ("trackio", "mlflow", "wandb") if importlib.util.find_spec(n) is None]
    if missing:
        with pytest.raises(ConfigError, match=f"needs the {missing[0]} package: pip install {missing[0]}"):
            from_dict({"dataset": "identity", "report_to": missing[0]})
