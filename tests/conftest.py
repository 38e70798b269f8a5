"""Shared fixtures: a tiny random-initialised model (for speed), isolated saves folders, and
helpers to write run configs and run the CLI in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.data.registry import SHIPPED_DIR

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples" / "llamafactory"
# the LLaMA-Factory sample files live beside the checkout, not in it: a fresh clone skips their tests
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample datasets not found at {SAMPLES}")


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The embedded default model, converted to the safetensors cache (once per machine)."""
    from workbench.config import DEFAULT_MODEL
    from workbench.models import KNOWN_MODELS, ensure_embedded_cache

    return ensure_embedded_cache(KNOWN_MODELS[DEFAULT_MODEL])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, default_model_dir) -> Path:
    """A 2-layer random llama with the default model's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        # large enough that a 32-wide model can express confident predictions
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def saves(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "saves"
    folder.mkdir()
    monkeypatch.setenv("WORKBENCH_SAVES", str(folder))
    return folder


@pytest.fixture()
def write_config(tmp_path, tiny_model_dir):
    """write_config(**keys) -> path of a YAML config for the tiny model (overridable)."""

    def write(name: str = "run.yaml", **keys) -> Path:
        data = {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(SHIPPED_DIR),
            "max_steps": 6,
            "logging_steps": 1,
            "save_steps": 3,
            "per_device_train_batch_size": 4,
            "learning_rate": 5e-3,
            "cutoff_len": 128,
        }
        data.update(keys)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None):
    """Run `python -m workbench ...` in a fresh process; returns CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd or ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def trained_lora_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A finished LoRA run of the tiny model (trained once per test session, in-process)."""
    from workbench.config import from_dict
    from workbench.train import run

    saves = tmp_path_factory.mktemp("saves-lora")
    cfg = from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "identity",
            "dataset_dir": str(SHIPPED_DIR),
            "max_steps": 8,
            "save_steps": 4,
            "learning_rate": 5e-2,
            "lora_rank": 4,
            "cutoff_len": 128,
            "logging_steps": 1,
        }
    )
    run(cfg, saves / "lora-run", echo=False)
    return saves / "lora-run"


def as_f16_stores_it(model):
    """The model with each matrix rounded to f16 (norm vectors stay f32, as in the GGUF file)."""
    import torch

    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 2:
                param.copy_(param.half().float())
    return model
