"""Chat targets of other methods: full fine-tune (own weights), PiSSA (clean base), prompt tuning."""

from __future__ import annotations

import pytest
import torch

from workbench.chat import BASE_PREFIX, ChatEngine, GenerationSettings, resolve_pair
from workbench.data.registry import SHIPPED_DIR

HELLO = [{"role": "user", "content": "Who are you?"}]
GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
IDS = torch.tensor([[1, 100, 200, 300, 400]])


@pytest.fixture(scope="module")
def method_runs(tmp_path_factory, tiny_model_dir):
    """Short runs of the tiny model with full fine-tuning, PiSSA-initialised LoRA, prompt tuning."""
    from workbench.config import from_dict
    from workbench.train import run

    saves = tmp_path_factory.mktemp("saves-methods")
    common = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset": "identity",
        "dataset_dir": str(SHIPPED_DIR),
        "max_steps": 2,
        "save_steps": 2,
        "learning_rate": 5e-2,
        "cutoff_len": 96,
        "logging_steps": 1,
    }
    for name, keys in {
        "full": {"finetuning_type": "full", "learning_rate": 1e-3},
        "pissa": {"finetuning_type": "lora", "pissa_init": True, "lora_rank": 4},
        "prompt": {"finetuning_type": "prompt_tuning", "num_virtual_tokens": 4},
    }.items():
        run(from_dict({**common, **keys}), saves / name, echo=False)
    return saves


def logits_of(engine, target):
    loaded = engine._load(target)
    with torch.no_grad(), engine._busy, engine._activate(loaded, target) as model:
        return model(IDS).logits


def plain_logits(tiny_model_dir, folder=None, adapter=None):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder or tiny_model_dir)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        return model.eval()(IDS).logits


def test_full_run_loads_its_own_weights(method_runs, tiny_model_dir):
    engine = ChatEngine()
    base, tuned = resolve_pair(BASE_PREFIX + str(tiny_model_dir), "full", method_runs)
    assert tuned.model_dir and not tuned.adapter_dir
    assert torch.equal(logits_of(engine, tuned), plain_logits(tiny_model_dir, folder=tuned.model_dir))
    assert torch.equal(logits_of(engine, base), plain_logits(tiny_model_dir))
    assert engine.reply(base, HELLO, GREEDY) != engine.reply(tuned, HELLO, GREEDY)
    assert len(engine.cached_keys()) == 2
    # an intermediate checkpoint of a full run is a whole model too
    _, early = resolve_pair(BASE_PREFIX + str(tiny_model_dir), "full/checkpoint-2", method_runs)
    assert engine.reply(early, HELLO, GREEDY)


def test_pissa_run_gets_a_clean_base_for_the_base_side(method_runs, tiny_model_dir):
    engine = ChatEngine()
    base, tuned = resolve_pair(BASE_PREFIX + str(tiny_model_dir), "pissa", method_runs)
    assert not tuned.exact_toggle
    got_tuned, got_base = logits_of(engine, tuned), logits_of(engine, base)
    assert torch.allclose(got_tuned, plain_logits(tiny_model_dir, adapter=tuned.adapter_dir), atol=1e-5)
    assert torch.equal(got_base, plain_logits(tiny_model_dir))  # not the PiSSA residual
    assert len(engine.cached_keys()) == 2
    # (the run's final adapter is saved as a plain LoRA of the untouched base, so plain peft
    # reproduces it above; the engine still loads a clean base, which intermediate PiSSA
    # checkpoints need)


def test_prompt_tuning_adapter_chats_and_switches_off_exactly(method_runs, tiny_model_dir):
    engine = ChatEngine()
    base, tuned = resolve_pair(BASE_PREFIX + str(tiny_model_dir), "prompt", method_runs)
    assert tuned.peft_type == "PROMPT_TUNING"
    answer = engine.reply(tuned, HELLO, GREEDY)
    assert engine.reply(base, HELLO, GREEDY) != answer
    assert torch.equal(logits_of(engine, base), plain_logits(tiny_model_dir))
    assert len(engine.cached_keys()) == 1
    # the same answer as plain peft
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tuned.adapter_dir)
    text = tokenizer.apply_chat_template(HELLO, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.eval().generate(**inputs, **GREEDY.generate_kwargs(), pad_token_id=tokenizer.pad_token_id)
    assert answer == tokenizer.decode(
        out[0, -GREEDY.max_new_tokens :], skip_special_tokens=True
    ) or answer == tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
