"""The chat engine against plain transformers/peft: same answers, exact base, stop, sessions."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from workbench.chat import (
    BASE_PREFIX,
    ChatEngine,
    GenerationSettings,
    conversation_record,
    resolve_pair,
    resolve_target,
)

HELLO = [{"role": "user", "content": "Who are you?"}]
IDS = torch.tensor([[1, 100, 200, 300, 400]])


def plain_generate(model, tokenizer, messages, settings: GenerationSettings) -> str:
    """What a user would write with plain transformers: chat template, seed, generate."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        out = model.generate(**inputs, **settings.generate_kwargs(), pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def plain_models(tiny_model_dir, adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir).eval()
    return tokenizer, base, tuned


GREEDY = GenerationSettings(max_new_tokens=16, temperature=0.0, repetition_penalty=1.0)
SAMPLED = GenerationSettings(max_new_tokens=16, temperature=0.9, top_p=0.9, top_k=40, repetition_penalty=1.2, seed=7)


def test_answers_match_plain_generate_and_base_differs_from_tuned(trained_lora_run, tiny_model_dir):
    engine = ChatEngine()
    base, tuned = resolve_pair(BASE_PREFIX + str(tiny_model_dir), "lora-run", trained_lora_run.parent)
    tokenizer, plain_base, plain_tuned = plain_models(tiny_model_dir, trained_lora_run / "final")
    for settings in (GREEDY, SAMPLED):
        ours_base = engine.reply(base, HELLO, settings)
        ours_tuned = engine.reply(tuned, HELLO, settings)
        assert ours_base == plain_generate(plain_base, tokenizer, HELLO, settings)
        assert ours_tuned == plain_generate(plain_tuned, tokenizer, HELLO, settings)
        assert ours_base != ours_tuned  # training on the identity set changed the answer
    # the same seed gives the same answer; another seed (sampling) another one
    assert engine.reply(tuned, HELLO, SAMPLED) == engine.reply(tuned, HELLO, SAMPLED)
    other = GenerationSettings(**{**SAMPLED.__dict__, "seed": 8})
    assert engine.reply(tuned, HELLO, other) != engine.reply(tuned, HELLO, SAMPLED)
    assert len(engine.cached_keys()) == 1  # base and tuned share one copy of the weights


def test_checkpoint_and_adapter_toggling_give_exact_logits(trained_lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    engine = ChatEngine()
    base = resolve_target(BASE_PREFIX + str(tiny_model_dir))
    final = resolve_target("lora-run", trained_lora_run.parent)
    early = resolve_target("lora-run/checkpoint-4", trained_lora_run.parent)
    ids = torch.tensor([[1, 100, 200, 300, 400]])

    def logits(target):
        loaded = engine._load(target)
        with torch.no_grad(), engine._activate(loaded, target) as model:
            return model(ids).logits

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        want_base = plain(ids).logits
        want_early = (
            PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), early.adapter_dir)
            .eval()(ids)
            .logits
        )
    # on, off, another adapter, off again: the base is exactly the base every time
    got_final, got_base, got_early, got_base_again = logits(final), logits(base), logits(early), logits(base)
    assert torch.equal(got_base, want_base) and torch.equal(got_base_again, want_base)
    assert torch.allclose(got_early, want_early, atol=1e-6)
    assert not torch.allclose(got_final, got_early)
    assert len(engine.cached_keys()) == 1


def test_stop_ends_a_long_generation_at_once(tiny_model_dir):
    engine = ChatEngine()
    target = resolve_target(BASE_PREFIX + str(tiny_model_dir))  # random weights: no early end
    settings = GenerationSettings(max_new_tokens=400, temperature=1.0, repetition_penalty=1.0)
    stop = threading.Event()
    stopped_at = final = None
    for update in engine.stream(target, HELLO, settings, stop):
        if stopped_at is None and update.tokens >= 4:
            stopped_at = time.monotonic()
            stop.set()
        final = update
    elapsed = time.monotonic() - stopped_at
    print(f"stop took {elapsed:.3f} s after {final.tokens} tokens")
    assert final.done and final.tokens < settings.max_new_tokens / 2
    # the engine is free again at once: the next reply runs
    assert engine.reply(target, HELLO, GREEDY)


def test_stop_while_waiting_in_the_queue(trained_lora_run):
    engine = ChatEngine()
    target = resolve_target("lora-run", trained_lora_run.parent)
    engine._load(target)
    stop = threading.Event()
    with engine._busy:  # another session is generating
        updates = engine.stream(target, HELLO, GREEDY, stop)
        first = next(updates)
        assert first.queued
        stop.set()
        rest = list(updates)
    assert rest[-1].done and rest[-1].text == ""


def test_two_concurrent_sessions_get_their_own_answers(trained_lora_run, tiny_model_dir):
    engine = ChatEngine()
    base, tuned = resolve_pair(BASE_PREFIX + str(tiny_model_dir), "lora-run", trained_lora_run.parent)
    jobs = {
        "a": (base, [{"role": "user", "content": "Hello there"}]),
        "b": (tuned, [{"role": "user", "content": "What is your name?"}]),
    }
    settings = GenerationSettings(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    expected = {name: engine.reply(target, messages, settings) for name, (target, messages) in jobs.items()}
    assert expected["a"] != expected["b"]
    seen: dict[str, list[str]] = {"a": [], "b": []}
    errors = []

    def chat(name):
        try:
            target, messages = jobs[name]
            for update in engine.stream(target, messages, settings):
                seen[name].append(update.text)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=chat, args=(name,)) for name in jobs for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for name, texts in seen.items():
        finals = [t for t in texts if t == expected[name]]
        assert len(finals) >= 2, name  # each of the two sessions got its own full answer
        assert all(expected[name].startswith(t) for t in texts), name  # never a piece of another's


@pytest.fixture(scope="module")
def wide_lora_run(tmp_path_factory, tiny_model_dir):
    """A LoRA run of a 64-wide random model: bitsandbytes' CPU 4-bit kernels need layers at least
    one 64-value block wide, which the 32-wide tiny model is not. The adapter is random, not trained."""
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    saves = tmp_path_factory.mktemp("saves-wide")
    model_dir = saves.parent / (saves.name + "-model")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(LlamaForCausalLM(config), lora).save_pretrained(saves / "wide" / "final")
    (saves / "wide" / "config.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(model_dir)}))
    return saves / "wide"


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_base_and_adapter_share_one_copy(wide_lora_run, bits):
    engine = ChatEngine()
    model_dir = resolve_target("wide", wide_lora_run.parent).base_model
    base, tuned = resolve_pair(BASE_PREFIX + model_dir, "wide", wide_lora_run.parent, bits)
    assert base.quantization_bit == tuned.quantization_bit == bits

    def base_logits():
        loaded = engine._load(base)
        with torch.inference_mode(), engine._busy, engine._activate(loaded, base) as model:
            return model(IDS).logits

    before = base_logits()  # the quantized base before any adapter is attached
    assert engine.reply(base, HELLO, GREEDY) != engine.reply(tuned, HELLO, GREEDY)
    assert torch.equal(base_logits(), before)  # adapter switched off: exactly the base again
    assert len(engine.cached_keys()) == 1
    modules = {type(m).__name__ for m in engine._load(base).model.modules()}
    assert {8: "Linear8bitLt", 4: "Linear4bit"}[bits] in modules


def test_release_drops_models_no_session_selects(trained_lora_run, tiny_model_dir):
    engine = ChatEngine(max_models=3)
    base = resolve_target(BASE_PREFIX + str(tiny_model_dir))
    quantized = resolve_target(BASE_PREFIX + str(tiny_model_dir), quantization_bit=8)
    engine.select("one", [base])
    engine.select("two", [quantized])
    engine._load(base), engine._load(quantized)
    assert len(engine.cached_keys()) == 2
    engine.select("two", [base])  # session two switched away from 8-bit
    assert engine.cached_keys() == [("shared", str(tiny_model_dir), None, "LORA")]
    engine.forget("one"), engine.forget("two")
    assert engine.cached_keys() == []


def test_plain_fallback_template_for_a_tokenizer_without_one(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    _, fallback = ChatEngine().prompt_ids(tokenizer, HELLO, GREEDY)
    assert not fallback
    tokenizer.chat_template = None
    inputs, fallback = ChatEngine().prompt_ids(tokenizer, HELLO, GenerationSettings(system_prompt="Be brief."))
    assert fallback
    text = tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("Be brief.") and "User: Who are you?" in text and text.endswith("Assistant: ")


def test_bad_settings_and_targets_say_what_is_wrong(trained_lora_run):
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0.0).check()
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0).check()
    with pytest.raises(ValueError, match="no such run: nope"):
        resolve_target("nope", trained_lora_run.parent)
    with pytest.raises(ValueError, match="checkpoint-99 has no saved result"):
        resolve_target("lora-run/checkpoint-99", trained_lora_run.parent)
    with pytest.raises(ValueError, match="quantization"):
        resolve_target("lora-run", trained_lora_run.parent, quantization_bit=3)


def test_conversation_export_holds_models_settings_and_messages():
    record = conversation_record(
        [("base:m", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])],
        GenerationSettings(seed=5),
    )
    assert record["panes"][0]["model"] == "base:m"
    assert record["panes"][0]["messages"][1] == {"role": "assistant", "content": "hello"}
    assert record["settings"]["seed"] == 5
