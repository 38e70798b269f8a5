"""The chat engine: adapters switched on and off over one base, streaming, stop."""
import threading

import torch

from workbench.chat import BASE_PREFIX, ChatEngine, GenerationSettings, list_targets, resolve_target


def test_targets_list_the_base_runs_and_checkpoints(trained_lora_run):
    specs = list_targets(trained_lora_run.parent)
    assert specs[0].startswith(BASE_PREFIX)
    assert "lora-run" in specs and "lora-run/checkpoint-8" in specs and "lora-run/checkpoint-4" in specs


def test_adapter_off_gives_exactly_the_base_and_one_base_copy_is_shared(trained_lora_run, tiny_model_dir):
    engine = ChatEngine()
    base = resolve_target(BASE_PREFIX + str(tiny_model_dir))
    tuned = resolve_target("lora-run", trained_lora_run.parent)
    loaded_tuned = engine._load(tuned)
    loaded_base = engine._load(base)
    assert loaded_tuned is loaded_base  # one copy of the base weights
    ids = torch.tensor([[1, 100, 200, 300]])
    with torch.no_grad():
        with engine._activate(loaded_base, base) as model:
            off = model(ids).logits
        with engine._activate(loaded_base, tuned) as model:
            on = model(ids).logits
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        assert torch.equal(off, plain(ids).logits)
    assert not torch.allclose(on, off)


def test_stream_grows_and_same_seed_gives_same_answer(trained_lora_run):
    engine = ChatEngine()
    target = resolve_target("lora-run", trained_lora_run.parent)
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0, seed=3, repetition_penalty=1.0)
    updates = list(engine.stream(target, [{"role": "user", "content": "hi"}], settings))
    assert updates[-1].done and updates[-1].tokens > 0
    again = engine.reply(target, [{"role": "user", "content": "hi"}], settings)
    assert again == updates[-1].text


def test_stop_event_ends_generation(trained_lora_run):
    engine = ChatEngine()
    target = resolve_target("lora-run", trained_lora_run.parent)
    stop = threading.Event()
    stop.set()
    settings = GenerationSettings(max_new_tokens=500, temperature=0.0, repetition_penalty=1.0)
    final = list(engine.stream(target, [{"role": "user", "content": "hi"}], settings, stop))[-1]
    assert final.tokens <= 2
