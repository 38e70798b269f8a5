"""Every LLaMA-Factory sample (and the shipped sets) trains a few steps on the tiny model, as
registered, unchanged; an uploaded file trains by the name it was registered under."""

import json
import shutil

import pytest

from workbench.config import from_dict
from workbench.data import add_dataset
from workbench.data.registry import SHIPPED_DIR
from workbench.train import run

from conftest import SAMPLES, needs_samples

pytestmark = pytest.mark.slow


def train_steps(tmp_path, tiny_model_dir, dataset_dir, dataset: str, stage: str) -> list[dict]:
    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": dataset,
            "dataset_dir": str(dataset_dir),
            "stage": stage,
            "max_steps": 2,
            "max_samples": 16,
            "cutoff_len": 96,
            "logging_steps": 1,
            "save_steps": 100,
            "per_device_train_batch_size": 2,
            "lora_rank": 4,
        }
    )
    run(cfg, tmp_path / "run", echo=False)
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "end", events[-1]
    return events


@pytest.mark.parametrize(
    "dataset, stage",
    [
        ("alpaca_en_demo,alpaca_zh_demo", "sft"),
        ("glaive_toolcall_en_demo", "sft"),
        ("identity", "sft"),
        ("wiki_demo,c4_demo", "pt"),
        ("dpo_en_demo", "dpo"),
    ],
)
@needs_samples
def test_each_sample_trains_a_few_steps(tmp_path, tiny_model_dir, dataset, stage):
    # two datasets of one kind are mixed in one run: both are read, and it costs one run
    events = train_steps(tmp_path, tiny_model_dir, SAMPLES, dataset, stage)
    losses = [e["loss"] for e in events if e["type"] == "log" and "loss" in e]
    assert losses and all(loss == loss for loss in losses)  # finite numbers, not NaN


@needs_samples
def test_an_uploaded_file_trains_by_its_name(tmp_path, tiny_model_dir):
    dataset_dir = tmp_path / "data"
    dataset_dir.mkdir()
    shutil.copy(SHIPPED_DIR / "dataset_info.json", dataset_dir)
    add_dataset(dataset_dir, "v1_sft", SAMPLES / "v1_sft_demo.jsonl")
    events = train_steps(tmp_path, tiny_model_dir, dataset_dir, "v1_sft", "sft")
    data = next(e for e in events if e["type"] == "data")
    assert data["rows"] == 16 and data["trainable_tokens"] > 0


def test_shipped_pretraining_text_trains(tmp_path, tiny_model_dir):
    train_steps(tmp_path, tiny_model_dir, SHIPPED_DIR, "pretrain_text", "pt")
