"""Every method trains what it claims: the tiny model memorises a few rows (loss falls), the
parameters a method must leave alone are bit-identical afterwards, and the saved result reloads
in plain transformers/peft and gives the outputs the trained model gave."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from workbench import methods, train
from workbench.config import from_dict

PROBE = torch.tensor([[1, 100, 200, 300, 400, 2]])
ROWS = [
    {"instruction": "Who are you?", "output": "I am Pip, a small helper."},
    {"instruction": "What colour is the sky?", "output": "Blue on a clear day."},
    {"instruction": "Say hi.", "output": "Hi there!"},
    {"instruction": "Count to three.", "output": "One, two, three."},
]


@pytest.fixture(scope="module")
def memo_dir(tmp_path_factory):
    """A dataset folder with a 4-row memorisation set (`memo`)."""
    folder = tmp_path_factory.mktemp("memo-data")
    (folder / "memo.json").write_text(json.dumps(ROWS), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"memo": {"file_name": "memo.json"}}))
    return folder


def train_tiny(model_dir, data_dir, run_dir, monkeypatch, **keys):
    """Train in-process; return (losses, final folder, logits of the trained model on PROBE)."""
    captured = {}
    real_save = train.save_final

    def save_and_capture(trainer, tokenizer, final, cfg=None):
        model = trainer.model
        model.eval()
        with torch.no_grad():
            out = model(input_ids=PROBE.to(model.device))
        captured["logits"] = out.logits.float().cpu()
        real_save(trainer, tokenizer, final, cfg)

    monkeypatch.setattr(train, "save_final", save_and_capture)
    cfg = from_dict(
        {
            "model_name_or_path": str(model_dir),
            "dataset": "memo",
            "dataset_dir": str(data_dir),
            "max_steps": 10,
            "logging_steps": 1,
            "save_steps": 100,
            "learning_rate": 5e-2,
            "lr_scheduler_type": "constant",
            "per_device_train_batch_size": 4,
            "cutoff_len": 64,
            "lora_rank": 4,
            **keys,
        }
    )
    final = train.run(cfg, run_dir, echo=False)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in events if e["type"] == "log"]
    return losses, final, captured.get("logits")


def falls(losses, factor=0.8):
    return sum(losses[-3:]) / 3 < factor * sum(losses[:3]) / 3


def base_weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def causal_lm(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def logits_of(model):
    model.eval()
    with torch.no_grad():
        return model(input_ids=PROBE).logits.float()


# ---- full and freeze -------------------------------------------------------------------------
def test_full_trains_every_weight_and_the_model_reloads(tiny_model_dir, memo_dir, tmp_path, monkeypatch):
    losses, final, trained = train_tiny(
        tiny_model_dir, memo_dir, tmp_path / "run", monkeypatch, finetuning_type="full", learning_rate=5e-3
    )
    assert falls(losses), losses
    before, after = base_weights(tiny_model_dir), load_file(str(final / "model.safetensors"))
    unchanged = [n for n in before if n in after and torch.equal(before[n], after[n])]
    assert unchanged == [], unchanged
    assert torch.allclose(logits_of(causal_lm(final)), trained, atol=1e-4)


def test_freeze_trains_only_the_chosen_modules_of_the_last_layers(tiny_model_dir, memo_dir, tmp_path, monkeypatch):
    losses, final, trained = train_tiny(
        tiny_model_dir,
        memo_dir,
        tmp_path / "run",
        monkeypatch,
        finetuning_type="freeze",
        freeze_trainable_layers=1,
        freeze_trainable_modules="mlp",
        learning_rate=1e-2,
    )
    assert falls(losses, 0.95), losses
    before, after = base_weights(tiny_model_dir), load_file(str(final / "model.safetensors"))
    changed = sorted(n for n in before if not torch.equal(before[n], after[n]))
    assert changed == [
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
    ]
    assert torch.allclose(logits_of(causal_lm(final)), trained, atol=1e-4)


# ---- per-parameter learning rates ------------------------------------------------------------
def optimizer_groups(model_dir, out_dir, **keys):
    """The optimizer the Trainer builds for a config: (lr, param names) per group."""
    from workbench import models, stages

    cfg = from_dict({"model_name_or_path": str(model_dir), "learning_rate": 1e-2, "lora_rank": 4, **keys})
    model = methods.apply_method(models.load_causal_lm(str(model_dir), "fp32"), cfg)
    tokenizer = models.load_tokenizer(str(model_dir))
    example = {"input_ids": [1, 2, 3], "labels": [1, 2, 3]}
    trainer = stages.build_trainer(cfg, model, tokenizer, [example], [], str(out_dir), torch.float32, [])
    methods.configure_optimizer(trainer, cfg)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    return [(g["lr"], [names[id(p)] for p in g["params"]]) for g in optimizer.param_groups]


def lr_of(groups, fragment):
    rates = {lr for lr, names in groups for n in names if fragment in n}
    assert len(rates) == 1, (fragment, groups)
    return rates.pop()


def test_layerwise_lr_decay_gives_lower_layers_smaller_rates(tiny_model_dir, tmp_path):
    groups = optimizer_groups(tiny_model_dir, tmp_path, finetuning_type="full", layerwise_lr_decay=0.5)
    assert lr_of(groups, "layers.1.") == pytest.approx(1e-2)
    assert lr_of(groups, "layers.0.") == pytest.approx(5e-3)
    assert lr_of(groups, "embed_tokens") == pytest.approx(2.5e-3)
    assert lr_of(groups, "model.norm") == pytest.approx(1e-2)


def test_loraplus_ratio_makes_b_learn_faster_than_a(tiny_model_dir, tmp_path):
    groups = optimizer_groups(tiny_model_dir, tmp_path, finetuning_type="lora", loraplus_lr_ratio=16)
    assert lr_of(groups, "lora_A") == pytest.approx(1e-2)
    assert lr_of(groups, "lora_B") == pytest.approx(0.16)


def test_without_options_the_trainer_keeps_its_own_optimizer(tiny_model_dir, tmp_path):
    groups = optimizer_groups(tiny_model_dir, tmp_path, finetuning_type="lora")
    assert {lr for lr, _ in groups} == {1e-2}


# ---- BitFit ---------------------------------------------------------------------------------
def test_bitfit_on_a_model_without_biases_says_so(tiny_model_dir):
    cfg = from_dict({"model_name_or_path": str(tiny_model_dir), "finetuning_type": "bitfit"})
    with pytest.raises(methods.MethodError, match="no bias parameters"):
        methods.apply_method(causal_lm(tiny_model_dir), cfg)


@pytest.fixture(scope="module")
def biased_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny llama with biases on attention and MLP projections."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-biased")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.attention_bias = config.mlp_bias = True
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def test_bitfit_trains_biases_only(biased_model_dir, memo_dir, tmp_path, monkeypatch):
    losses, final, trained = train_tiny(
        biased_model_dir, memo_dir, tmp_path / "run", monkeypatch, finetuning_type="bitfit", learning_rate=5e-2
    )
    assert falls(losses, 0.95), losses
    before, after = base_weights(biased_model_dir), load_file(str(final / "model.safetensors"))
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(n.endswith(".bias") for n in changed), changed
    assert torch.allclose(logits_of(causal_lm(final)), trained, atol=1e-4)


# ---- adapters -------------------------------------------------------------------------------
ADAPTERS = {
    # rsLoRA, with LoRA+ and layer-wise decay through the Trainer's optimizer in the same run
    "lora_rslora": dict(finetuning_type="lora", use_rslora=True, loraplus_lr_ratio=4, layerwise_lr_decay=0.8),
    "dora": dict(finetuning_type="lora", use_dora=True),
    "pissa": dict(finetuning_type="lora", pissa_init=True, learning_rate=1e-2),
    "ia3": dict(finetuning_type="ia3", learning_rate=0.1),
    # a soft prompt of 4 vectors moves a random model's loss only a little
    "prompt_tuning": dict(finetuning_type="prompt_tuning", num_virtual_tokens=4, learning_rate=1.0),
    "prefix_tuning": dict(finetuning_type="prefix_tuning", num_virtual_tokens=4, learning_rate=0.2),
}


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapter_trains_and_reloads_in_plain_peft(name, tiny_model_dir, memo_dir, tmp_path, monkeypatch):
    from peft import PeftModel

    losses, final, trained = train_tiny(tiny_model_dir, memo_dir, tmp_path / "run", monkeypatch, **ADAPTERS[name])
    assert falls(losses, 0.97 if name.endswith("_tuning") else 0.9), losses
    config = json.loads((final / "adapter_config.json").read_text())
    if name == "lora_rslora":
        assert config["use_rslora"] is True
    if name == "dora":
        assert config["use_dora"] is True
    if name == "pissa":  # converted to a plain LoRA of the untouched base (rank doubles)
        assert config["init_lora_weights"] is True and config["r"] == 8
    base = causal_lm(tiny_model_dir)
    base_logits = logits_of(base)
    tuned = logits_of(PeftModel.from_pretrained(base, final))
    assert torch.allclose(tuned, trained, atol=1e-4)
    # a soft prompt adds its virtual positions in front: compare the real tokens' positions
    assert not torch.allclose(tuned[:, -PROBE.shape[-1] :], base_logits, atol=1e-4)


# ---- QLoRA (bitsandbytes runs on CPU; slow, so few steps) -----------------------------------
@pytest.fixture(scope="module")
def wider_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny llama 64 wide. bitsandbytes' CPU 4-bit kernels need every quantized layer to have
    at least 64 inputs (one quantization block) and, for inference on CPUs with AVX512-BF16, a
    multiple of 32 outputs (the weights are repacked in tiles of 32 rows); the 32-wide tiny model
    and a k_proj of 2 heads x 8 fail those. Here k/v_proj have 2 heads x 16 = 32 outputs."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-wide")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size, config.head_dim = 64, 128, 16
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def quantized_base(model_dir, bits, qtype, double):
    """The base loaded the way a user of plain transformers would, in the run's quantization."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if bits == 8:
        quant = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=qtype,
            bnb_4bit_use_double_quant=double,
            bnb_4bit_compute_dtype=torch.float32,
        )
    return AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=quant, device_map={"": "cpu"}, dtype=torch.float32
    )


# The reloaded model runs the very same quantized weights and kernels as the trained one, so its
# logits agree to float rounding: tolerance 1e-4 absolute on logits of size ~10 (measured: 0.0,
# bit-identical, for all three); the adapter moves them by ~10 from the quantized base.
@pytest.mark.parametrize(
    "bits,qtype,double,dora",
    [(4, "nf4", False, False), (4, "fp4", True, True), (8, "nf4", False, False)],
    ids=["4bit-nf4", "4bit-fp4-double-dora", "8bit"],
)
def test_qlora_trains_on_a_quantized_base_and_reloads_in_plain_peft(
    bits, qtype, double, dora, wider_model_dir, memo_dir, tmp_path, monkeypatch
):
    from peft import PeftModel

    losses, final, trained = train_tiny(
        wider_model_dir,
        memo_dir,
        tmp_path / "run",
        monkeypatch,
        quantization_bit=bits,
        quantization_type=qtype,
        double_quantization=double,
        use_dora=dora,
        max_steps=6,
        compute_type="fp32",  # the reload below runs fp32: compare like with like (auto may pick bf16)
    )
    assert losses[-1] < losses[0], losses
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["use_dora"] is dora
    base_logits = logits_of(quantized_base(wider_model_dir, bits, qtype, double))
    tuned = logits_of(PeftModel.from_pretrained(quantized_base(wider_model_dir, bits, qtype, double), final))
    assert (tuned - trained).abs().max().item() < 1e-4
    assert (tuned - base_logits).abs().max().item() > 0.1  # the adapter really changes the outputs


# ---- task head: sequence classification ------------------------------------------------------
SENTIMENT = [
    ("a wonderful, joyful film", "positive"),
    ("dull and far too long", "negative"),
    ("i loved every minute", "positive"),
    ("a waste of an evening", "negative"),
    ("brilliant acting throughout", "positive"),
    ("the plot made no sense", "negative"),
    ("warm, funny and clever", "positive"),
    ("boring from start to end", "negative"),
]


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cls-data")
    rows = [{"text": text, "label": label} for text, label in SENTIMENT]
    (folder / "tiny_sentiment.json").write_text(json.dumps(rows), encoding="utf-8")
    (folder / "dataset_info.json").write_text(
        json.dumps({"tiny_sentiment": {"file_name": "tiny_sentiment.json", "format": "classification"}})
    )
    return folder


def test_cls_head_only_trains_the_head_and_saves_label_names(tiny_model_dir, cls_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    losses, final, trained = train_tiny(
        tiny_model_dir,
        cls_dir,
        tmp_path / "run",
        monkeypatch,
        dataset="tiny_sentiment",
        stage="cls",
        finetuning_type="head",
        learning_rate=0.05,
        per_device_train_batch_size=8,
        max_steps=12,
    )
    assert falls(losses), losses
    assert json.loads((final / "labels.json").read_text())["labels"] == ["negative", "positive"]
    model = AutoModelForSequenceClassification.from_pretrained(final)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert torch.allclose(logits_of(model), trained, atol=1e-4)
    before, after = base_weights(tiny_model_dir), load_file(str(final / "model.safetensors"))
    shared = [n for n in after if n in before]
    assert shared and all(torch.equal(before[n], after[n]) for n in shared)  # the body is untouched
    assert [n for n in after if n not in before] == ["score.weight"]


def test_cls_head_plus_lora_reloads_in_plain_peft(tiny_model_dir, cls_dir, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    losses, final, trained = train_tiny(
        tiny_model_dir,
        cls_dir,
        tmp_path / "run",
        monkeypatch,
        dataset="tiny_sentiment",
        stage="cls",
        finetuning_type="lora",
        learning_rate=0.02,
        per_device_train_batch_size=8,
        max_steps=12,
    )
    assert falls(losses), losses
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    labels = json.loads((final / "labels.json").read_text())["labels"]
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=len(labels))
    tuned = PeftModel.from_pretrained(base, final)
    assert torch.allclose(logits_of(tuned), trained, atol=1e-4)
